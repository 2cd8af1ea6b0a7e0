"""A call's review history: reading it back (labels, verdicts, reasons per review), the labels it leaves
current, checking verdicts against the card they judge, and rewriting what reports count for the call."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from callqa.calls import Label
from callqa.pipeline import ScoredCall
from callqa.schema import LabelSchema

from .calls import CallRow, PredictionRow, PredictionTopicRow, deduction_counts
from .db import as_utc
from .models import Change, ReviewRecord
from .record import MISSED, HitRef, MissedDeduction, ScorecardReview, score_of_record
from .reviews import (
    CorrectionRow,
    ReasonRow,
    ReviewedDeductionCountRow,
    ReviewedItemRow,
    ReviewedScorecardRow,
    ReviewedTopicRow,
    ReviewRow,
    ScorecardCorrectionRow,
)


def canonical(label: Label) -> Label:
    """Labels stored in one spelling: class ids as strings, topic lists sorted and without repeats."""
    if isinstance(label, list):
        return sorted({str(x) for x in label})
    if isinstance(label, int):
        return str(label)
    return label


def scorecard_problems(review: ScorecardReview, shown: ScoredCall, turns: list[dict],
                        prior: ScorecardReview | None = None) -> list[str]:
    """Where a scorecard review does not fit the prediction it was made on: every reference must exist (a 误判 of a
    漏扣, rule ``missed``, refers to one in this review or in the verdicts of record before it)."""
    if shown.scorecard is None:
        return ["scorecard: the reviewed prediction has no scorecard"]
    items = shown.scorecard.items()
    problems = []
    deductions = {(i.id, d.rule, d.turn, d.start) for i in items.values() for d in i.deductions}
    deductions |= {(m.item, MISSED, m.turn, m.start) for m in (*review.missed, *(prior.missed if prior else ()))}
    for n, hit in enumerate(review.false_hits):
        if (hit.item, hit.rule, hit.turn, hit.start) not in deductions:
            problems.append(f"scorecard.false_hits.{n}: no such deduction in the reviewed scorecard")
    for n, missed in enumerate(review.missed):
        if missed.item not in items:
            problems.append(f"scorecard.missed.{n}.item: no item {missed.item!r} in scorecard {shown.scorecard.name!r}")
        if missed.item in items and missed.points is not None and missed.points > items[missed.item].max_points:
            problems.append(f"scorecard.missed.{n}.points: {missed.points:g} is more than the item's "
                            f"{items[missed.item].max_points:g}")
        if missed.turn >= len(turns):
            problems.append(f"scorecard.missed.{n}.turn: the call has {len(turns)} turns")
        elif missed.start is not None or missed.end is not None:
            text = turns[missed.turn]["text"]
            if missed.start is None or missed.end is None or not 0 <= missed.start < missed.end <= len(text):
                problems.append(f"scorecard.missed.{n}: start and end must mark a span of turn {missed.turn}'s text")
    for item, points in review.points.items():
        if item not in items:
            problems.append(f"scorecard.points.{item}: no such item in scorecard {shown.scorecard.name!r}")
        elif points > items[item].max_points:
            problems.append(f"scorecard.points.{item}: {points:g} is more than the item's {items[item].max_points:g}")
    return problems


def scorecard_rows(review: ScorecardReview, review_id: int, call_id: str) -> list[ScorecardCorrectionRow]:
    rows = [ScorecardCorrectionRow(review_id=review_id, call_id=call_id, item=h.item, kind="false_hit", rule=h.rule,
                                   turn=h.turn, start=h.start) for h in review.false_hits]
    rows += [ScorecardCorrectionRow(review_id=review_id, call_id=call_id, item=m.item, kind="missed", turn=m.turn,
                                    start=m.start, end=m.end, points=m.points, note=m.note) for m in review.missed]
    rows += [ScorecardCorrectionRow(review_id=review_id, call_id=call_id, item=item, kind="points", points=points)
             for item, points in review.points.items()]
    return rows


def current_reasons(history: list[ReviewRecord]) -> dict[str, list[int]]:
    """Per head, the turns marked by the latest review that marked any for it (newest first, like labels)."""
    reasons: dict[str, list[int]] = {}
    for review in history:
        for head, turns in review.reasons.items():
            reasons.setdefault(head, turns)
    return reasons


def counted_of(scores: dict, schema: LabelSchema | None, meta: dict | None = None) -> list[tuple[str, str]]:
    """(head, class id) the month report's 分类统计 counts a call under, from a prediction's scores (as stored or as
    objects), as each counted head's kind says (topics over their threshold; a call category, the call's own
    ``meta`` first). Without the model's schema (stores from before models were recorded): every list of predicted
    labels, which is what those stores could count."""
    if schema is None:
        out = []
        for head, score in scores.items():
            predicted = score.get("predicted") if isinstance(score, dict) else getattr(score, "predicted", None)
            if isinstance(predicted, list):
                out += [(head, topic) for topic in predicted]
        return out
    return [(h.name, c) for h in schema.heads if h.spec.counted and h.name in scores
            for c in h.spec.counted_labels(h, scores[h.name], meta)]


def reviewed_counted(labels: dict[str, Label], schema: LabelSchema | None) -> set[tuple[str, str]]:
    """(head, class id) a reviewer's labels count a call under (a head they labelled replaces the model's)."""
    if schema is None:
        return {(head, str(t)) for head, value in labels.items() if isinstance(value, list) for t in value}
    return {(h.name, c) for h in schema.heads if h.spec.counted and h.name in labels
            for c in h.spec.counted_label(h, labels[h.name])}


def refresh_reviewed(session: Session, call_id: str, prediction: PredictionRow, history: list[ReviewRecord],
                     schema: LabelSchema | None = None) -> None:
    """Rewrite what reports count for a reviewed call: its scorecard and topics as its reviews leave them."""
    for table in (ReviewedScorecardRow, ReviewedItemRow, ReviewedTopicRow, ReviewedDeductionCountRow):
        session.execute(delete(table).where(table.call_id == call_id))
    shown = ScoredCall.model_validate(prediction.scores)
    labels = current_labels(history)
    # What the model's prediction was counted under when stored (the call's own category included), less the heads
    # a reviewer labelled, plus what they labelled.
    stored = session.execute(select(PredictionTopicRow.head, PredictionTopicRow.topic)
                             .where(PredictionTopicRow.prediction_id == prediction.id)).all()
    topics = {(head, t) for head, t in stored if head not in labels} | reviewed_counted(labels, schema)
    session.add_all(ReviewedTopicRow(call_id=call_id, head=head, topic=t) for head, t in sorted(topics))
    if shown.scorecard is None:
        return
    record = score_of_record(shown.scorecard, history)
    session.execute(update(CallRow).where(CallRow.call_id == call_id)
                    .values(total=record.total, max_total=record.max_total, red_line=record.red_line))
    session.add(ReviewedScorecardRow(call_id=call_id, prediction_id=prediction.id, total=record.total,
                                     max_total=record.max_total, red_line=record.red_line))
    session.add_all(ReviewedItemRow(call_id=call_id, item=i.id, points=i.points, max_points=i.max_points,
                                    deductions=len(i.deductions)) for s in record.sections for i in s.items)
    session.add_all(ReviewedDeductionCountRow(call_id=call_id, item=item, rule=rule, title=title, hits=hits)
                    for (item, rule), (title, hits) in deduction_counts(record).items())


def current_labels(history: list[ReviewRecord]) -> dict[str, Label]:
    labels: dict[str, Label] = {}
    for review in history:  # newest first: the first value seen per head is the current one
        for change in review.changes:
            labels.setdefault(change.head, change.value)
    return labels


def history_of(session: Session, call_id: str) -> list[ReviewRecord]:
    """Every review of a call, newest first, with its corrections, scorecard verdicts and reason turns."""
    reviews = session.execute(
        select(ReviewRow, PredictionRow.model).outerjoin(PredictionRow, ReviewRow.prediction_id == PredictionRow.id)
        .where(ReviewRow.call_id == call_id).order_by(ReviewRow.revision.desc())).all()
    changes: dict[int, list[Change]] = {}
    for c in session.scalars(select(CorrectionRow).where(CorrectionRow.call_id == call_id).order_by(CorrectionRow.id)):
        changes.setdefault(c.review_id, []).append(Change(head=c.head, previous=canonical(c.previous),
                                                          value=c.value))
    cards: dict[int, ScorecardReview] = {r.id: ScorecardReview() for r, _ in reviews if r.scorecard_judged}
    for c in session.scalars(select(ScorecardCorrectionRow).where(ScorecardCorrectionRow.call_id == call_id)
                             .order_by(ScorecardCorrectionRow.id)):
        card = cards.setdefault(c.review_id, ScorecardReview())
        if c.kind == "false_hit":
            card.false_hits.append(HitRef(item=c.item, rule=c.rule, turn=c.turn, start=c.start))
        elif c.kind == "missed":
            card.missed.append(MissedDeduction(item=c.item, turn=c.turn, start=c.start, end=c.end, points=c.points,
                                               note=c.note))
        else:
            card.points[c.item] = c.points
    reasons: dict[int, dict[str, list[int]]] = {}
    for row in session.scalars(select(ReasonRow).where(ReasonRow.call_id == call_id)
                               .order_by(ReasonRow.head, ReasonRow.turn)):
        reasons.setdefault(row.review_id, {}).setdefault(row.head, []).append(row.turn)
    return [ReviewRecord(id=r.id, revision=r.revision, reviewer=r.reviewer, reviewer_name=r.reviewer_name,
                         created=as_utc(r.created), comment=r.comment, model=model, changes=changes.get(r.id, []),
                         scorecard=cards.get(r.id), reasons=reasons.get(r.id, {}), source=r.source or "review")
            for r, model in reviews]
