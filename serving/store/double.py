"""双评 (double review): a call the model says reviewers would split on goes to two reviewers, each blind to the
other, and a lead adjudicates (仲裁) when they differ. One owner for each of its facts:

- **which calls**: a call whose first review is saved while its predicted spread (the queue's ``entropy`` key: the
  most uncertain head's normalised entropy) is at least the policy's ``double_review`` threshold;
- **its state** (``review_calls.double_review``): ``pending`` (waiting for a second, independent review) →
  ``agreed`` or ``differs`` (:func:`reviews_differ` on the two reviewers' latest reviews) → ``adjudicated`` (a
  lead's review of a call that ``differs``); NULL: a call reviewed once, as usual;
- **who sees what**: while ``pending``, anyone but the reviewers of the call opens it blind (:func:`blind`: no other
  reviewer's labels, verdicts or history, the model's card as the record);
- **the score of record** stays :func:`callqa.serving.store.record.score_of_record`'s: the latest review — an
  adjudication is a review (``source = adjudication``) and, being the latest, is the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callqa.calls import Label
from callqa.schema import LabelSchema
from callqa.scorecard import ScorecardResult

from .errors import ReviewError
from .models import CallView, DoubleState, ReviewRecord
from .record import card_of_record, item_points

PENDING, AGREED, DIFFERS, ADJUDICATED = "pending", "agreed", "differs", "adjudicated"
STATES: tuple[DoubleState, ...] = (PENDING, AGREED, DIFFERS, ADJUDICATED)
ADJUDICATION = "adjudication"  # a review's source when a lead adjudicates


@dataclass(frozen=True)
class DoubleCounts:
    """A period's 双评 calls by state (what the report's 双评与仲裁 section shows)."""

    pending: int = 0
    agreed: int = 0
    differs: int = 0
    adjudicated: int = 0

    @property
    def calls(self) -> int:
        return self.pending + self.agreed + self.differs + self.adjudicated

    @property
    def agreement(self) -> float | None:
        """The share of calls both reviewers reviewed on which they agreed (None: none both reviewed)."""
        both = self.agreed + self.differs + self.adjudicated
        return self.agreed / both if both else None


class AwaitsLead(ReviewError):
    """The two reviews of a double-reviewed call differ: only a lead's review (the adjudication) may follow."""

    status = 403


def reviewers_of(history: Sequence[ReviewRecord]) -> list[str]:
    """The reviewers of a call's reviews (not appeals), first reviewer first."""
    seen: list[str] = []
    for review in reversed(history):
        if review.source == "review" and review.reviewer not in seen:
            seen.append(review.reviewer)
    return seen


def labels_of(review: ReviewRecord, predicted: dict[str, Label]) -> dict[str, Label]:
    """What one review says of every head: its own labels over the model's (a head left alone is the model's)."""
    return {**predicted, **{c.head: c.value for c in review.changes}}


def reviews_differ(first: ReviewRecord, second: ReviewRecord, predicted: dict[str, Label],
                   card: ScorecardResult | None, schema: LabelSchema) -> bool:
    """Whether two reviewers' reviews of one prediction disagree: a head's label, or the scorecard each leaves
    (any item's points, or the red line)."""
    a, b = labels_of(first, predicted), labels_of(second, predicted)
    if any(_same(a.get(h)) != _same(b.get(h)) for h in schema.head_names):
        return True
    if card is None:
        return False
    one, two = card_of_record(card, first.scorecard), card_of_record(card, second.scorecard)
    return item_points(one) != item_points(two) or one.red_line != two.red_line


def _same(label: Label | None) -> object:
    return sorted(map(str, label)) if isinstance(label, list) else None if label is None else str(label)


def next_state(state: str | None, history: Sequence[ReviewRecord], spread: float, threshold: float | None,
               predicted: dict[str, Label], card: ScorecardResult | None, schema: LabelSchema) -> str | None:
    """A call's double-review state after the review just saved (``history[0]``, newest first)."""
    latest = history[0]
    if latest.source == ADJUDICATION:
        return ADJUDICATED
    if latest.source != "review":
        return state
    reviewers = reviewers_of(history)
    if state is None:
        flagged = threshold is not None and spread >= threshold and len(reviewers) == 1 \
            and sum(r.source == "review" for r in history) == 1
        return PENDING if flagged else None
    if state == PENDING and len(reviewers) >= 2:
        by = {r: next(h for h in history if h.source == "review" and h.reviewer == r) for r in reviewers[:2]}
        return DIFFERS if reviews_differ(by[reviewers[0]], by[reviewers[1]], predicted, card, schema) else AGREED
    return state


def source_of_review(state: str | None, lead: bool) -> str:
    """The source a review of a call in ``state`` is saved under (a lead's review of one that differs is the
    adjudication); :class:`AwaitsLead` when it may not be saved yet."""
    if state == DIFFERS:
        if not lead:
            raise AwaitsLead("两位质检员的结果不一致，等待组长仲裁 (the two reviews differ: a lead adjudicates)")
        return ADJUDICATION
    return "review"


def blind(view: CallView, viewer: str | None) -> CallView:
    """The call as ``viewer`` may see it: while it waits for an independent second review, no one but its
    reviewers sees another's labels, verdicts or history."""
    if view.double != PENDING or viewer is None or viewer in reviewers_of(view.history):
        return view
    return view.model_copy(update={"labels": {}, "history": [], "verdicts": None, "record": view.scores.scorecard,
                                   "blind": True})
