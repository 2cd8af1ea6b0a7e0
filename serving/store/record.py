"""The score of record: a call's scorecard as its reviews and appeal rulings leave it — one function, every reader.

The review UI, the agent's page (list and detail), the dashboard, the month report, ``reviews export``,
``reviews agreement`` and every API read a call's final scorecard from :func:`card_of_record` (the store keeps its
result in columns for the reports), over the verdicts :func:`verdicts_of_record` picks from the call's history:

- the **latest review that judged the scorecard** (its 误判, 漏扣 and hand-set points are the reviewer's whole view of
  the card: the review UI opens with them and sends them back), a review that only corrects heads leaves them stand;
- every **appeal ruling** that overturned a deduction, on top: a lead's ruling is not undone by a later review.

A red line stands while any deduction of a red-line item stands — a rule's hit not marked 误判, or a reviewer's 漏扣 —
whatever the item's points (the default card's 禁语 is worth 0 points): it zeroes the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from callqa.calls import MAX_TEXT, MAX_TURNS, json_int
from callqa.scorecard import Deduction, ItemResult, ScorecardResult

ItemId = Annotated[StrictStr, Field(min_length=1, max_length=100)]
TurnIndex = json_int(ge=0, lt=MAX_TURNS)
CharIndex = json_int(ge=0, le=MAX_TEXT)
Points = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]
MISSED = "missed"  # the rule a reviewer's 漏扣 deducts under in a score of record (and in a 误判 / appeal of it)


class HitRef(BaseModel):
    """A deduction of the reviewed prediction's scorecard, as the review UI shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item: ItemId
    rule: ItemId
    turn: TurnIndex | None = None
    start: CharIndex | None = None


class MissedDeduction(BaseModel):
    """A deduction the rules missed (漏扣): the item, where in the call (a turn, and a span of its text if marked),
    and the points it takes (default: the item's largest rule deduct)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item: ItemId
    turn: TurnIndex
    start: CharIndex | None = None
    end: CharIndex | None = None
    points: Points | None = Field(default=None, description="points it takes off; default: the item's `deduct`")
    note: StrictStr = Field(default="", max_length=500)


class ScorecardReview(BaseModel):
    """What a reviewer says about the scorecard of the prediction they reviewed."""

    model_config = ConfigDict(extra="forbid")

    false_hits: list[HitRef] = Field(default=[], max_length=500, description="deductions that are wrong (误判)")
    missed: list[MissedDeduction] = Field(default=[], max_length=200, description="deductions the rules missed (漏扣)")
    points: dict[ItemId, Points] = Field(default={}, max_length=200, description="item → the points the reviewer "
                                         "gives it")

    def __bool__(self) -> bool:
        return bool(self.false_hits or self.missed or self.points)

    def marks_wrong(self, item: str, deduction: Deduction) -> bool:
        """Whether the reviewer marked this deduction of ``item`` as 误判."""
        return HitRef(item=item, rule=deduction.rule, turn=deduction.turn, start=deduction.start) in self.false_hits

    def overturns(self, missed: MissedDeduction) -> bool:
        """Whether a 漏扣 was overturned (an agent's appeal of it upheld by a lead): a 误判 of rule ``missed``."""
        return HitRef(item=missed.item, rule=MISSED, turn=missed.turn, start=missed.start) in self.false_hits


class Judged(Protocol):
    """A review as the history lists it (:class:`callqa.serving.reviews.ReviewRecord`)."""

    scorecard: ScorecardReview | None
    source: str


def verdicts_of_record(history: Sequence[Judged]) -> ScorecardReview | None:
    """The verdicts a call's score of record applies: the latest review's that judged the scorecard (``history`` is
    newest first), with every appeal's overturns on top. None: no review judged the card."""
    latest = next((r.scorecard for r in history if r.source != "appeal" and r.scorecard is not None), None)
    rulings = [r.scorecard for r in reversed(history) if r.source == "appeal" and r.scorecard]
    if latest is None and not rulings:
        return None
    merged = (latest or ScorecardReview()).model_copy(deep=True)
    for ruling in rulings:
        merged.false_hits += [h for h in ruling.false_hits if h not in merged.false_hits]
        merged.points.update(ruling.points)
    return merged


def score_of_record(card: ScorecardResult | None, history: Sequence[Judged]) -> ScorecardResult | None:
    """A call's score of record: a prediction's ``card`` (None: it has none) as the call's ``history`` leaves it."""
    return None if card is None else card_of_record(card, verdicts_of_record(history))


def card_of_record(card: ScorecardResult, verdicts: ScorecardReview | None) -> ScorecardResult:
    """``card`` as ``verdicts`` leave it: deductions marked 误判 gone, 漏扣 added (each taking its points, within
    what the item has left), hand-set points over both, red lines from the deductions that stand."""
    if not verdicts:
        return card
    sections = []
    for section in card.sections:
        items = [_item_of_record(item, verdicts) for item in section.items]
        sections.append(section.model_copy(update={"items": items, "points": round(sum(i.points for i in items), 4)}))
    red_line = any(i.red_line for s in sections for i in s.items)
    total = 0.0 if red_line else round(sum(s.points for s in sections), 4)
    return card.model_copy(update={"sections": sections, "total": total, "red_line": red_line})


def _item_of_record(item: ItemResult, verdicts: ScorecardReview) -> ItemResult:
    wrong = [d for d in item.deductions if verdicts.marks_wrong(item.id, d)]
    missed = [m for m in verdicts.missed if m.item == item.id and not verdicts.overturns(m)]
    if not wrong and not missed and item.id not in verdicts.points:
        return item
    # What the item started from before any deduction (the head's points, or its full points), then every deduction
    # that stands taken in order, each capped by what is left — as the card itself takes them.
    left = item.points + sum(d.points for d in item.deductions)
    standing = []
    for d in item.deductions:
        if d in wrong:
            continue
        take = min(d.deduct if d.deduct is not None else d.points, left)
        standing.append(d.model_copy(update={"points": round(take, 4)}))
        left -= take
    for m in missed:
        take = min(_missed_points(item, m), left)
        standing.append(Deduction(rule=MISSED, turn=m.turn, start=m.start, end=m.end, title=m.note or "漏扣",
                                  points=round(take, 4), missed=True))
        left -= take
    points = verdicts.points.get(item.id, max(left, 0.0))
    return item.model_copy(update={"points": round(min(points, item.max_points), 4), "deductions": standing,
                                   "applicable": item.applicable or bool(missed),
                                   "red_line": item.red_line_item and bool(standing)})


def _missed_points(item: ItemResult, missed: MissedDeduction) -> float:
    if missed.points is not None:
        return missed.points
    return item.deduct if item.deduct is not None else item.max_points


def item_points(card: ScorecardResult) -> dict[str, float]:
    """Item → points of a card (of record): what reports and agreement compare."""
    return {i.id: i.points for s in card.sections for i in s.items}


__all__ = ["MISSED", "CharIndex", "HitRef", "ItemId", "MissedDeduction", "ScorecardReview", "TurnIndex", "card_of_record",
           "item_points", "score_of_record", "verdicts_of_record"]
