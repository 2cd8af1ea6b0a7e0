"""`callqa export`: a training run → a servable model bundle (ONNX fp32 + int8), checked by a parity and quality gate.

The gate, recorded in parity.json and bundle.json:
- parity: PyTorch vs ONNX fp32 window logits on the validation calls, max absolute difference ≤ ``parity_tolerance``;
- quality: int8 vs fp32 call-level metrics on the same calls; an ordinal head's NMD may worsen by at most
  ``max_nmd_increase``, a multilabel or multiclass head's macro-F1 may drop by at most ``max_macro_f1_drop``.
A failed gate still writes the bundle (to inspect) but marks it failed: the export exits non-zero, the bundle is not
stored, and serving refuses it, unless ``force`` records an override that serving shows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from callqa.bundle import BENTO_MODEL_NAME, BundleInfo, GateResult, sha256_file, write_bundle_info
from callqa.calls import Call
from callqa.jsonl import load_calls
from callqa.metrics import evaluate_heads
from callqa.render import pad_windows
from callqa.schema import LabelSchema
from callqa.scorer import OnnxScorer, make_session, stack_probs, stack_turn_probs, turn_targets

from .baselines import targets as call_targets
from .evaluate import load_run
from .model import CallScorer
from .run import RunInfo
from .trainer import code_version

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


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parity_tolerance: float = 1e-4
    max_nmd_increase: float = 0.005
    max_macro_f1_drop: float = 0.01


class ExportError(RuntimeError):
    pass


class WindowGraph(nn.Module):
    """What model.onnx computes: one window batch → the pooled vector, each call head's window logits and each turn
    head's per-token logits (averaged per turn outside the graph, by callqa.render.aggregate_turns)."""

    def __init__(self, scorer: CallScorer):
        super().__init__()
        self.scorer = scorer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.scorer.hidden_states(input_ids, attention_mask)
        pooled = self.scorer.mean_pool(hidden, attention_mask)
        heads, schema = self.scorer.heads, self.scorer.schema
        return (pooled, *(heads[h.name](pooled) for h in schema.heads), *(heads[h.name](hidden) for h in schema.turn_heads))


def output_names(schema: LabelSchema) -> list[str]:
    return ["pooled", *(f"logits.{h.name}" for h in schema.heads), *(f"token_logits.{h.name}" for h in schema.turn_heads)]


def export_onnx(model: CallScorer, path: Path) -> None:
    """Trace the window graph with dynamic batch and sequence axes (eager attention: a graph ORT's fusions know)."""
    model = model.eval().to("cpu")
    model.encoder.config._attn_implementation = "eager"
    names = output_names(model.schema)
    ids = torch.full((2, 16), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    axes = {"input_ids": {0: "windows", 1: "tokens"}, "attention_mask": {0: "windows", 1: "tokens"}}
    axes.update({name: {0: "windows", 1: "tokens"} if name.startswith("token_") else {0: "windows"} for name in names})
    # The tracer warns about Python-side branches in transformers' mask code; parity is what proves the graph.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*aten::index.*")
        torch.onnx.export(WindowGraph(model), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=names, dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(str(path))


class _PreprocessingHint(logging.Filter):
    """onnxruntime advises shape pre-processing on every quantize_dynamic call (a root-logger warning); for MatMul
    weights it changes nothing, and in an export log it reads like an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_hint():
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
        with _without_preprocessing_hint():
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
    with _without_preprocessing_hint():
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


def validation_calls(info: RunInfo, override: list[Path] | None = None) -> list[Call]:
    """The run's validation calls: the files it validated on, or its held-out share of the training files."""
    if override:
        return load_calls(override)
    changed = [f.path for f in info.validation_sources if f.changed()]
    if changed:
        raise ExportError(f"{changed[0]}: the run's validation data is missing or changed since training; "
                          f"pass --validation FILE (labeled calls the model did not train on)")
    calls = load_calls([Path(f.path) for f in info.validation_sources])
    held_out = info.held_out()
    return [c for c in calls if c.call_id in held_out] if held_out else calls


def quality_deltas(schema: LabelSchema, fp32: dict, int8: dict, gate: GateConfig) -> tuple[dict, list[str]]:
    deltas, failures = {}, []
    for head in schema.all_heads:
        a, b = fp32[head.name], int8[head.name]
        if not a.get("n"):
            continue
        if head.spec.gate_metric == "nmd":
            d = b["nmd"] - a["nmd"]
            deltas[head.name] = {"nmd": d}
            if d > gate.max_nmd_increase:
                failures.append(f"{head.name}: int8 NMD {b['nmd']:.4f} is {d:.4f} worse than fp32 "
                                f"(allowed {gate.max_nmd_increase})")
        else:
            d = b["macro_f1"] - a["macro_f1"]
            deltas[head.name] = {"macro_f1": d}
            if -d > gate.max_macro_f1_drop:
                failures.append(f"{head.name}: int8 macro-F1 {b['macro_f1']:.4f} is {-d:.4f} below fp32 "
                                f"(allowed {gate.max_macro_f1_drop})")
    return deltas, failures


def window_parity(model: CallScorer, session, windows: list[list[int]], pad_id: int,
                  batch: int = 16) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Max |PyTorch − ONNX| per output over the given windows (real tokens only, for per-token outputs), batch by
    batch, and PyTorch's logits per head (so the PyTorch call-level scores need no second forward pass): [W, C] per
    call head, a list of [tokens, C] per window for a turn head. With no session, PyTorch's logits alone."""
    names = output_names(model.schema)
    worst = dict.fromkeys(names, 0.0) if session else {}
    heads = [h.name for h in model.schema.all_heads]
    torch_logits: dict[str, list[np.ndarray]] = {h: [] for h in heads}
    graph = WindowGraph(model.eval())
    for start in range(0, len(windows), batch):
        chunk = windows[start : start + batch]
        ids, mask = pad_windows(chunk, pad_id)
        with torch.no_grad():
            expected = [t.numpy() for t in graph(torch.from_numpy(ids), torch.from_numpy(mask))]
        got = session.run(names, {"input_ids": ids, "attention_mask": mask}) if session else []
        for name, e, g in zip(names, expected, got):
            gap = np.abs(e - g) * (mask[..., None] if e.ndim == 3 else 1)
            worst[name] = max(worst[name], float(gap.max()))
        for head, e in zip(heads, expected[1:]):
            torch_logits[head].extend([e] if e.ndim == 2 else [e[i, : len(w)] for i, w in enumerate(chunk)])
    turn = {h.name for h in model.schema.turn_heads}
    return worst, {head: parts if head in turn else np.concatenate(parts) for head, parts in torch_logits.items()}


def export_run(run_dir: Path, out: Path, version: str | None = None, validation: list[Path] | None = None,
               quantization: str = DEFAULT_QUANTIZATION, gate: GateConfig | None = None, force: bool = False,
               store: bool = True, log=print) -> BundleInfo:
    """Write the bundle to ``out``; raise :class:`ExportError` after writing it if the gate failed and not forced."""
    gate = gate or GateConfig()
    run_dir, out = Path(run_dir), Path(out)
    info, schema, model, encoder = load_run(run_dir)
    version = version or time.strftime("%Y%m%d-%H%M%S")
    if store:
        stored_already(version)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "tokenizer.json", out / "tokenizer.json")

    started = time.time()
    log("exporting model.onnx (fp32)")
    export_onnx(model, out / "model.onnx")
    calls = validation_calls(info, validation)
    log(f"gate: checking on {len(calls)} validation calls")
    encoded = encoder.encode_batch(calls)
    windows = [w for e in encoded for w in e.windows]
    fp32_session = make_session(out / "model.onnx")
    parity, torch_logits = window_parity(model, fp32_session, windows, encoder.pad_id)

    draft = BundleInfo.model_validate({
        "name": run_dir.name, "version": version, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "callqa_version": code_version(), "run": str(run_dir), "encoder": str(info.encoder),
        "schema": info.label_schema.model_dump(mode="json"), "render": info.render.model_dump(mode="json"),
        "thresholds": info.thresholds, "data": [f.model_dump() for f in info.data],
        "quantization": quantization, "gate": {"passed": False}, "files": {},
    })
    targets = call_targets(calls, schema)
    targets.update({h.name: turn_targets(calls, h) for h in schema.turn_heads})
    thresholds = {k: np.array(v) for k, v in draft.thresholds.items()}

    def probs_of(predictions: list) -> dict[str, np.ndarray]:
        """Call heads [N, C] and turn heads [T, C] (NaN rows where a head has no prediction for a turn)."""
        return {**stack_probs(predictions), **{h.name: stack_turn_probs(predictions, h)[0] for h in schema.turn_heads}}

    dialogue = np.repeat(np.arange(len(calls)), [len(c.turns) for c in calls])

    def metrics_of(probs: dict[str, np.ndarray], own_thresholds: dict[str, list[float]] | None = None) -> dict:
        cuts = thresholds if own_thresholds is None else {k: np.array(v) for k, v in own_thresholds.items()}
        return evaluate_heads(schema, probs, targets, cuts, dialogue)

    fp32_scorer = OnnxScorer(fp32_session, encoder, draft)
    # PyTorch's window logits go through the same aggregation as ONNX's, so the two differ only by the graphs.
    torch_probs = probs_of(fp32_scorer.from_window_logits(encoded, torch_logits, calls))
    fp32_probs = probs_of(fp32_scorer.predict_encoded(encoded, calls))
    metrics = {"pytorch": metrics_of(torch_probs), "fp32": metrics_of(fp32_probs)}
    call_parity = max(float(np.nan_to_num(np.abs(torch_probs[h] - fp32_probs[h])).max(initial=0.0)) for h in fp32_probs)
    parity_failures = []
    logit_gap = max(v for k, v in parity.items() if k != "pooled")
    if logit_gap > gate.parity_tolerance:
        parity_failures.append(f"PyTorch vs ONNX fp32 window logits differ by {logit_gap:.2e} "
                               f"(allowed {gate.parity_tolerance:.0e})")

    hidden = model.encoder.config
    methods = AUTO if quantization == "auto" else (quantization,)
    log(f"quantizing model.int8.onnx ({', '.join(methods)}"
        + ("; the fastest that passes the gate serves)" if quantization == "auto" else ")"))
    calibration = window_feeds(windows, encoder.pad_id) if any(m.startswith("static") for m in methods) else None
    timing = window_feeds(windows, encoder.pad_id, limit=TIMING_WINDOWS, batch=32)
    speed = {"fp32": windows_per_second(fp32_session, timing)}
    tried, int8_metrics = {}, {}
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        for method in methods:
            path = Path(tmp) / f"{method}.onnx"
            quantize(out / "model.onnx", path, method, hidden.num_attention_heads, hidden.hidden_size, calibration)
            session = make_session(path)
            int8_metrics[method] = metrics_of(probs_of(OnnxScorer(session, encoder, draft).predict_encoded(encoded, calls)))
            deltas, quality_failures = quality_deltas(schema, metrics["fp32"], int8_metrics[method], gate)
            speed[method] = windows_per_second(session, timing)
            tried[method] = {"int8_vs_fp32": deltas, "failures": quality_failures, "windows_per_s": speed[method]}
        passing = [m for m in methods if not tried[m]["failures"]]
        # The int8 file is the fastest method that passed (or, when none did, the fastest one, kept to inspect).
        method = max(passing or methods, key=speed.__getitem__)
        shutil.move(path.with_name(f"{method}.onnx"), out / "model.int8.onnx")
    deltas, quality_failures = tried[method]["int8_vs_fp32"], tried[method]["failures"]
    metrics["int8"] = int8_metrics[method]
    # auto promises the fastest graph that keeps quality: fp32 (vetted by the parity check) when no int8 method
    # passes, or when this machine runs fp32 faster (no VNNI, tiny models). A method asked for by name serves itself.
    serve = "fp32" if quantization == "auto" and (not passing or speed["fp32"] >= speed[method]) else "int8"
    # One line says what happened: each method tried, and what serves.
    verdicts = [f"{m} failed the gate ({'; '.join(tried[m]['failures'])})" if tried[m]["failures"]
                else f"{m} passed ({speed[m] / speed['fp32']:.2f}× fp32)" for m in methods]
    if serve == "fp32":
        chosen = "serving fp32 (model.onnx): " + ("passed" if not parity_failures else "failed")
    else:
        chosen = f"serving int8 {method}: " + ("passed" if not quality_failures else "failed: " + "; ".join(quality_failures))
    log(", ".join([*verdicts, chosen]))
    draft = draft.model_copy(update={"quantization": method, "serve": serve})
    # A student against its teacher's PyTorch fp32, by the gate's measures. Reported, not enforced: whether its speed
    # is worth the loss is the user's trade; the gate proper guards the export (int8 against its own fp32).
    vs_teacher, teacher = None, distilled_from(info, log)
    if teacher:
        _, logits = window_parity(teacher[1], None, windows, encoder.pad_id)
        metrics["teacher"] = metrics_of(probs_of(fp32_scorer.from_window_logits(encoded, logits, calls)),
                                        teacher[0].thresholds)
        deltas_vs_teacher, outside = quality_deltas(schema, metrics["teacher"], metrics[serve], gate)
        vs_teacher = {"teacher": info.config["distill"]["teacher"], "deltas": deltas_vs_teacher, "within_limits": not outside,
                      "outside": outside}
        log(f"{serve} against the teacher's PyTorch fp32: "
            + ("within the gate's limits" if not outside else "outside the gate's limits: " + "; ".join(outside)))
    failures = parity_failures + (quality_failures if serve == "int8" else [])
    result = GateResult(passed=not failures, forced=bool(failures) and force, failures=failures)

    parity_report = {
        "n_calls": len(calls), "n_windows": len(windows), "gate": gate.model_dump(), "result": result.model_dump(),
        "pytorch_vs_onnx_fp32": {"max_abs_window_output": parity, "max_abs_call_probability": call_parity},
        "int8_vs_fp32": deltas, "quantization": method, "quantizations_tried": tried, "serve": serve,
        "fp32_windows_per_s": speed["fp32"], "served_vs_teacher": vs_teacher,
        "seconds": round(time.time() - started, 1),
    }
    (out / "parity.json").write_text(json.dumps(parity_report, indent=2) + "\n", encoding="utf-8")
    report = run_dir / "eval" / "report.html"
    if report.exists():
        shutil.copyfile(report, out / "report.html")
    files = {name: sha256_file(out / name) for name in ("model.onnx", "model.int8.onnx", "tokenizer.json", "parity.json")}
    bundle = draft.model_copy(update={"metrics": {"validation": metrics}, "gate": result, "files": files})
    write_bundle_info(out, bundle)

    if failures and not force:
        raise ExportError("export gate failed, bundle not stored:\n  " + "\n  ".join(failures)
                          + f"\nInspect {out}/parity.json; --force exports anyway and records the override.")
    if store:
        save_to_store(out, bundle)
        log(f"stored as {bundle.tag} in the BentoML model store")
    return bundle


def distilled_from(info: RunInfo, log) -> tuple[RunInfo, CallScorer] | None:
    """A distilled run's teacher (its run info and model), if the run was distilled and the teacher is still there."""
    if not info.config.get("distill"):
        return None
    teacher = Path(info.config["distill"]["teacher"])
    if not (teacher / "run.json").exists():
        log(f"teacher {teacher} not found: the student is not compared with it")
        return None
    teacher_info, _, model, _ = load_run(teacher)
    return teacher_info, model


def stored_already(version: str) -> None:
    """Refuse a version the BentoML store holds, before any work (the store never overwrites a tag)."""
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{BENTO_MODEL_NAME}:{version}"
    try:
        bentoml.models.get(tag)
    except NotFound:
        return
    raise ExportError(f"{tag} is already in the BentoML model store ({os.environ.get('BENTOML_HOME', '~/bentoml')}): "
                      f"choose another --version, or delete it first with `bentoml models delete {tag}`")


def save_to_store(directory: Path, bundle: BundleInfo) -> None:
    import bentoml

    metadata = {"gate_passed": bundle.gate.passed, "forced": bundle.gate.forced, "run": bundle.run,
                "encoder": bundle.encoder, "quantization": bundle.quantization, "callqa_version": bundle.callqa_version,
                "heads": [h.name for h in bundle.schema_.all_heads]}
    with bentoml.models.create(bundle.tag, labels={"schema": bundle.schema_.name}, metadata=metadata) as model:
        for path in Path(directory).iterdir():
            if path.is_file():
                shutil.copyfile(path, Path(model.path) / path.name)

