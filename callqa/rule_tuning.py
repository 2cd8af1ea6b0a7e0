"""A semantic rule calibrated on reviews: reviewers' 误判 and 漏扣 marks on the calls it scored become its precision
and its misses, a threshold is proposed, and the 漏扣 turns it still misses are proposed as examples.

Which judgements count, in a reviewed call (``callqa reviews export``: ``meta.scorecard`` holds the verdicts of
record): for a rule that flags turns, every turn of its speaker — **positive** when the rule hit it and no reviewer
marked that hit 误判, or when a reviewer marked a 漏扣 on the rule's item there; negative otherwise (the reviewer saw
the card and left it). For a ``required`` rule (安抚 after a complaint), every place it judges — after each trigger,
or its window of turns — **positive** (missing: deduct) when its hit there stands or a 漏扣 on its item falls there,
negative when the rule found the criterion met or a reviewer marked its hit 误判.
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


def _marks(card: Scorecard, rule_id: str, call: Call, embeddings: TurnEmbeddings) -> tuple[set[int], set[int], set[int]]:
    """(turns of the rule's hits, of hits reviewers marked 误判, of 漏扣 on its item) by the call's verdicts of record
    (``meta.scorecard``); the rule runs on ``embeddings``, which the tuning then reads too."""
    verdicts = call.meta.get("scorecard") or {}
    items = {i.id for s in card.spec.sections for i in s.items if rule_id in i.rules}
    wrong = {h["turn"] for h in verdicts.get("false_hits", []) if h.get("rule") == rule_id}
    missed = {m["turn"] for m in verdicts.get("missed", []) if m.get("item") in items}
    return {h.turn for h in card.rules[rule_id].run(call, embeddings)}, wrong, missed


def turn_truth(card: Scorecard, rule_id: str, call: Call, embeddings: TurnEmbeddings | None = None) -> dict[int, bool]:
    """Turn → whether the criterion holds there, by the call's verdicts of record (``meta.scorecard``)."""
    rule = card.rules[rule_id]
    embeddings = embeddings or TurnEmbeddings(card.encoder, [t.text for t in call.turns])
    hits, wrong, missed = _marks(card, rule_id, call, embeddings)
    return {i: (i in hits and i not in wrong) or i in missed
            for i, t in enumerate(call.turns) if t.speaker == rule.spec.speaker}


@dataclass(frozen=True)
class Observation:
    """One judgement the rule makes, as reviewers marked it: its score (higher: the rule deducts), whether the
    reviewers say it should deduct, and the turn to propose as an example if the rule gets it wrong."""

    score: float
    positive: bool
    text: str


def _flagging(card: Scorecard, rule, call: Call, embeddings: TurnEmbeddings) -> list[Observation]:
    """A rule that flags turns: one observation per turn of its speaker (positive: the criterion holds there)."""
    marked = turn_truth(card, rule.id, call, embeddings)
    matches = rule.matcher_of_examples.match(embeddings(list(marked)))
    return [Observation(m.score, marked[i], call.turns[i].text) for i, m in zip(marked, matches, strict=True)]


def _required(card: Scorecard, rule, call: Call, embeddings: TurnEmbeddings) -> list[Observation]:
    """A required rule: one observation per place it judges (after each trigger, or its window of turns). The score
    is minus the best turn's similarity, so a higher score means "missing" — what the rule deducts; positive: the
    reviewers say it is missing (the rule's hit not marked 误判, or a 漏扣 on its item there)."""
    turns = call.turns
    hits, wrong, missed = _marks(card, rule.id, call, embeddings)
    out = []
    for trigger, window in rule.scopes(call):
        scores = [m.score for m in rule.matcher_of_examples.match(embeddings(window))] if window else []
        best = int(np.argmax(scores)) if scores else None
        anchor = trigger[0] if trigger else window[best]
        missing = (anchor in hits and anchor not in wrong) or bool(missed & {anchor, *window})
        out.append(Observation(-max(scores, default=-1.0), missing, turns[window[best]].text if scores else ""))
    return out


def tune(card: Scorecard, rule_id: str, calls: list[Call]) -> Tuning:
    """The rule's precision and recall on the reviewed ``calls`` now, at the threshold with the best F1 on them, and
    the turns it gets wrong at the proposed threshold as examples to add: 漏扣 turns a flagging rule still misses, or,
    for a required rule, the best answer where reviewers say the criterion was met (误判 of its hit)."""
    if rule_id not in card.rules:
        raise ScorecardError(f"{card.source}: no rule {rule_id!r} (rules: {', '.join(sorted(card.rules))})")
    rule = card.rules[rule_id]
    if rule.kind != "semantic":
        raise ScorecardError(f"{card.source}: rules.{rule_id}: tune calibrates semantic rules (this one is {rule.kind})")
    if card.encoder is None:
        raise ScorecardError(f"{card.source}: rules.{rule_id}: a semantic rule needs a sentence encoder")
    observe = _required if rule.spec.required else _flagging
    observed, reviewed = [], 0
    for call in calls:
        if call.meta.get("scorecard"):
            reviewed += 1
            observed += observe(card, rule, call, TurnEmbeddings(card.encoder, [t.text for t in call.turns]))
    scores, truth = np.array([o.score for o in observed]), np.array([o.positive for o in observed], dtype=bool)
    # In the scores' direction (higher: deduct), a required rule's threshold is minus its similarity threshold.
    sign = -1.0 if rule.spec.required else 1.0
    current = _quality(scores, truth, sign * rule.spec.threshold)
    # Cut between neighbouring scores (never on one: a threshold rounded onto a score would move a turn across it).
    cuts = np.unique(scores)
    cuts = np.concatenate([cuts[:1] - 1e-3, (cuts[1:] + cuts[:-1]) / 2, cuts[-1:] + 1e-3]) if len(cuts) else cuts
    candidates = [_quality(scores, truth, t) for t in cuts] or [current]
    proposed = max(candidates, key=lambda q: (_f1(q), sign * q.threshold))
    wrong = [o for o in observed if (o.positive != (o.score >= proposed.threshold)) and o.positive != rule.spec.required]
    add = [o.text for o in sorted(wrong, key=lambda o: -o.score) if o.text and o.text not in rule.examples][:5]

    def real(q: Quality) -> Quality:
        return Quality(round(sign * q.threshold, 4), q.precision, q.recall, q.hits)

    return Tuning(rule_id, reviewed, len(observed), int(truth.sum()), real(current), real(proposed), add)
