"""Several seeds of one recipe, trained and evaluated on the same split: the model's mean ± standard deviation per
head next to the baselines, as JSON and as the markdown table docs/training.md shows.

    python benchmarks/stc3_seeds.py --seeds 42,7,1234          # `make stc3-seeds`: the STC-3 table of docs/training.md
    python benchmarks/stc3_seeds.py --train-sizes 250,500,1000  # a learning curve: NMD by number of training calls

A finished run is not trained again (a killed job resumes where it stopped, run by run). The table is written
between the markers ``<!-- stc3-seeds:start -->`` and ``<!-- stc3-seeds:end -->`` of ``--docs`` (if given), so
the documented numbers are always this script's output (``--block learning-curve`` for a curve). Runs record their encoder by name and weight hash.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from docs_block import write_docs

from callqa import RunDir, RunInfo, TrainConfig, evaluate, load_calls, train, write_calls


def train_once(config: TrainConfig, train_file: Path, validation: Path, out: Path, device: str | None) -> RunInfo:
    if RunDir(out).finished():
        return RunDir(out).info()
    return train(config, [train_file], out, validation=[validation], device=device, progress=False,
                 log=lambda line: print(f"  {out.name}: {line}", flush=True))


def subsample(train_file: Path, size: int, seed: int, out: Path) -> Path:
    calls = load_calls(train_file)
    if size >= len(calls):
        return train_file
    path = out / f"train-{size}.jsonl"
    if not path.exists():
        write_calls(path, random.Random(seed).sample(calls, size))
    return path


def summarise(runs: dict[str, dict], heads: list[str]) -> dict:
    out = {}
    for head in heads:
        entry = {}
        for metric in ("nmd", "rsnod", "qwk"):
            values = [r["test"][head][metric] for r in runs.values() if r["test"][head].get(metric) is not None]
            if values:
                entry[metric] = {"mean": statistics.fmean(values),
                                 "std": statistics.stdev(values) if len(values) > 1 else 0.0, "runs": values}
        out[head] = entry
    return out


def markdown(result: dict) -> str:
    seeds = ", ".join(str(s) for s in result["seeds"])
    lines = [f"| head | model NMD ({len(result['seeds'])} seeds) | model RSNOD | TF-IDF + LR NMD / RSNOD | "
             "prior NMD / RSNOD |", "|---|---|---|---|---|"]
    base = result.get("baselines", {})
    for head, s in result["summary"].items():
        def pair(system: str, head: str = head) -> str:
            m = base.get(system, {}).get(head)
            return f"{m['nmd']:.4f} / {m['rsnod']:.4f}" if m else "–"
        lines.append(f"| {result['display'].get(head, head)} | **{s['nmd']['mean']:.4f} ± {s['nmd']['std']:.4f}** | "
                     f"{s['rsnod']['mean']:.4f} ± {s['rsnod']['std']:.4f} | {pair('tfidf_lr')} | {pair('prior')} |")
    lines.append("")
    lines.append(f"Seeds {seeds} on {result['n_test']} test calls; encoder {result['encoder']}; "
                 f"`{result['command']}` wrote this table and `{result['json']}`.")
    return "\n".join(lines)


def curve_markdown(curve: dict) -> str:
    heads = list(next(iter(curve.values()))["summary"])
    lines = ["| training calls | " + " | ".join(f"{h} NMD" for h in heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for size, entry in curve.items():
        lines.append(f"| {size} | " + " | ".join(
            f"{entry['summary'][h]['nmd']['mean']:.4f} ± {entry['summary'][h]['nmd']['std']:.4f}" for h in heads) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/train/stc3.yaml"))
    parser.add_argument("--train", type=Path, default=Path("data/stc3/train.jsonl"))
    parser.add_argument("--validation", type=Path, default=Path("data/stc3/validation.jsonl"))
    parser.add_argument("--test", type=Path, default=Path("data/stc3/test.jsonl"))
    parser.add_argument("--seeds", default="42,7,1234")
    parser.add_argument("--train-sizes", help="comma list: a learning curve over this many training calls")
    parser.add_argument("--max-steps", type=int, help="cap every run (for a quick check, not for the table)")
    parser.add_argument("--device")
    parser.add_argument("--runs", type=Path, default=Path("runs/stc3-seeds"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/stc3-seeds-latest.json"))
    parser.add_argument("--docs", type=Path, help="markdown file whose --block to rewrite with the table")
    parser.add_argument("--block", help="marker name in --docs (default: stc3-seeds, or learning-curve with "
                        "--train-sizes)")
    args = parser.parse_args()

    seeds = [int(s) for s in args.seeds.split(",")]
    base = TrainConfig.from_yaml(args.config)
    if args.max_steps:
        base = base.model_copy(update={"optim": base.optim.model_copy(update={"max_steps": args.max_steps})})
    schema = base.label_schema()
    heads = [h.name for h in schema.heads if h.spec.scale]
    args.runs.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.train_sizes.split(",")] if args.train_sizes else [None]
    curve, result = {}, {}
    for size in sizes:
        train_file = subsample(args.train, size, 0, args.runs) if size else args.train
        runs, baselines, encoder = {}, None, None
        for seed in seeds:
            name = f"seed{seed}-n{size}" if size else f"seed{seed}"
            config = base.model_copy(update={"seed": seed})
            started = time.time()
            info = train_once(config, train_file, args.validation, args.runs / name, args.device)
            evaluation = evaluate(args.runs / name, [args.test], out=args.runs / name / "test",
                                      device=args.device, with_baselines=baselines is None, log=lambda *_: None)
            if baselines is None:
                baselines = {system: {h: {k: m[h][k] for k in ("nmd", "rsnod")} for h in heads}
                             for system, m in evaluation["metrics"].items() if system != "model"}
            encoder = str(info.encoder)
            runs[name] = {"seed": seed, "train_calls": info.n_train, "steps": info.steps,
                          "train_seconds": info.train_seconds,
                          "test": {h: {k: v for k, v in evaluation["metrics"]["model"][h].items()
                                       if isinstance(v, int | float) or v is None} for h in heads}}
            print(f"{name}: " + ", ".join(f"{h} NMD {runs[name]['test'][h]['nmd']:.4f}" for h in heads)
                  + f" ({time.time() - started:.0f} s)", flush=True)
        entry = {"seeds": seeds, "train_calls": size or runs[next(iter(runs))]["train_calls"],
                 "n_test": evaluation["n_calls"], "encoder": encoder, "runs": runs, "baselines": baselines,
                 "summary": summarise(runs, heads)}
        curve[entry["train_calls"]] = entry
        result = entry

    command = "python benchmarks/stc3_seeds.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v is not None and k in ("config", "seeds", "train_sizes", "max_steps"))
    result.update(command=command, json=str(args.json), display={h.name: f"{h.name} ({h.display})" for h in schema.heads})
    output = {"config": str(args.config), "split": {"train": str(args.train), "validation": str(args.validation),
                                                    "test": str(args.test)}, **result}
    table = markdown(result)
    if len(curve) > 1:
        output["learning_curve"] = {str(k): v["summary"] for k, v in curve.items()}
        table = curve_markdown(curve) + "\n\n" + f"{len(seeds)} seeds per size; `{command}`."
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(output, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table)
    if args.docs:
        write_docs(args.docs, args.block or ("learning-curve" if len(curve) > 1 else "stc3-seeds"), table)
        print(f"table written to {args.docs}")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
