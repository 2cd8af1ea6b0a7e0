"""Does the model's predicted distribution say where human reviewers will disagree? On STC-3, each dialogue has 19
annotators' votes per quality head (A 任务完成度, S 客户满意度, E 对话效率): a dialogue is *split* on a head when no level
has a majority of the votes. The predicted spread of a call is the normalised entropy of the model's distribution
(its head kind's uncertainty, as the review queue ranks calls). This script measures, on a held-out split:

- the AUC of the predicted spread for telling split dialogues from the others, against a length-only baseline (the
  dialogue's characters: long dialogues are harder to judge);
- the double-review threshold: the spread, tuned on the validation split for the F1 of catching split dialogues, and
  what it does on the test split (the share of calls sent to two reviewers, and the split ones it catches);
- a budgeted rule (a second review for ``--share`` of the calls, the cut a validation quantile): the share of split
  dialogues among the calls it sends, by spread and by length; and spread and length combined (AUC);
- the product's signal: a call's most uncertain head (max over heads), and its budget cut (``review.double_review``).

    python benchmarks/stc3_disagreement.py                  # TF-IDF + LR distributions (CPU, a minute)
    python benchmarks/stc3_disagreement.py --run runs/stc3  # a fine-tuned STC-3 run's distributions

Results: benchmarks/results/stc3-disagreement[-RUN].json and the table between ``<!-- stc3-disagreement:start -->``
and ``<!-- stc3-disagreement:end -->`` of ``--docs`` (docs/reviews.md).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
from docs_block import write_docs
from sklearn.linear_model import LogisticRegression
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


def budget_precision(score_v: np.ndarray, score_t: np.ndarray, split_t: np.ndarray, share: float) -> tuple[float, float]:
    """The cut that sends ``share`` of the validation calls to two reviewers, and the share of split dialogues among
    the test calls it sends (what a QA lead pays a second review for)."""
    cut = float(np.quantile(score_v, 1 - share))
    routed = score_t >= cut
    return cut, float(split_t[routed].mean()) if routed.any() else float("nan")


def combined(v: tuple, t: tuple) -> np.ndarray:
    """Spread and log length together: a logistic regression fitted on the validation split, scored on the test."""
    features = [np.column_stack([part[1], np.log1p(part[2])]) for part in (v, t)]
    fit = LogisticRegression().fit(features[0], v[0])
    return fit.predict_proba(features[1])[:, 1]


def measure(schema, calls_by_part: dict, probs_by_part: dict, share: float) -> dict:
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
        v_split, v_spread, v_length = parts["validation"]
        t_split, t_spread, t_length = parts["test"]
        cut = best_threshold(v_spread, v_split)
        routed = t_spread >= cut
        out[head.name] = {
            "display": head.display, "test_dialogues": int(len(t_split)), "split_share": float(t_split.mean()),
            "auc_spread": float(roc_auc_score(t_split, t_spread)), "auc_length": float(roc_auc_score(t_split, t_length)),
            "threshold": cut, "routed_share": float(routed.mean()),
            "recall": float((routed & t_split).sum() / max(1, t_split.sum())),
            "precision": float((routed & t_split).sum() / max(1, routed.sum())),
            "auc_combined": float(roc_auc_score(t_split, combined(parts["validation"], parts["test"]))),
            "budget_share": share,
            "budget_precision_spread": budget_precision(v_spread, t_spread, t_split, share)[1],
            "budget_precision_length": budget_precision(v_length, t_length, t_split, share)[1],
            "budget_threshold_spread": budget_precision(v_spread, t_spread, t_split, share)[0],
        }
    out["call"] = whole_call(schema, calls_by_part, probs_by_part, share)
    return out


def whole_call(schema, calls_by_part: dict, probs_by_part: dict, share: float) -> dict:
    """What the product routes by: a call's most uncertain head (the queue's entropy key, max over heads), against
    dialogues split on any head; the threshold is the validation quantile that sends ``share`` of the calls."""
    parts = {}
    for part in ("validation", "test"):
        calls, probs = calls_by_part[part], probs_by_part[part]
        keep = [i for i, c in enumerate(calls) if all(split_votes(c, h.name) is not None for h in schema.heads)]
        split = np.array([any(split_votes(calls[i], h.name) for h in schema.heads) for i in keep])
        spread = np.array([max(h.spec.uncertainty(probs[h.name][i])[0] for h in schema.heads) for i in keep])
        length = np.array([sum(len(t.text) for t in calls[i].turns) for i in keep], dtype=float)
        parts[part] = (split, spread, length)
    (_, v_spread, v_length), (t_split, t_spread, t_length) = parts["validation"], parts["test"]
    cut, precision = budget_precision(v_spread, t_spread, t_split, share)
    return {"display": "任一维度", "test_dialogues": int(len(t_split)), "split_share": float(t_split.mean()),
            "auc_spread": float(roc_auc_score(t_split, t_spread)), "auc_length": float(roc_auc_score(t_split, t_length)),
            "auc_combined": float(roc_auc_score(t_split, combined(parts["validation"], parts["test"]))),
            "budget_share": share, "budget_threshold_spread": cut, "budget_precision_spread": precision,
            "budget_precision_length": budget_precision(v_length, t_length, t_split, share)[1],
            "routed_share": float((t_spread >= cut).mean())}


def table(result: dict, source: str) -> str:
    heads = {k: v for k, v in result["heads"].items() if k != "call"}
    share = 100 * next(iter(heads.values()))["budget_share"]
    lines = [f"Predicted spread vs length on STC-3's held-out test split ({source}); a dialogue is split when no level "
             "has a majority of its 19 votes. F1 threshold and budget cut tuned on the validation split; "
             "combined: spread and log length in one logistic regression fitted on validation.", "",
             f"| head | test dialogues | split | AUC spread | AUC length | AUC combined | F1 threshold: sent / caught | "
             f"{share:.0f} % budget: split among sent, spread | by length |",
             "|---|---|---|---|---|---|---|---|---|"]
    for head, r in heads.items():
        lines.append(f"| {head} {r['display']} | {r['test_dialogues']} | {100 * r['split_share']:.0f} % | "
                     f"**{r['auc_spread']:.3f}** | {r['auc_length']:.3f} | {r['auc_combined']:.3f} | "
                     f"{100 * r['routed_share']:.0f} % / {100 * r['recall']:.0f} % | "
                     f"{100 * r['budget_precision_spread']:.0f} % (≥ {r['budget_threshold_spread']:.3f}) | "
                     f"{100 * r['budget_precision_length']:.0f} % |")
    call = result["heads"].get("call")
    if call:
        lines += ["", f"What the product routes by (the most uncertain head, max over A/S/E): AUC {call['auc_spread']:.3f} "
                  f"(length {call['auc_length']:.3f}) for dialogues split on any head ({100 * call['split_share']:.0f} % "
                  f"of them); the {share:.0f} % budget cut on validation is **{call['budget_threshold_spread']:.3f}**, "
                  f"sending {100 * call['routed_share']:.0f} % of the test calls."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stc3", type=Path, default=STC3)
    parser.add_argument("--run", type=Path, default=None, help="a fine-tuned STC-3 run (default: TF-IDF + LR)")
    parser.add_argument("--seed", type=int, default=13, help="the split's seed (the Makefile's stc3 split)")
    parser.add_argument("--share", type=float, default=0.15, help="a second review's budget: this share of calls")
    parser.add_argument("--docs", type=Path, default=None, help="write the table into this markdown file")
    args = parser.parse_args()

    schema = load_schema("stc3")
    calls = list(read_stc3(args.stc3))
    parts = split_calls(calls, (0.8, 0.1, 0.1), seed=args.seed, stratify="A")
    by_part = {name: [calls[i] for i in idx] for name, idx in zip(("train", "validation", "test"), parts)}
    probs = {part: predictions(by_part["train"], by_part[part], schema, args.run) for part in ("validation", "test")}
    source = f"run {args.run.name}" if args.run else "TF-IDF + LR"
    result = {"source": source, "seed": args.seed, "machine": platform.machine(),
              "sizes": {k: len(v) for k, v in by_part.items()}, "heads": measure(schema, by_part, probs, args.share)}
    out = ROOT / "benchmarks" / "results" / f"stc3-disagreement{'-' + args.run.name if args.run else ''}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(table(result, source))
    if args.docs:
        write_docs(args.docs, "stc3-disagreement", table(result, source))


if __name__ == "__main__":
    main()
