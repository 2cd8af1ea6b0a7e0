"""What this machine can do: measured matrix-multiply peaks (fp32, and int8 as onnxruntime runs it) and the work an
encoder does per token, so `callqa bench` can say how close each engine runs to the roof.

The peaks are onnxruntime's own kernels (MLAS) on one large MatMul / MatMulInteger with the bench's thread count: the
best this runtime does on this CPU, which is what an encoder graph can hope for. int8 is u8 activations × s8 weights
(what dynamic quantization emits, and what AVX512-VNNI's vpdpbusd multiplies).
"""

from __future__ import annotations

import time

import numpy as np


def encoder_flops_per_token(config: dict, window: float) -> float:
    """Multiply-adds × 2 per token of a BERT-style encoder: the projections and feed-forward (4H² + 2HI per layer) and
    attention over a window of ``window`` tokens (2·T·H per layer for the scores and the weighted values)."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return 2.0 * layers * (4 * h * h + 2 * h * i + 2 * window * h)


def _matmul_session(int8: bool, n: int, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        weight = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "B")
        node = helper.make_node("MatMulInteger", ["A", "B"], ["C"])
        a_type, c_type = TensorProto.UINT8, TensorProto.INT32
    else:
        weight = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["C"])
        a_type, c_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph([node], "roof", [helper.make_tensor_value_info("A", a_type, [n, n])],
                              [helper.make_tensor_value_info("C", c_type, [n, n])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def matmul_peak(int8: bool, threads: int, n: int = 1024, seconds: float = 2.0) -> float:
    """GFLOP/s (fp32) or GOP/s (int8) of the best of repeated n×n×n products."""
    session = _matmul_session(int8, n, threads)
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (n, n), dtype=np.uint8) if int8 else rng.standard_normal((n, n)).astype(np.float32)
    session.run(None, {"A": a})
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        session.run(None, {"A": a})
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def roof(threads: int) -> dict:
    return {"fp32_gflops": matmul_peak(False, threads), "int8_gops": matmul_peak(True, threads)}
