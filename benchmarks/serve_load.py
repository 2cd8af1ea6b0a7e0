"""Serve a bundle on a free loopback port (local-demo mode, no keys), load it at concurrency 1/8/32, stop it; and
measure raw onnxruntime on the same calls in this process just before and after, so the served share is a ratio
taken in one run (this VM's speed drifts by tens of percent between runs).

    python benchmarks/serve_load.py --bundle bundles/demo-k4 --data data/sample/test.jsonl \
        --out benchmarks/results/serve-latest.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    args = parser.parse_args()

    calls = load_calls(Path(args.data))
    scorer = OnnxScorer.from_bundle(resolve_bundle(args.bundle), threads=os.cpu_count())
    before = raw_calls_per_second(scorer, calls)
    tmp = Path(tempfile.mkdtemp(prefix="callqa-load-"))
    server, port = start_serve(args.bundle, tmp / "server.log", "--no-auth", "--db", f"sqlite:///{tmp}/callqa.db")
    try:
        subprocess.run([sys.executable, "-m", "callqa.cli", "bench-serve", "--url", f"http://127.0.0.1:{port}",
                        "--data", args.data, "--requests", str(args.requests), "--out", args.out], check=True)
    finally:
        stop_tree(server)
    after = raw_calls_per_second(scorer, calls)
    result = json.loads(Path(args.out).read_text(encoding="utf-8"))
    raw = {kind: (before[kind] + after[kind]) / 2 for kind in before}
    result["raw_onnxruntime_batch32"] = {"before": before, "after": after, "mean": raw,
                                         "model_file": scorer.info.model_file}
    for entry in result["levels"].values():
        entry["share_of_raw"] = {kind: entry["calls_per_s"] / value for kind, value in raw.items()}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("raw onnxruntime, batch 32 (before / after): "
          + ", ".join(f"{kind} {before[kind]:.1f} / {after[kind]:.1f}" for kind in before))
    for level, entry in result["levels"].items():
        print(f"concurrency {level}: {entry['calls_per_s']:.1f} calls/s = "
              + ", ".join(f"{share:.2f} of raw {kind}" for kind, share in entry["share_of_raw"].items()))


if __name__ == "__main__":
    main()
