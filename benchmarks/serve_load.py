"""Serve a bundle on a free loopback port (local-demo mode, no keys), load it at concurrency 1/8/32, stop it; and
measure raw onnxruntime on the same calls in this process before and after every load round, so each round's share is
a ratio taken within minutes (this VM's speed drifts by tens of percent, sometimes within one run); the median over
rounds is reported.

    python benchmarks/serve_load.py --bundle bundles/demo-k4 --data data/sample/test.jsonl \
        --out benchmarks/results/serve-latest.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from callqa.bundle import resolve_bundle
from callqa.jsonl import load_calls
from callqa.scorer import OnnxScorer
from callqa.serving.process import start_serve, stop_tree


def raw_calls_per_second(scorer: OnnxScorer, calls: list, passes: int = 3) -> dict[str, float]:
    """Batch-32 calls/s (best of ``passes``): the pre-tokenized model alone, as `callqa bench` measures it, and with
    rendering and tokenizing included (what a server must also do per call)."""
    encoded = scorer.encode(calls)
    scorer.predict_encoded(encoded[:8])  # warm-up
    best_model = best_total = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for start in range(0, len(encoded), 32):
            scorer.predict_encoded(encoded[start : start + 32])
        best_model = min(best_model, time.perf_counter() - started)
        started = time.perf_counter()
        for start in range(0, len(calls), 32):
            scorer.predict(calls[start : start + 32])
        best_total = min(best_total, time.perf_counter() - started)
    return {"model_only": len(calls) / best_model, "with_tokenizing": len(calls) / best_total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3, help="load rounds, each between two raw measurements; the "
                        "share reported is the median over rounds")
    args = parser.parse_args()

    calls = load_calls(Path(args.data))
    scorer = OnnxScorer.from_bundle(resolve_bundle(args.bundle), threads=os.cpu_count())
    tmp = Path(tempfile.mkdtemp(prefix="callqa-load-"))
    server, port = start_serve(args.bundle, tmp / "server.log", "--no-auth", "--db", f"sqlite:///{tmp}/callqa.db")
    raw, rounds = [raw_calls_per_second(scorer, calls)], []
    try:
        for i in range(args.rounds):
            out = tmp / f"round-{i}.json"
            subprocess.run([sys.executable, "-m", "callqa.cli", "bench-serve", "--url", f"http://127.0.0.1:{port}",
                            "--data", args.data, "--requests", str(args.requests), "--out", str(out)], check=True)
            rounds.append(json.loads(out.read_text(encoding="utf-8")))
            raw.append(raw_calls_per_second(scorer, calls))
    finally:
        stop_tree(server)
        shutil.rmtree(tmp, ignore_errors=True)
    result = {**rounds[0], "rounds": [], "raw_onnxruntime_batch32": raw, "model_file": scorer.info.model_file}
    shares: dict[str, list[float]] = {level: [] for level in rounds[0]["levels"]}
    for i, measured in enumerate(rounds):
        # Each round against the mean of the raw measurements just before and just after it.
        around = {kind: (raw[i][kind] + raw[i + 1][kind]) / 2 for kind in raw[i]}
        for level, entry in measured["levels"].items():
            entry["share_of_raw"] = {kind: entry["calls_per_s"] / value for kind, value in around.items()}
            shares[level].append(entry["share_of_raw"]["model_only"])
        result["rounds"].append(measured["levels"])
    result["median_share_of_raw_model_only"] = {level: float(np.median(v)) for level, v in shares.items()}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("raw onnxruntime, batch 32, pre-tokenized, around the rounds: "
          + " / ".join(f"{r['model_only']:.1f}" for r in raw))
    for level, values in shares.items():
        calls_per_s = [r[level]["calls_per_s"] for r in result["rounds"]]
        print(f"concurrency {level}: " + " / ".join(f"{c:.1f}" for c in calls_per_s) + " calls/s; share of raw "
              + " / ".join(f"{v:.2f}" for v in values) + f", median {np.median(values):.2f}")


if __name__ == "__main__":
    main()
