"""Serve a bundle on a free loopback port (local-demo mode, no keys), load it at concurrency 1/8/32, stop it; and
measure raw onnxruntime on the same calls in this process before and after every load round, so each round's share is
a ratio taken within minutes (this VM's speed drifts by tens of percent, sometimes within one run); the median over
rounds is reported. Raw is measured two ways: one run on every core (as `callqa bench` does) and one single-thread
run per core at once (as the server runs the model).

Where the CPU goes is measured too, per call at each level: the server worker's event-loop thread (HTTP, validation,
scorecard, response), its other threads (the model: rendering, tokenizing, onnxruntime), and this process's load
generator — against the CPU raw onnxruntime takes per call. The server and the load generator share the machine's
cores, so the share cannot pass raw CPU / (everything's CPU) per call.

    python benchmarks/serve_load.py --bundle bundles/demo-k4 --data data/sample/test.jsonl \
        --out benchmarks/results/serve-latest.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from callqa import ScoringSession, load_calls
from callqa.scorer import OnnxScorer, ScoringThreads
from callqa.serving.loadtest import load_test
from callqa.serving.process import api_worker, start_serve, stop_tree
from callqa.training.bench import cpu_flags, cpu_model

LEVELS = (1, 8, 32)


def raw_calls_per_second(scorer: OnnxScorer, per_core: ScoringThreads, calls: list, passes: int = 3) -> dict[str, float]:
    """Batch-32 calls/s (best of ``passes``) of raw onnxruntime, two ways: one run on every core (``scorer``: as
    `callqa bench` measures it), and one single-thread run per core at once (``per_core``: as the server runs it);
    the first also with rendering and tokenizing included (what a server must also do per call), and
    the CPU it takes per call (ms, every thread of this process)."""
    encoded = scorer.encode(calls)
    scorer.predict_encoded(encoded[:8])  # warm-up
    best_model = best_total = best_per_core = float("inf")
    cpu = []

    def all_batches(one: OnnxScorer, _=None) -> None:
        for start in range(0, len(encoded), 32):
            one.predict_encoded(encoded[start : start + 32])

    for _ in range(passes):
        started, cpu_started = time.perf_counter(), time.process_time()
        all_batches(scorer)
        best_model = min(best_model, time.perf_counter() - started)
        cpu.append(1000 * (time.process_time() - cpu_started) / len(calls))
        started = time.perf_counter()
        for start in range(0, len(calls), 32):
            scorer.predict(calls[start : start + 32])
        best_total = min(best_total, time.perf_counter() - started)
        started = time.perf_counter()
        list(per_core.map(all_batches, range(per_core.n)))  # every core scores all the calls
        best_per_core = min(best_per_core, (time.perf_counter() - started) / per_core.n)
    return {"model_only": len(calls) / best_model, "with_tokenizing": len(calls) / best_total,
            "model_only_run_per_core": len(calls) / best_per_core, "model_cpu_ms_per_call": float(np.median(cpu))}


def worker_cpu(worker: psutil.Process) -> tuple[float, float]:
    """CPU seconds of the worker's event-loop thread (its main thread) and of all its other threads."""
    main = sum(t.user_time + t.system_time for t in worker.threads() if t.id == worker.pid)
    times = worker.cpu_times()
    return main, times.user + times.system - main


def load_round(url: str, data: Path, requests: int, worker: psutil.Process) -> dict:
    """One load round, level by level, with each level's CPU per call by part."""
    levels = {}
    for level in LEVELS:
        main, rest = worker_cpu(worker)
        generator = time.process_time()
        result = load_test(url, data, levels=(level,), requests_per_level=requests, log=lambda *_: None)
        entry = result["levels"][str(level)]
        n = entry["requests"] + 1  # the warm-up request
        main_after, rest_after = worker_cpu(worker)
        entry["cpu_ms_per_call"] = {"server_event_loop": 1000 * (main_after - main) / n,
                                    "server_model_threads": 1000 * (rest_after - rest) / n,
                                    "load_generator": 1000 * (time.process_time() - generator) / n}
        levels[str(level)] = entry
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=3, help="load rounds, each between two raw measurements; the "
                        "share reported is the median over rounds")
    args = parser.parse_args()

    calls = load_calls(Path(args.data))
    # Raw onnxruntime as callqa scores: one run on every core, and a single-thread run per core side by side.
    scorer = ScoringSession(args.bundle, None, run_threads=os.cpu_count()).scorer
    per_core = ScoringSession(args.bundle, None, run_threads=1).threads()
    tmp = Path(tempfile.mkdtemp(prefix="callqa-load-"))
    server, port = start_serve(args.bundle, tmp / "server.log", "--no-auth", "--db", f"sqlite:///{tmp}/callqa.db")
    raw, rounds = [raw_calls_per_second(scorer, per_core, calls)], []
    try:
        worker = api_worker(server)
        for _ in range(args.rounds):
            rounds.append(load_round(f"http://127.0.0.1:{port}", Path(args.data), args.requests, worker))
            raw.append(raw_calls_per_second(scorer, per_core, calls))
    finally:
        stop_tree(server)
        per_core.close()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"bundle": args.bundle, "data": args.data, "calls_in_pool": len(calls), "requests": args.requests,
              "cpu": cpu_model(), "isa": cpu_flags(), "rounds": [], "raw_onnxruntime_batch32": raw, "model_file": scorer.info.model_file}
    kinds = ("model_only", "model_only_run_per_core")
    shares = {kind: {str(level): [] for level in LEVELS} for kind in kinds}
    for i, levels in enumerate(rounds):
        # Each round against the mean of the raw measurements just before and just after it.
        around = {kind: (raw[i][kind] + raw[i + 1][kind]) / 2 for kind in raw[i]}
        for level, entry in levels.items():
            entry["share_of_raw"] = {kind: entry["calls_per_s"] / around[kind] for kind in (*kinds, "with_tokenizing")}
            entry["cpu_ms_per_call"]["raw_model"] = around["model_cpu_ms_per_call"]
            for kind in kinds:
                shares[kind][level].append(entry["share_of_raw"][kind])
        result["rounds"].append(levels)
    for kind in kinds:
        result[f"median_share_of_raw_{kind}"] = {level: float(np.median(v)) for level, v in shares[kind].items()}
    result["median_cpu_ms_per_call"] = {level: {part: float(np.median([r[level]["cpu_ms_per_call"][part]
                                                                         for r in result["rounds"]]))
                                                for part in result["rounds"][0][level]["cpu_ms_per_call"]}
                                        for level in map(str, LEVELS)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("raw onnxruntime calls/s, batch 32, pre-tokenized, around the rounds: one run on every core "
          + " / ".join(f"{r['model_only']:.1f}" for r in raw) + "; one single-thread run per core "
          + " / ".join(f"{r['model_only_run_per_core']:.1f}" for r in raw))
    for level in map(str, LEVELS):
        calls_per_s = [r[level]["calls_per_s"] for r in result["rounds"]]
        cpu = result["median_cpu_ms_per_call"][level]
        print(f"concurrency {level}: " + " / ".join(f"{c:.1f}" for c in calls_per_s) + " calls/s; share of raw "
              + ", ".join(f"{kind} " + " / ".join(f"{v:.2f}" for v in shares[kind][level])
                          + f" (median {np.median(shares[kind][level]):.2f})" for kind in kinds)
              + "; CPU ms per call: " + ", ".join(f"{part} {ms:.2f}" for part, ms in cpu.items()))

if __name__ == "__main__":
    main()
