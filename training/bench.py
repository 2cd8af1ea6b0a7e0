"""`callqa bench`: PyTorch fp32 vs onnxruntime fp32 vs onnxruntime int8 on the same calls, end to end.

Every engine scores through the same :class:`callqa.scorer.OnnxScorer` path (render, window, length-sorted
chunks, weighted window mean); only the thing that maps windows to logits differs. Each engine runs in its own
process, so its peak RSS is its own. Quantization variants (``--quantization all``) are also checked for quality:
their NMD / macro-F1 deltas against fp32 on the same labeled calls.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from callqa.bundle import read_bundle_info
from callqa.jsonl import load_calls, write_calls

from .roof import encoder_flops_per_token, roof

BATCH_SIZES = (1, 8, 32)


class TorchSession:
    """Looks like an onnxruntime session (``run(names, feeds)``) but runs the PyTorch model of the run."""

    def __init__(self, run_dir: Path, threads: int):
        import torch

        from .export import WindowGraph, output_names
        from .model import CallScorer
        from .run import RunDir

        torch.set_num_threads(threads)
        self.torch = torch
        model = CallScorer.load(RunDir(run_dir).model)
        self.graph = WindowGraph(model).eval()
        self.names = output_names(model.schema)

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self.torch.inference_mode():
            outputs = self.graph(self.torch.from_numpy(feeds["input_ids"]), self.torch.from_numpy(feeds["attention_mask"]))
        by_name = dict(zip(self.names, outputs))
        return [by_name[n].numpy() for n in names]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split(":", 1)[1].split() if "avx" in f or "vnni" in f or "amx" in f)
    except OSError:
        pass
    return []


def machine() -> dict:
    """The CPU a benchmark ran on, as every results file records it: model, cores, AVX / VNNI / AMX flags."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "flags": cpu_flags()}


def peak_rss_mb() -> float:
    # VmHWM is this process's own high-water mark; ru_maxrss would carry the parent's over fork + exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(engine: str, model_path: str, bundle: Path, data: Path, threads: int, repeats: int) -> dict:
    """Runs in a child process: one engine, all batch sizes; returns throughput, latency, RSS and probabilities."""
    from callqa.render import CallEncoder
    from callqa.scorer import OnnxScorer, TokenCount, make_session, stack_probs, stack_turn_probs

    info = read_bundle_info(bundle)  # no gate check: measuring a bundle whose gate failed is part of the job
    encoder = CallEncoder.from_file(bundle / "tokenizer.json", info.render)
    session = TorchSession(Path(model_path), threads) if engine == "pytorch-fp32" else make_session(Path(model_path), threads)
    scorer = OnnxScorer(session, encoder, info)
    calls = load_calls(data)
    encoded = scorer.encode(calls)
    tokens = sum(e.n_tokens for e in encoded)
    scorer.predict_encoded(encoded[:8])  # warm-up: first-run allocations are not what a server sees
    result: dict = {"engine": engine, "threads": threads, "calls": len(calls), "tokens": tokens,
                    "windows": sum(len(e.windows) for e in encoded),
                    "window_tokens": sum(len(w) for e in encoded for w in e.windows), "batch": {}}
    for size in BATCH_SIZES:
        latencies, elapsed = [], 0.0
        scorer.tokens = TokenCount()
        for _ in range(repeats):
            for start in range(0, len(encoded), size):
                t0 = time.perf_counter()
                scorer.predict_encoded(encoded[start : start + size])
                latencies.append(time.perf_counter() - t0)
            elapsed += sum(latencies[-((len(encoded) + size - 1) // size):])
        entry = {"calls_per_s": repeats * len(calls) / elapsed, "tokens_per_s": repeats * tokens / elapsed,
                 # window tokens (overlaps and special tokens included): the work the model does, without padding
                 "window_tokens_per_s": scorer.tokens.real / elapsed, "padding_waste": scorer.tokens.waste}
        if size == 1:
            entry.update(p50_ms=1000 * float(np.percentile(latencies, 50)), p99_ms=1000 * float(np.percentile(latencies, 99)))
        result["batch"][str(size)] = entry
    predictions = scorer.predict_encoded(encoded, calls)
    # Call heads [N, C] and turn heads [T, C] over every turn (NaN rows for turns a head does not reach), as the
    # export gate compares them.
    result["probs"] = {**{h: v.tolist() for h, v in stack_probs(predictions).items()},
                       **{h.name: stack_turn_probs(predictions, h)[0].tolist() for h in info.schema_.turn_heads}}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _spawn(engine: str, model_path: Path, bundle: Path, data: Path, threads: int, repeats: int, log) -> dict:
    log(f"bench: {engine} ({model_path.name}) …")
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, "-m", "callqa.training.bench", engine, str(model_path), str(bundle), str(data),
               str(threads), str(repeats), out.name]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"bench worker for {engine} failed:\n{done.stderr[-3000:]}")
        return json.loads(Path(out.name).read_text())


def bench(bundle: Path, run_dir: Path | None = None, data: Path | None = None, quantization: list[str] | None = None,
          threads: int | None = None, repeats: int = 1, log=print) -> dict:
    from callqa.render import CallEncoder

    from .export import quantize, validation_calls, window_feeds
    from .run import RunDir

    bundle = Path(bundle)
    info = read_bundle_info(bundle)
    run_dir = Path(run_dir or info.run)
    threads = threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            data = Path(tmp) / "calls.jsonl"
            write_calls(data, validation_calls(RunDir(run_dir).info()))
        engines = [("pytorch-fp32", run_dir), ("ort-fp32", bundle / "model.onnx"),
                   (f"ort-int8 ({info.quantization})", bundle / "model.int8.onnx")]
        feeds = None
        if any(m.startswith("static") for m in quantization or []):
            # Static methods calibrate on the bench's calls, as export calibrates on the validation calls it gates on.
            encoder = CallEncoder.from_file(bundle / "tokenizer.json", info.render)
            feeds = window_feeds([w for e in encoder.encode_batch(load_calls(data)) for w in e.windows], encoder.pad_id)
        config = RunDir(info.run).encoder_config()
        for method in quantization or []:
            if method == info.quantization:  # already measured as the bundle's own int8 graph
                continue
            path = Path(tmp) / f"{method}.onnx"
            quantize(bundle / "model.onnx", path, method, config["num_attention_heads"], config["hidden_size"], feeds)
            engines.append((f"ort-int8 ({method})", path))
        results = [_spawn(name, path, bundle, data, threads, repeats, log) for name, path in engines]
        calls = load_calls(data)
    log("bench: matrix-multiply peaks (fp32, int8) …")
    peaks = roof(threads)
    for r in results:
        # Useful work per second at batch 32 against the peak of the engine's arithmetic (int8 graphs: the int8 peak).
        model_run = run_dir if r["engine"] == "pytorch-fp32" else Path(info.run)
        config = RunDir(model_run).encoder_config()
        b32 = r["batch"]["32"]
        flops = encoder_flops_per_token(config, r["window_tokens"] / r["windows"]) * b32["window_tokens_per_s"]
        peak = peaks["int8_gops"] if "int8" in r["engine"] else peaks["fp32_gflops"]
        r["layers"] = config["num_hidden_layers"]
        r["gflops"], r["roof_fraction"] = flops / 1e9, flops / 1e9 / peak

    from callqa.metrics import evaluate_heads
    from callqa.scorer import turn_targets

    from .baselines import targets as call_targets

    schema = info.schema_
    targets = {**call_targets(calls, schema), **{h.name: turn_targets(calls, h) for h in schema.turn_heads}}
    dialogue = np.repeat(np.arange(len(calls)), [len(c.turns) for c in calls])
    quality = {}
    for r in results:
        probs = {h: np.array(v, dtype=np.float64) for h, v in r.pop("probs").items()}
        # Each model with its own topic thresholds: the PyTorch baseline may be another run (a student's teacher).
        own = RunDir(run_dir).info().thresholds if r["engine"] == "pytorch-fp32" else info.thresholds
        thresholds = {k: np.array(v) for k, v in own.items()}
        quality[r["engine"]] = evaluate_heads(schema, probs, targets, thresholds, dialogue)
    base = results[0]["batch"]
    for r in results:
        r["speedup_vs_pytorch"] = {b: r["batch"][b]["calls_per_s"] / base[b]["calls_per_s"] for b in base}
        r["quality"] = headline_metrics(schema, quality[r["engine"]])
        # Against the bundle's fp32 graph, and against the PyTorch baseline's run (for a distilled bundle benched
        # with --run TEACHER, the teacher): the headline metric's difference per head.
        r["quality_delta_vs_fp32"] = _deltas(headline_metrics(schema, quality["ort-fp32"]), r["quality"])
        r["quality_delta_vs_pytorch"] = _deltas(headline_metrics(schema, quality["pytorch-fp32"]), r["quality"])
    import onnxruntime
    import torch

    return {
        "bundle": str(bundle), "version": info.version, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine(), "threads": threads, "torch": torch.__version__,
                    "onnxruntime": onnxruntime.__version__, "roof": peaks},
        "render": info.render.model_dump(), "repeats": repeats, "engines": results,
    }


def headline_metrics(schema, metrics: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per head, the metric bench reports: the export gate's (NMD, or macro-F1) for call heads, STC-3's JSD for turn
    heads; heads no call carries are left out."""
    out = {}
    for head in schema.all_heads:
        found = metrics[head.name]
        if found.get("n"):
            name = "jsd" if head.name in {h.name for h in schema.turn_heads} else head.spec.gate_metric
            out[head.name] = {name: found[name]}
    return out


def _deltas(base: dict[str, dict[str, float]], other: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {h: {m: other[h][m] - v for m, v in metrics.items()} for h, metrics in base.items() if h in other}


def markdown_table(result: dict) -> str:
    lines = ["| engine | layers | calls/s b=1 | b=8 | b=32 | tokens/s b=32 | padding b=32 | GFLOP/s (GOP/s) b=32 | "
             "% of roof | p50 ms b=1 | × PyTorch b=32 | Δ vs baseline | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["engines"]:
        b = r["batch"]
        delta = ", ".join(f"{h} {next(iter(v.values())):+.3f}" for h, v in r.get("quality_delta_vs_pytorch", {}).items())
        lines.append(f"| {r['engine']} | {r['layers']} | {b['1']['calls_per_s']:.1f} | {b['8']['calls_per_s']:.1f} | "
                     f"{b['32']['calls_per_s']:.1f} | {b['32']['tokens_per_s']:.0f} | {b['32']['padding_waste']:.1%} | "
                     f"{r['gflops']:.0f} | {r['roof_fraction']:.0%} | {b['1']['p50_ms']:.0f} | "
                     f"{r['speedup_vs_pytorch']['32']:.2f} | {delta or '–'} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    engine, model_path, bundle_dir, data_file, n_threads, n_repeats, out_file = sys.argv[1:8]
    outcome = run_worker(engine, model_path, Path(bundle_dir), Path(data_file), int(n_threads), int(n_repeats))
    Path(out_file).write_text(json.dumps(outcome))
