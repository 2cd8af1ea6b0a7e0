"""`callqa score` throughput: the local engine vs a local Ray on the same generated calls, same bundle, same parts.

    python benchmarks/batch_scale.py --bundle bundles/demo/current --calls 2000 [--out benchmarks/results/batch-latest.json]

Calls are the sample set repeated with new ids (as many as --calls). Each engine writes its own Parquet dataset; the
script checks both hold the same rows, and reports calls/s, the Ray job's start-up (ray.init and the actors' bundle
loads are inside its time) and the CPU's ISA flags.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from callqa import ScoringSession, resolve_bundle
from callqa.batch import LocalEngine, ParquetSink, RayEngine, read_scores

LOCAL_CHECK = 2000
SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample" / "calls.jsonl"


def generate(n: int, path: Path, labels: bool = False) -> None:
    """``n`` calls: the sample set repeated with new ids (benchmarks/train_memory.py keeps the labels)."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            call = json.loads(lines[i % len(lines)])
            call["call_id"] = f"g{i:07d}"
            if not labels:
                call.pop("labels", None)
            out.write(json.dumps(call, ensure_ascii=False) + "\n")


def isa() -> list[str]:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("avx", "amx")) or f in ("fma", "f16c"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="bundles/demo/current")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=250)
    parser.add_argument("--engines", nargs="+", choices=["local", "local-one-run", "ray"], default=["local", "ray"],
                        help="engines to time, in order (Ray alone is checked against local on the first calls); "
                        "local-one-run: the local engine as it was until 2026-11-24, one model run on every core")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/batch-latest.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="callqa-batch-"))
    data = work / "calls.jsonl"
    generate(args.calls, data)
    bundle = resolve_bundle(args.bundle)
    cores = len(os.sched_getaffinity(0))
    # As `callqa score` runs it: a single-thread run per core; local-one-run: one run on every core.
    session = ScoringSession(bundle, "default", run_threads=1, runs=None)
    one_run = ScoringSession(bundle, "default", run_threads=cores, runs=1)
    scorer = session.scorer

    result = {
        "what": "callqa score, local engine (a model run per core, 1 onnxruntime thread each) vs --engine ray (local "
                "Ray, one actor per core, 1 onnxruntime thread each); benchmarks/batch_scale.py",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "isa": isa()},
        "bundle": scorer.info.tag, "model_file": scorer.info.model_file, "calls": args.calls,
        "chunk_size": args.chunk_size,
    }
    for engine in args.engines:
        print(f"{args.calls} calls: {engine} engine …", flush=True)
        started = time.perf_counter()
        if engine == "local":
            done = LocalEngine().run(session, [data], ParquetSink(str(work / engine)), chunk_size=args.chunk_size)
        elif engine == "local-one-run":
            done = LocalEngine().run(one_run, [data], ParquetSink(str(work / engine)), chunk_size=args.chunk_size)
        else:
            done = RayEngine(workers=os.cpu_count()).run(session, [data], ParquetSink(str(work / engine)),
                                                         chunk_size=args.chunk_size)
        seconds = time.perf_counter() - started
        result[engine] = {"seconds": seconds, "calls_per_s": done.calls / seconds, "padding_waste": done.padding_waste}
        print(f"{engine}: {done.calls / seconds:.1f} calls/s", flush=True)
    if "local" not in args.engines:
        # Ray alone: its rows are checked against the local engine on the first calls (a whole second run would
        # double the benchmark's time for the same check).
        head = work / "head.jsonl"
        with open(data, encoding="utf-8") as src, open(head, "w", encoding="utf-8") as dst:
            dst.writelines(line for _, line in zip(range(LOCAL_CHECK), src))
        LocalEngine().run(session, [head], ParquetSink(str(work / "local")), chunk_size=args.chunk_size)
    totals = {engine: dict(zip(*read_scores(work / engine).select(["call_id", "scorecard.total"]).to_pydict().values()))
              for engine in ("local", "ray") if (work / engine).exists()}
    if len(totals) == 2:
        result["same_totals"] = all(totals["ray"].get(call) == total for call, total in totals["local"].items())
        result["compared_calls"] = len(totals["local"])
    for other in ("ray", "local-one-run"):
        if other in result and "local" in result:
            result[f"{other}_vs_local"] = result[other]["calls_per_s"] / result["local"]["calls_per_s"]
    print(json.dumps(result, indent=2))
    shutil.rmtree(work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
