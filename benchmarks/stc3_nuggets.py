"""STC-3 nugget detection with turn heads, and whether the nugget task moves A/S/E: two recipes (without and with
the nugget turn heads), the same split and seeds, trained and evaluated on the test split, next to a prior and a
TF-IDF per-turn baseline.

    python benchmarks/stc3_nuggets.py --docs docs/training.md      # `make stc3-nuggets`

Nugget metrics are STC-3's: JSD and RNSS between the predicted and the 19 annotators' distribution of a turn,
averaged over a dialogue's turns, then over dialogues ("all turns": customer and helpdesk turns together, each
scored by its speaker's head). A finished run is not trained again. The tables are written between
``<!-- stc3-nuggets:start -->`` and ``<!-- stc3-nuggets:end -->`` of ``--docs``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from docs_block import write_docs
from stc3_seeds import train_once

from callqa import LabelSchema, TrainConfig, evaluate, load_calls
from callqa.metrics import jsd, per_dialogue_mean, rnss
from callqa.scorer import turn_targets
from callqa.training import baselines


def nugget_scores(schema: LabelSchema, calls, turn_probs: dict[str, np.ndarray]) -> dict:
    """JSD/RNSS per turn head and over all turns (each turn scored by the head of its speaker)."""
    dialogue = np.repeat(np.arange(len(calls)), [len(c.turns) for c in calls])
    out, all_jsd, all_rnss, all_dialogue = {}, [], [], []
    for head in schema.turn_heads:
        q, p = turn_targets(calls, head), turn_probs[head.name]
        keep = (q.sum(-1) > 0) & np.isfinite(p).all(-1)
        j, r = jsd(p[keep], q[keep]), rnss(p[keep], q[keep])
        out[head.name] = {"jsd": per_dialogue_mean(j, dialogue[keep]), "rnss": per_dialogue_mean(r, dialogue[keep]),
                          "turns": int(keep.sum())}
        all_jsd.append(j), all_rnss.append(r), all_dialogue.append(dialogue[keep])
    d = np.concatenate(all_dialogue)
    out["all"] = {"jsd": per_dialogue_mean(np.concatenate(all_jsd), d),
                  "rnss": per_dialogue_mean(np.concatenate(all_rnss), d), "turns": int(len(d))}
    return out


def model_turn_probs(eval_dir: Path, schema: LabelSchema) -> dict[str, np.ndarray]:
    """A run's per-turn predictions (evaluate's predictions.jsonl) as [turns, C] per turn head, NaN where none."""
    rows = [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    return {h.name: np.array([p if p is not None else [np.nan] * h.size for r in rows for p in r["turns"][h.name]])
            for h in schema.turn_heads}


def mean_sd(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "runs": values}


def fmt(entry: dict) -> str:
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"


def markdown(result: dict) -> str:
    seeds = ", ".join(map(str, result["seeds"]))
    heads = ["customer_nugget", "helpdesk_nugget", "all"]
    names = {"customer_nugget": "customer turns", "helpdesk_nugget": "helpdesk turns", "all": "all turns"}
    lines = ["| system | " + " | ".join(f"{names[h]} JSD / RNSS" for h in heads) + " |", "|---|---|---|---|"]
    model = result["nuggets"]["model"]
    lines.append(f"| model ({len(result['seeds'])} seeds) | " + " | ".join(
        f"**{fmt(model[h]['jsd'])}** / {fmt(model[h]['rnss'])}" for h in heads) + " |")
    for system, label in (("tfidf_lr", "TF-IDF + position, LR"), ("prior", "prior")):
        b = result["nuggets"][system]
        lines.append(f"| {label} | " + " | ".join(f"{b[h]['jsd']:.4f} / {b[h]['rnss']:.4f}" for h in heads) + " |")
    lines += ["", "| recipe | " + " | ".join(f"{h} NMD" for h in result["quality_heads"]) + " |",
              "|---" * (len(result["quality_heads"]) + 1) + "|"]
    for arm, label in (("without", "A/S/E only"), ("with", "A/S/E + nugget turn heads")):
        lines.append(f"| {label} | " + " | ".join(fmt(result["quality"][arm][h]) for h in result["quality_heads"]) + " |")
    lines.append("| difference (with − without) | " + " | ".join(
        f"{result['quality_difference'][h]:+.4f}" for h in result["quality_heads"]) + " |")
    lines += ["", f"Seeds {seeds}; {result['n_test']} test dialogues ({result['nuggets']['model']['all']['turns']} "
              f"turns); recipes `{result['configs']['without']}` and `{result['configs']['with']}` "
              f"({result['device']}, {result['minutes']:.0f} min in all). `{result['command']}` wrote these tables "
              f"and `{result['json']}`."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--without", type=Path, default=Path("configs/train/stc3-cpu.yaml"))
    parser.add_argument("--with", dest="with_", type=Path, default=Path("configs/train/stc3-nuggets-cpu.yaml"))
    parser.add_argument("--train", type=Path, default=Path("data/stc3/train.jsonl"))
    parser.add_argument("--validation", type=Path, default=Path("data/stc3/validation.jsonl"))
    parser.add_argument("--test", type=Path, default=Path("data/stc3/test.jsonl"))
    parser.add_argument("--seeds", default="42,7,1234")
    parser.add_argument("--device")
    parser.add_argument("--runs", type=Path, default=Path("runs/stc3-nuggets"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/stc3-nuggets-latest.json"))
    parser.add_argument("--docs", type=Path, help="markdown file whose stc3-nuggets block to rewrite")
    args = parser.parse_args()

    started = time.time()
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = {"with": TrainConfig.from_yaml(args.with_), "without": TrainConfig.from_yaml(args.without)}
    schema = arms["with"].label_schema()
    quality_heads = [h.name for h in schema.heads if h.spec.scale]
    test_calls = load_calls(args.test)
    quality: dict[str, dict[str, list[float]]] = {arm: {h: [] for h in quality_heads} for arm in arms}
    nugget_runs: list[dict] = []
    device = "?"
    for arm, config in arms.items():
        for seed in seeds:
            out = args.runs / f"{arm}-{seed}"
            print(f"{arm} nuggets, seed {seed}", flush=True)
            info = train_once(config.model_copy(update={"seed": seed}), args.train, args.validation, out, args.device)
            device = info.device
            metrics_file = out / "test" / "metrics.json"
            if not metrics_file.exists():
                evaluate(out, [args.test], out=out / "test", with_baselines=False, log=lambda *_: None)
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))["metrics"]["model"]
            for h in quality_heads:
                quality[arm][h].append(metrics[h]["nmd"])
            if arm == "with":
                nugget_runs.append(nugget_scores(schema, test_calls, model_turn_probs(out / "test", schema)))

    train_calls = load_calls(args.train)
    nuggets = {"model": {h: {m: mean_sd([r[h][m] for r in nugget_runs]) for m in ("jsd", "rnss")} | {"turns": nugget_runs[0][h]["turns"]}
                         for h in nugget_runs[0]}}
    for system, fit in (("prior", baselines.prior), ("tfidf_lr", baselines.tfidf_lr)):
        nuggets[system] = nugget_scores(schema, test_calls, fit(train_calls, test_calls, schema))
    summary = {arm: {h: mean_sd(v) for h, v in per_head.items()} for arm, per_head in quality.items()}
    command = "python benchmarks/stc3_nuggets.py" + (f" --docs {args.docs}" if args.docs else "")
    result = {
        "what": "STC-3 nugget detection (turn heads) and its effect on A/S/E NMD; benchmarks/stc3_nuggets.py",
        "seeds": seeds, "n_test": len(test_calls), "device": device, "quality_heads": quality_heads,
        "configs": {"without": str(args.without), "with": str(args.with_)},
        "nuggets": nuggets, "quality": summary,
        "quality_difference": {h: summary["with"][h]["mean"] - summary["without"][h]["mean"] for h in quality_heads},
        "minutes": (time.time() - started) / 60, "command": command, "json": str(args.json),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    table = markdown(result)
    print(table)
    if args.docs:
        write_docs(args.docs, "stc3-nuggets", table)


if __name__ == "__main__":
    main()
