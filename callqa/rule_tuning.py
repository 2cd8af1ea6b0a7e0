"""A semantic rule calibrated on reviews: reviewers' 误判 and 漏扣 marks on the calls it scored become its precision
and its misses, a threshold is proposed, and the 漏扣 turns it still misses are proposed as examples.

Which turns count: in a reviewed call (``callqa reviews export``: ``meta.scorecard`` holds the verdicts of record), a
turn of the rule's speaker is **positive** when the rule hit it and no reviewer marked that hit 误判, or when a
reviewer marked a 漏扣 on the rule's item there; every other turn of the speaker is **negative** (the reviewer saw the
card and left it) — a hit marked 误判 among them. Rules that flag turns only: a ``required`` rule's hit is a turn that
is missing, which a mark cannot place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callqa.calls import Call
from callqa.scorecard import Scorecard, ScorecardError
from callqa.semantic import TurnEmbeddings


@dataclass(frozen=True)
class Quality:
    threshold: float
    precision: float | None
    recall: float | None
    hits: int


@dataclass(frozen=True)
class Tuning:
    rule: str
    calls: int
    turns: int
    positives: int
    current: Quality
    proposed: Quality
    add_examples: list[str]


def _quality(scores: np.ndarray, truth: np.ndarray, threshold: float) -> Quality:
    hit = scores >= threshold
    tp = int((hit & truth).sum())
    return Quality(round(float(threshold), 4), tp / int(hit.sum()) if hit.any() else None,
                   tp / int(truth.sum()) if truth.any() else None, int(hit.sum()))


def _f1(q: Quality) -> float:
    p, r = q.precision or 0.0, q.recall or 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def turn_truth(card: Scorecard, rule_id: str, call: Call) -> dict[int, bool]:
    """Turn → whether the criterion holds there, by the call's verdicts of record (``meta.scorecard``)."""
    rule = card.rules[rule_id]
    verdicts = call.meta.get("scorecard") or {}
    items = {i.id for s in card.spec.sections for i in s.items if rule_id in i.rules}
    wrong = {h["turn"] for h in verdicts.get("false_hits", []) if h.get("rule") == rule_id}
    missed = {m["turn"] for m in verdicts.get("missed", []) if m.get("item") in items}
    hits = {h.turn for h in card.rule_hits(call)[rule_id] or ()}
    return {i: (i in hits and i not in wrong) or i in missed
            for i, t in enumerate(call.turns) if t.speaker == rule.spec.speaker}


def tune(card: Scorecard, rule_id: str, calls: list[Call]) -> Tuning:
    """The rule's precision and recall on the reviewed ``calls`` now, at the threshold with the best F1 on them, and
    the 漏扣 turns the proposed threshold still misses (examples to add)."""
    if rule_id not in card.rules:
        raise ScorecardError(f"{card.source}: no rule {rule_id!r} (rules: {', '.join(sorted(card.rules))})")
    rule = card.rules[rule_id]
    if rule.kind != "semantic" or rule.spec.required:
        raise ScorecardError(f"{card.source}: rules.{rule_id}: tune calibrates semantic rules that flag turns "
                             f"(this one is {'a required semantic rule' if rule.kind == 'semantic' else rule.kind})")
    if card.encoder is None:
        raise ScorecardError(f"{card.source}: rules.{rule_id}: a semantic rule needs a sentence encoder")
    scores, truth, texts, reviewed = [], [], [], 0
    for call in calls:
        if not call.meta.get("scorecard"):
            continue
        reviewed += 1
        marked = turn_truth(card, rule_id, call)
        vectors = TurnEmbeddings(card.encoder, [t.text for t in call.turns])(list(marked))
        for i, match in zip(marked, rule.matcher_of_examples.match(vectors), strict=True):
            scores.append(match.score)
            truth.append(marked[i])
            texts.append(call.turns[i].text)
    scores_a, truth_a = np.array(scores), np.array(truth, dtype=bool)
    current = _quality(scores_a, truth_a, rule.spec.threshold)
    candidates = [_quality(scores_a, truth_a, t) for t in np.unique(np.round(scores_a, 4))] or [current]
    proposed = max(candidates, key=lambda q: (_f1(q), q.threshold))
    still_missed = [(s, t) for s, t, y in zip(scores, texts, truth) if y and s < proposed.threshold]
    add = [t for _, t in sorted(still_missed, reverse=True) if t not in rule.examples][:5]
    return Tuning(rule_id, reviewed, len(scores), int(truth_a.sum()), current, proposed, add)
