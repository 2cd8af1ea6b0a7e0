"""Do the model's per-turn attributions mean something? On STC-3, compare them with the annotators' nugget labels.

    python benchmarks/evidence_nuggets.py --bundle BUNDLE --data data/stc3/test.jsonl --head S

A nugget is a turn that moves the dialogue towards its goal (CNUG0/CNUG/CNUG*, HNUG/HNUG*; *NaN: not a nugget;
../shared/data/stc3/README.md). For each dialogue of two or more turns, the turn with the largest attribution
(by absolute value) on the head is checked against its majority nugget label. If attributions meant nothing, that
turn would be a nugget as often as a turn drawn at random from the same dialogue: the "chance" rate, averaged over
dialogues. The ratio of the two is the measure; the same for goal nuggets (CNUG*/HNUG*) alone. Over all turns,
the AUC of |attribution| for telling nugget turns from the others says the same without picking one turn (0.5: no
relation).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from callqa import ScoringSession, Votes, load_calls
from callqa.evidence import attributions, occlusion_batch


def majority(label) -> str | None:
    if isinstance(label, Votes):
        return max(label.votes, key=label.votes.get)
    return None if label is None else str(label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/stc3/test.jsonl"))
    parser.add_argument("--head", default="S")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/evidence-nuggets-latest.json"))
    args = parser.parse_args()

    scorer = ScoringSession(args.bundle, None, run_threads=None).scorer
    calls = [c for c in load_calls(args.data) if len(c.turns) >= 2]
    hits = {"nugget": [], "goal": []}
    chance = {"nugget": [], "goal": []}
    pooled: dict[str, list] = {"weight": [], "nugget": [], "goal": []}
    started = time.perf_counter()
    for call in calls:
        labels = [majority(t.labels.get("customer_nugget") or t.labels.get("helpdesk_nugget")) for t in call.turns]
        if any(label is None for label in labels):
            continue
        evidence = attributions(call, "bench", scorer.info.schema_, scorer.predict(occlusion_batch(call)))
        weights = np.abs(np.array(evidence.heads[args.head].turns))
        top = int(np.argmax(weights))
        is_nugget = [not label.endswith("NaN") for label in labels]
        is_goal = [label.endswith("*") for label in labels]
        hits["nugget"].append(is_nugget[top])
        hits["goal"].append(is_goal[top])
        chance["nugget"].append(float(np.mean(is_nugget)))
        chance["goal"].append(float(np.mean(is_goal)))
        pooled["weight"] += weights.tolist()
        pooled["nugget"] += is_nugget
        pooled["goal"] += is_goal
    seconds = time.perf_counter() - started
    result = {"bundle": str(args.bundle), "data": str(args.data), "head": args.head, "dialogues": len(hits["nugget"]),
              "seconds": seconds}
    for kind in hits:
        rate, base = float(np.mean(hits[kind])), float(np.mean(chance[kind]))
        auc = float(roc_auc_score(pooled[kind], pooled["weight"]))
        result[kind] = {"top_turn_rate": rate, "chance": base, "ratio": rate / base if base else None, "auc": auc,
                        "turns": len(pooled[kind]), "positive_turns": int(sum(pooled[kind]))}
        print(f"{kind}: the most-attributed turn is one in {rate:.1%} of dialogues; a random turn in {base:.1%} "
              f"(×{rate / base:.2f}); AUC of |attribution| over {len(pooled[kind])} turns {auc:.3f}")
    print(f"{len(hits['nugget'])} dialogues in {seconds:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
