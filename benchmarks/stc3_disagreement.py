"""Does the model's predicted distribution say where human reviewers will disagree? On STC-3, each dialogue has 19
annotators' votes per quality head (A 任务完成度, S 客户满意度, E 对话效率): a dialogue is *split* on a head when no level
has a majority of the votes. The predicted spread of a call is the normalised entropy of the model's distribution
(its head kind's uncertainty, as the review queue ranks calls). This script measures, on a held-out split:

- the AUC of the predicted spread for telling split dialogues from the others, against a length-only baseline (the
  dialogue's characters: long dialogues are harder to judge);
- the double-review threshold: the spread, tuned on the validation split for the F1 of catching split dialogues, and
  what it does on the test split (the share of calls sent to two reviewers, and the split ones it catches).

    python benchmarks/stc3_disagreement.py                  # TF-IDF + LR distributions (CPU, a minute)
    python benchmarks/stc3_disagreement.py --run runs/stc3  # a fine-tuned STC-3 run's distributions

Results: benchmarks/results/stc3-disagreement[-RUN].json and the table between ``<!-- stc3-disagreement:start -->``
and ``<!-- stc3-disagreement:end -->`` of ``--docs`` (docs/reviews.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from callqa import Votes, load_schema, split_calls
from callqa.stc3 import read_stc3

ROOT = Path(__file__).resolve().parents[1]
STC3 = ROOT.parent / "shared" / "data" / "stc3" / "train_cn.json"


def split_votes(call, head: str) -> bool | None:
    """True when no level has a majority of the annotators' votes (None without votes)."""
    label = call.labels.get(head)
    if not isinstance(label, Votes):
        return None
    counts = list(label.votes.values())
    return max(counts) / sum(counts) <= 0.5


def predictions(train, evaluate_on, schema, run: Path | None) -> dict[str, np.ndarray]:
    if run is None:
        from callqa.training import baselines

        return baselines.tfidf_lr(train, evaluate_on, schema)
    import torch

    from callqa import load_run
    from callqa.training.data import build_dataset
    from callqa.training.predict import predict_rows

    _, run_schema, model, encoder = load_run(run)
    rows = build_dataset(evaluate_on, encoder, run_schema).to_list()
    probs, _ = predict_rows(model, rows, run_schema, encoder.pad_id, 32, torch.device("cpu"))
    return probs


def best_threshold(spread: np.ndarray, split: np.ndarray) -> float:
    grid = np.unique(np.round(spread, 3))
    scores = [f1_score(split, spread >= t, zero_division=0) for t in grid]
    return float(grid[int(np.argmax(scores))])


def measure(schema, calls_by_part: dict, probs_by_part: dict) -> dict:
    out = {}
    for head in schema.heads:
        parts = {}
        for part in ("validation", "test"):
            calls, probs = calls_by_part[part], probs_by_part[part][head.name]
            keep = [i for i, c in enumerate(calls) if split_votes(c, head.name) is not None]
            split = np.array([split_votes(calls[i], head.name) for i in keep])
            spread = np.array([head.spec.uncertainty(probs[i])[0] for i in keep])
            length = np.array([sum(len(t.text) for t in calls[i].turns) for i in keep], dtype=float)
            parts[part] = (split, spread, length)
        v_split, v_spread, _ = parts["validation"]
        t_split, t_spread, t_length = parts["test"]
        cut = best_threshold(v_spread, v_split)
        routed = t_spread >= cut
        out[head.name] = {
            "display": head.display, "test_dialogues": int(len(t_split)), "split_share": float(t_split.mean()),
            "auc_spread": float(roc_auc_score(t_split, t_spread)), "auc_length": float(roc_auc_score(t_split, t_length)),
            "threshold": cut, "routed_share": float(routed.mean()),
            "recall": float((routed & t_split).sum() / max(1, t_split.sum())),
            "precision": float((routed & t_split).sum() / max(1, routed.sum())),
        }
    return out


def table(result: dict, source: str) -> str:
    lines = [f"Predicted spread vs length on STC-3's held-out test split ({source}); a dialogue is split when no level "
             "has a majority of its 19 votes. Threshold tuned on the validation split (F1 of catching split ones).", "",
             "| head | test dialogues | split | AUC spread | AUC length | threshold | sent to two reviewers | split caught | precision |",
             "|---|---|---|---|---|---|---|---|---|"]
    for head, r in result["heads"].items():
        lines.append(f"| {head} {r['display']} | {r['test_dialogues']} | {100 * r['split_share']:.0f} % | "
                     f"**{r['auc_spread']:.3f}** | {r['auc_length']:.3f} | {r['threshold']:.3f} | "
                     f"{100 * r['routed_share']:.0f} % | {100 * r['recall']:.0f} % | {100 * r['precision']:.0f} % |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stc3", type=Path, default=STC3)
    parser.add_argument("--run", type=Path, default=None, help="a fine-tuned STC-3 run (default: TF-IDF + LR)")
    parser.add_argument("--seed", type=int, default=13, help="the split's seed (the Makefile's stc3 split)")
    parser.add_argument("--docs", type=Path, default=None, help="write the table into this markdown file")
    args = parser.parse_args()

    schema = load_schema("stc3")
    calls = list(read_stc3(args.stc3))
    parts = split_calls(calls, (0.8, 0.1, 0.1), seed=args.seed, stratify="A")
    by_part = {name: [calls[i] for i in idx] for name, idx in zip(("train", "validation", "test"), parts)}
    probs = {part: predictions(by_part["train"], by_part[part], schema, args.run) for part in ("validation", "test")}
    source = f"run {args.run.name}" if args.run else "TF-IDF + LR"
    result = {"source": source, "seed": args.seed, "machine": platform.machine(),
              "sizes": {k: len(v) for k, v in by_part.items()}, "heads": measure(schema, by_part, probs)}
    out = ROOT / "benchmarks" / "results" / f"stc3-disagreement{'-' + args.run.name if args.run else ''}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(table(result, source))
    if args.docs:
        text = args.docs.read_text(encoding="utf-8")
        block = f"<!-- stc3-disagreement:start -->\n{table(result, source)}\n<!-- stc3-disagreement:end -->"
        pattern = re.compile(r"<!-- stc3-disagreement:start -->.*?<!-- stc3-disagreement:end -->", re.S)
        args.docs.write_text(pattern.sub(block, text) if pattern.search(text) else text + "\n" + block + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
