"""onnxruntime's settings on one bundle, and where each int8 method spends its time, operator by operator.

    python benchmarks/ort_options.py --bundle bundles/demo-k4 --data data/sample/validation.jsonl \
        [--out benchmarks/results/ort-options-latest.json]

Part 1, settings: the bundle's served graph and its fp32 graph, length-sorted batches of 32 windows, windows/s (best
of 3 passes) for: what callqa uses (all graph optimisations, one intra-op thread per core, memory arena, spinning
threads), and each one changed: basic / extended optimisation only, one thread, no memory arena, no spinning, and IO
binding (inputs bound once, outputs into onnxruntime-allocated buffers).
Part 2, operators: each int8 method profiled by onnxruntime on the same batches; the time per operator type and the
share of MatMuls that run int8 kernels. That is how one sees why a method is slow (docs/export.md).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from callqa import CallEncoder, RunDir, load_calls, read_bundle_info
from callqa.training.bench import machine
from callqa.training.export import quantize, window_feeds, windows_per_second

METHODS = ("qint8", "qint8-per-channel", "fused-qint8", "static-u8s8", "static-s8s8")


def session(path: Path, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, threads: int | None = None,
            arena: bool = True, spinning: bool = True, profile: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if profile:
        options.enable_profiling, options.profile_file_prefix = True, profile
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def io_bound_windows_per_second(sess: ort.InferenceSession, feeds: list[dict[str, np.ndarray]], passes: int = 3) -> float:
    """windows_per_second with IO binding: each batch's inputs bound once beforehand, outputs left in ORT's buffers."""
    bindings = []
    for feed in feeds:
        binding = sess.io_binding()
        for name, array in feed.items():
            binding.bind_cpu_input(name, array)
        for output in sess.get_outputs():
            binding.bind_output(output.name)
        bindings.append(binding)
    sess.run_with_iobinding(bindings[0])
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for binding in bindings:
            sess.run_with_iobinding(binding)
        best = min(best, time.perf_counter() - started)
    return sum(len(f["input_ids"]) for f in feeds) / best


def settings(path: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    levels = ort.GraphOptimizationLevel
    variants = {
        "callqa (all optimisations, 1 thread per core, arena, spinning)": {},
        "basic optimisations only": {"level": levels.ORT_ENABLE_BASIC},
        "extended optimisations": {"level": levels.ORT_ENABLE_EXTENDED},
        "1 intra-op thread": {"threads": 1},
        "no memory arena": {"arena": False},
        "no spinning": {"spinning": False},
    }
    out = {name: windows_per_second(session(path, **kw), feeds, passes=3) for name, kw in variants.items()}
    out["IO binding"] = io_bound_windows_per_second(session(path), feeds)
    return out


def operator_profile(path: Path, feeds: list[dict[str, np.ndarray]], work: Path) -> dict:
    """Share of node time per operator type (kernels after ORT's fusions), over two passes after a warm-up."""
    sess = session(path, profile=str(work / path.stem))
    sess.run(None, feeds[0])
    for _ in range(2):
        for feed in feeds:
            sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    time_by_op: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            time_by_op[event["args"]["op_name"]] += event["dur"]
    total = sum(time_by_op.values())
    return {"node_ms": total / 1000, "share": {op: round(t / total, 4) for op, t in time_by_op.most_common(8)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="calls whose windows are scored (validation calls)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ort-options-latest.json"))
    args = parser.parse_args()
    info = read_bundle_info(args.bundle)
    encoder = CallEncoder.from_file(args.bundle / "tokenizer.json", info.render)
    windows = [w for e in encoder.encode_batch(load_calls(args.data)) for w in e.windows]
    feeds = window_feeds(windows, encoder.pad_id, limit=256, batch=32)
    config = RunDir(info.run).encoder_config()
    result = {"what": "benchmarks/ort_options.py", "machine": {**machine(), "onnxruntime": ort.__version__}, "bundle": info.tag,
              "windows": sum(len(f["input_ids"]) for f in feeds), "settings": {}, "operators": {}}
    served = args.bundle / info.model_file
    for name, path in {f"served ({info.model_file}, {info.quantization})": served,
                       "fp32 (model.onnx)": args.bundle / "model.onnx"}.items():
        print(f"settings: {name} …", flush=True)
        result["settings"][name] = settings(path, feeds)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        calibration = window_feeds(windows, encoder.pad_id)
        graphs = {"fp32": args.bundle / "model.onnx"}
        for method in METHODS:
            graphs[method] = work / f"{method}.onnx"
            quantize(args.bundle / "model.onnx", graphs[method], method, config["num_attention_heads"],
                     config["hidden_size"], calibration)
        for method, path in graphs.items():
            print(f"operators: {method} …", flush=True)
            result["operators"][method] = {"windows_per_s": windows_per_second(session(path), feeds, passes=3),
                                           **operator_profile(path, feeds, work)}
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
