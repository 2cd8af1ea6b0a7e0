"""int8 candidates of the fp32 graph: dynamic quantization per method, static QDQ calibrated on validation
windows, and the window feeds and timing their comparison uses."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from callqa.render import pad_windows

from .gate import ExportError

# How model.int8.onnx is made; `callqa bench --quantization all` measures every one (docs/export.md has the numbers).
# "-ffn-fp32" leaves each layer's FFN output projection in fp32: its input (after GELU) has the outliers that cost
# the most accuracy under dynamic int8, for about a third of the speed-up.
# "static-" methods calibrate activation ranges on the run's validation windows (QDQ) instead of measuring them
# per batch at run time.
QUANTIZATIONS = ("qint8", "quint8", "qint8-per-channel", "qint8-per-channel-ffn-fp32", "fused-qint8",
                 "static-u8s8", "static-s8s8", "static-u8s8-ffn-fp32")
CALIBRATION_WINDOWS = 128
TIMING_WINDOWS = 64
# "auto": every one of these is built, gated and timed on the exporting machine; the fastest that passes serves
# (or fp32, when none passes or fp32 is faster here).
AUTO = ("qint8-per-channel", "qint8-per-channel-ffn-fp32", "static-u8s8")
DEFAULT_QUANTIZATION = "auto"
OPSET = 17



class _PreprocessingHint(logging.Filter):
    """onnxruntime advises shape pre-processing on every quantize_dynamic call (a root-logger warning); for MatMul
    weights it changes nothing, and in an export log it reads like an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def without_preprocessing_hint():
    hint = _PreprocessingHint()
    logging.getLogger().addFilter(hint)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(hint)


def quantize(fp32: Path, out: Path, method: str, num_heads: int, hidden_size: int,
             calibration: list[dict[str, np.ndarray]] | None = None) -> None:
    """int8 weights; activations quantized on the fly (dynamic: no calibration data needed) or, for the ``static-``
    methods, with fixed scales measured on ``calibration`` feeds (QDQ graph: no per-batch quantization work)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if method not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {method!r}; choose one of auto, {', '.join(QUANTIZATIONS)}")
    exclude = []
    if method.endswith("-ffn-fp32"):
        graph = onnx.load(str(fp32), load_external_data=False)
        exclude = [n.name for n in graph.graph.node
                   if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]
    if method.startswith("static"):
        if not calibration:
            raise ExportError(f"{method} needs calibration windows (the run's validation calls)")
        return quantize_static_qdq(fp32, out, method, exclude, calibration)
    source = fp32
    with tempfile.TemporaryDirectory() as tmp:
        if method.startswith("fused"):
            # The transformer optimizer fuses attention, LayerNorm and GELU into single kernels before quantizing.
            from onnxruntime.transformers.optimizer import optimize_model

            fused = optimize_model(str(fp32), model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
            source = Path(tmp) / "fused.onnx"
            fused.save_model_to_file(str(source))
        with without_preprocessing_hint():
            # The fused Attention op holds the Q, K and V projections (a quarter of a layer's matmul work): quantized
            # too (QAttention), else they stay fp32, which is why fused-qint8 used to be slower than plain qint8.
            ops = ["MatMul", "Attention"] if method.startswith("fused") else ["MatMul"]
            quantize_dynamic(str(source), str(out), weight_type=QuantType.QUInt8 if method == "quint8" else QuantType.QInt8,
                             per_channel="per-channel" in method, nodes_to_exclude=exclude, op_types_to_quantize=ops,
                             # Fused ops (com.microsoft domain) defeat shape inference; their outputs are float.
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def quantize_static_qdq(fp32: Path, out: Path, method: str, exclude: list[str],
                        calibration: list[dict[str, np.ndarray]]) -> None:
    """QDQ int8 with activation ranges from the calibration feeds: u8s8 (uint8 activations, the x86 VNNI kernel's
    native pair) or s8s8 (symmetric; what ARM and GPUs prefer). Weights per channel. Only the MatMuls that carry a
    weight are quantized: attention's own products (scores, context) keep fp32, softmax outputs quantize badly."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.rest = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rest, None)

    graph = onnx.load(str(fp32), load_external_data=False)
    weights = {w.name for w in graph.graph.initializer}
    matmuls = [n.name for n in graph.graph.node
               if n.op_type == "MatMul" and any(i in weights for i in n.input) and n.name not in exclude]
    activations = QuantType.QUInt8 if "u8s8" in method else QuantType.QInt8
    with without_preprocessing_hint():
        quantize_static(str(fp32), str(out), Feeds(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                        nodes_to_quantize=matmuls, per_channel=True, activation_type=activations,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": activations == QuantType.QInt8})


def window_feeds(windows: list[list[int]], pad_id: int, limit: int = CALIBRATION_WINDOWS,
                 batch: int = 16) -> list[dict[str, np.ndarray]]:
    """Model inputs for calibrating and timing: up to ``limit`` windows, evenly spread, in length-sorted batches (as
    serving runs them; padding would also stretch calibrated ranges)."""
    step = max(1, len(windows) // limit)
    chosen = sorted(windows[::step][:limit], key=len)
    feeds = []
    for start in range(0, len(chosen), batch):
        ids, mask = pad_windows(chosen[start : start + batch], pad_id)
        feeds.append({"input_ids": ids, "attention_mask": mask})
    return feeds


def windows_per_second(session, feeds: list[dict[str, np.ndarray]], passes: int = 2) -> float:
    """The best of ``passes`` timed passes over the feeds, after one warm-up batch (first-run allocations)."""
    session.run(None, feeds[0])
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for feed in feeds:
            session.run(None, feed)
        best = min(best, time.perf_counter() - started)
    return sum(len(f["input_ids"]) for f in feeds) / best
