"""Peak memory of a training set: held in memory (as training did before) vs streamed into memory-mapped Arrow.

    python benchmarks/train_memory.py --calls 100000 [--out benchmarks/results/train-memory-latest.json]

Calls are the labeled sample set repeated with new ids. Each way runs in a fresh process that renders the calls with
the demo recipe's tokenizer and windows and then reads every batch of one epoch, as the training loop does (no
model: this measures the data, not the encoder); the process's peak RSS and the seconds taken are reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batch_scale import generate  # the sample set repeated with new ids, as the batch benchmark makes it

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "train" / "demo.yaml"


def child(way: str, data: Path, work: Path) -> dict:
    from callqa import CallEncoder, TrainConfig, load_calls
    from callqa.encoders import resolve_encoder
    from callqa.training.data import bucketed_batches, build_dataset, call_lengths, iterate
    from callqa.training.trainer import load_tokenizer, load_training_data

    config = TrainConfig.from_yaml(RECIPE)
    schema = config.label_schema()
    encoder = CallEncoder(load_tokenizer(resolve_encoder(config.encoder)), config.render)
    started = time.perf_counter()
    if way == "in-memory":  # what `callqa train` did before: every call, then every rendered row, as Python objects
        rows = build_dataset(load_calls(data, schema), encoder, schema).to_list()
    else:
        rows, _, _ = load_training_data(config, [data], [data.with_name("validation.jsonl")], encoder, work)
    rendered = time.perf_counter() - started
    batches = bucketed_batches(call_lengths(rows), config.optim.batch_size, seed=0)
    started = time.perf_counter()
    tokens = sum(int(b.attention_mask.sum()) for b in iterate(rows, batches, schema, encoder.pad_id))
    return {"way": way, "calls": len(rows), "render_s": round(rendered, 1),
            "epoch_read_s": round(time.perf_counter() - started, 1), "tokens": tokens,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train-memory-latest.json"))
    parser.add_argument("--child", nargs=3, metavar=("WAY", "DATA", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), Path(args.child[2]))))
        return
    with tempfile.TemporaryDirectory(prefix="callqa-train-memory-") as work:
        data = Path(work) / "train.jsonl"
        generate(args.calls, data, labels=True)
        generate(200, data.with_name("validation.jsonl"), labels=True)
        results = []
        for way in ("in-memory", "streamed"):
            done = subprocess.run([sys.executable, __file__, "--child", way, str(data), work], check=True,
                                  capture_output=True, text=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(results[-1], flush=True)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "calls": args.calls, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
