"""The review store: scored calls, their predictions, and reviewers' corrections, append-only.

Tables (SQLAlchemy; SQLite with WAL by default, PostgreSQL by URL — :func:`callqa.serving.db.make_engine`):

- ``review_calls``: one row per call: the transcript, and the queue's sort keys taken from its latest prediction
  (uncertainty, lowest expected score, a stable random key), its review ``revision`` and its lease.
- ``predictions``: every prediction ever stored for a call (model tag, the API's per-head scores). Never updated.
- ``reviews`` / ``corrections``: one review per submission (reviewer, time, comment, the prediction shown) and one
  correction per head it set (previous value, new value). Never updated or deleted: a call's current label for a
  head is the value of its latest correction.

Two reviewers cannot silently overwrite each other: a submission names the revision it was made on, and is stored
only by one conditional ``UPDATE … WHERE revision = :seen`` (atomic in SQLite and PostgreSQL); a stale one is a
:class:`Conflict` (HTTP 409). Opening a call leases it to the reviewer for a while, so the queue hands it to no one else.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from callqa.calls import Call, Label
from callqa.evidence import CallEvidence
from callqa.pipeline import ScoredCall, ScoringPipeline
from callqa.schema import LabelSchema
from callqa.scorecard import ScorecardResult
from callqa.scorer import ScoringThreads
from callqa.scores import CallScores, LevelScore, TopicsScore

from .db import Base, make_engine
from .record import (  # the verdict types are re-exported: reviews carry them
    MISSED,
    CharIndex,
    HitRef,
    ItemId,
    MissedDeduction,
    ScorecardReview,
    TurnIndex,
    card_of_record,
    score_of_record,
    verdicts_of_record,
)

QueueOrder = Literal["least_confident", "lowest_score", "random"]


class QueuePolicy(BaseModel):
    """Which calls reviewers see first (configs/serving/default.yaml, ``review:``)."""

    model_config = ConfigDict(extra="forbid")

    order: QueueOrder = Field(default="least_confident", description="least_confident: the most uncertain head first; "
                              "lowest_score: the lowest expected score on any ordinal head first; random")
    confidence: Literal["entropy", "margin"] = Field(default="entropy", description="how least_confident measures "
                                                     "uncertainty: normalised entropy, or the top-two margin")
    sample_rate: float = Field(default=0.05, ge=0, le=1, description="抽检: this share of calls, drawn at random "
                               "(stably, by call id), goes to the front of the queue whatever the order")
    agent_daily_quota: int | None = Field(default=None, ge=1, description="at most this many reviews per agent per "
                                          "day (UTC); an agent's other calls leave the queue until tomorrow")
    lease_minutes: float = Field(default=15, gt=0, description="an opened call is leased to its reviewer this long")


class ReviewError(ValueError):
    status = 400


class NotFound(ReviewError):
    status = 404


class Conflict(ReviewError):
    """The call changed since the reviewer loaded it (another review was saved): reload, then decide again."""

    status = 409


class Mismatch(ReviewError):
    """Verdicts that do not fit the scorecard the call was scored with (a deduction, item, turn or span it does not
    have): a conflict with the call's state, like a stale revision — reload the call."""

    status = 409


class Leased(ReviewError):
    """Another reviewer holds the call's lease."""

    status = 423


class CallRow(Base):
    __tablename__ = "review_calls"
    # Covers the queue's filter and every sort key: choosing the next calls reads this index, not the table.
    __table_args__ = (Index("ix_review_calls_queue", "revision", "sample_key", "entropy", "margin", "low_score",
                            "lease_owner", "lease_until", "agent_id", "call_id"),
                      # the export's `--since` and the agents' daily quota
                      Index("ix_review_calls_reviewed", "reviewed_at", "agent_id"),
                      # reports: a period's calls per agent with their totals and latest predictions, from the index
                      # alone (report.by_period names it)
                      Index("ix_review_calls_report", "started_at", "agent_id", "revision", "total", "red_line",
                            "prediction_id"))

    call_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    agent_id: Mapped[str | None] = mapped_column(String(200), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    turns: Mapped[int] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)  # seconds to the last turn's end, where turns have times
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Queue keys from the latest prediction (higher uncertainty / lower margin / lower score = review first).
    model: Mapped[str] = mapped_column(String(200))
    prediction_id: Mapped[int | None] = mapped_column(Integer)  # the latest prediction (reports join on it)
    # What reports count for the call: its latest scorecard, or the reviewed one once reviewed (None: no card).
    total: Mapped[float | None] = mapped_column(Float)
    max_total: Mapped[float | None] = mapped_column(Float)
    red_line: Mapped[bool | None] = mapped_column(Boolean)
    entropy: Mapped[float] = mapped_column(Float)
    margin: Mapped[float] = mapped_column(Float)
    low_score: Mapped[float | None] = mapped_column(Float)
    sample_key: Mapped[float] = mapped_column(Float, index=True)  # uniform in [0, 1), a hash of the call id
    revision: Mapped[int] = mapped_column(Integer, default=0)  # number of reviews saved
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Last, so reading the small columns above never walks through a long transcript's overflow pages.
    call: Mapped[dict] = mapped_column(JSON)  # the Call, without labels


class PredictionRow(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    scores: Mapped[dict] = mapped_column(JSON)  # CallScores as the API returns it
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelRow(Base):
    """What produced a store's predictions: each bundle (its tag, the predictions' ``model``) with the label schema it
    scored with, recorded when its first prediction is stored. Readers (export, agreement, reports) take a call's
    schema from here; stores written before this table know no schema for their older bundles (readers say so)."""

    __tablename__ = "models"

    tag: Mapped[str] = mapped_column(String(200), primary_key=True)
    schema_name: Mapped[str] = mapped_column(String(100))
    label_schema: Mapped[dict] = mapped_column(JSON)  # LabelSchema
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScorecardRow(Base):
    """A prediction's scorecard, in columns: monthly reports aggregate totals and red lines in SQL."""

    __tablename__ = "scorecards"
    __table_args__ = (Index("ix_scorecards_call", "call_id", "prediction_id"),)

    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id"), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    hash: Mapped[str] = mapped_column(String(64))
    total: Mapped[float] = mapped_column(Float)
    max_total: Mapped[float] = mapped_column(Float)
    red_line: Mapped[bool] = mapped_column(Boolean, index=True)


class ScorecardItemRow(Base):
    """One item of a prediction's scorecard: its points, maximum, deductions and whether it applied."""

    __tablename__ = "scorecard_items"

    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id"), primary_key=True)
    item: Mapped[str] = mapped_column(String(100), primary_key=True)
    section: Mapped[str] = mapped_column(String(100))
    points: Mapped[float] = mapped_column(Float)
    max_points: Mapped[float] = mapped_column(Float)
    deductions: Mapped[int] = mapped_column(Integer)
    applicable: Mapped[bool] = mapped_column(Boolean)
    red_line: Mapped[bool] = mapped_column(Boolean)


class DeductionCountRow(Base):
    """How often each rule deducted on a prediction's scorecard (per item): the month report's 主要问题 ranks rules by
    the calls they deducted on, red lines included."""

    __tablename__ = "deduction_counts"

    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id"), primary_key=True)
    item: Mapped[str] = mapped_column(String(100), primary_key=True)
    rule: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))  # the rule's Chinese title, as the card names it
    hits: Mapped[int] = mapped_column(Integer)


class ReviewedDeductionCountRow(Base):
    """The same for a reviewed call's score of record (误判 gone, 漏扣 counted as rule ``missed``)."""

    __tablename__ = "reviewed_deduction_counts"

    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), primary_key=True)
    item: Mapped[str] = mapped_column(String(100), primary_key=True)
    rule: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    hits: Mapped[int] = mapped_column(Integer)


def deduction_counts(card: ScorecardResult) -> dict[tuple[str, str], tuple[str, int]]:
    """(item, rule) → (rule title, hits) of a card's deductions; a reviewer's 漏扣 counts under rule ``missed``."""
    out: dict[tuple[str, str], tuple[str, int]] = {}
    for item in card.items().values():
        for d in item.deductions:
            rule, title = (MISSED, "漏扣（复核补扣）") if d.missed else (d.rule, d.title)
            out[(item.id, rule)] = (title, out.get((item.id, rule), (title, 0))[1] + 1)
    return out


class PredictionTopicRow(Base):
    """A topic a prediction puts a call in (a multilabel head's label over its threshold): reports count in SQL."""

    __tablename__ = "prediction_topics"

    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id"), primary_key=True)
    head: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100), primary_key=True)


class ReviewedScorecardRow(Base):
    """A reviewed call's scorecard as its reviews leave it (:func:`callqa.serving.record.card_of_record`): what reports count for the call
    instead of the model's. Derived from the reviews, rewritten with each one."""

    __tablename__ = "reviewed_scorecards"

    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), primary_key=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id"))
    total: Mapped[float] = mapped_column(Float)
    max_total: Mapped[float] = mapped_column(Float)
    red_line: Mapped[bool] = mapped_column(Boolean)


class ReviewedItemRow(Base):
    __tablename__ = "reviewed_scorecard_items"

    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), primary_key=True)
    item: Mapped[str] = mapped_column(String(100), primary_key=True)
    points: Mapped[float] = mapped_column(Float)
    max_points: Mapped[float] = mapped_column(Float)
    deductions: Mapped[int] = mapped_column(Integer)  # deductions of record: the rules' not marked 误判, and 漏扣


class ReviewedTopicRow(Base):
    """A reviewed call's topics: the reviewer's label where they set one, else the reviewed prediction's."""

    __tablename__ = "reviewed_topics"

    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), primary_key=True)
    head: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100), primary_key=True)


class EvidenceRow(Base):
    """Per-turn attributions of a call under one model (computed on demand, kept: they cost N + 1 scorings)."""

    __tablename__ = "evidence"

    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    data: Mapped[dict] = mapped_column(JSON)  # CallEvidence
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewRow(Base):
    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("call_id", "revision"),)  # a second guard against two reviews of one state

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(String(64))
    reviewer_name: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id"))
    source: Mapped[str | None] = mapped_column(String(20), default="review")  # review | appeal (a lead's ruling)
    # The review judged the scorecard (its verdicts, even none, replace the earlier ones); NULL in stores written
    # before this column: judged where it has verdict rows.
    scorecard_judged: Mapped[bool | None] = mapped_column(Boolean)


class CorrectionRow(Base):
    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    call_id: Mapped[str] = mapped_column(String(200), index=True)
    head: Mapped[str] = mapped_column(String(100))
    previous: Mapped[Any] = mapped_column(JSON, nullable=True)  # the label before, or the model's value if none
    value: Mapped[Any] = mapped_column(JSON)


class ReasonRow(Base):
    """A turn a reviewer marked as the reason for a head's label (exported as the turn label ``reason``)."""

    __tablename__ = "review_reasons"

    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), primary_key=True)
    head: Mapped[str] = mapped_column(String(100), primary_key=True)
    turn: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(200), index=True)


class ScorecardCorrectionRow(Base):
    """A reviewer's verdict on the scorecard: a deduction marked wrong (误判), a missed one (漏扣), or an item's
    points set by hand. Append-only, like head corrections: each belongs to one review."""

    __tablename__ = "scorecard_corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    call_id: Mapped[str] = mapped_column(String(200), index=True)
    item: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # false_hit | missed | points
    rule: Mapped[str | None] = mapped_column(String(100))
    turn: Mapped[int | None] = mapped_column(Integer)
    start: Mapped[int | None] = mapped_column(Integer)
    end: Mapped[int | None] = mapped_column(Integer)
    points: Mapped[float | None] = mapped_column(Float)  # kind points: the item's; missed: what it takes (None: default)
    note: Mapped[str] = mapped_column(Text, default="")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def sample_key(call_id: str) -> float:
    """A stable uniform draw in [0, 1) per call id: the same calls are sampled on every server and every run."""
    return int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big") / 2**64


def ingest(store: ReviewStore, threads: ScoringThreads, pipeline: ScoringPipeline, calls: list[Call],
           batch_size: int = 32, advance=lambda n: None) -> int:
    """Score calls through the pipeline (batches side by side on ``threads``) and store them for review,
    ``batch_size`` calls per transaction, in order; returns how many new predictions were stored."""
    info, added = pipeline.info, 0
    batches = [calls[start : start + batch_size] for start in range(0, len(calls), batch_size)]
    for batch, scored in zip(batches, threads.map(pipeline.score, batches)):
        added += store.add_scored(batch, scored, info.tag, info.schema_)
        advance(len(batch))
    return added


def queue_keys(scores: CallScores, schema: LabelSchema) -> tuple[float, float, float | None]:
    """(entropy, margin, low_score) of a call: the most uncertain head's entropy and the smallest margin, as each
    head's kind measures them (callqa.heads.HeadKind.uncertainty); low_score: the lowest ordinal expected score,
    scaled to 0..1 — None when the schema has no ordinal head."""
    entropies, margins, lows = [0.0], [1.0], []
    for name, score in scores.scores.items():
        if name not in schema.head_names:
            continue
        head = schema[name]
        if isinstance(score, TopicsScore):
            probs = np.array([label.probability for label in score.labels])
            entropy, margin = head.spec.uncertainty(probs, np.array([label.threshold for label in score.labels]))
        else:
            entropy, margin = head.spec.uncertainty(np.array(list(score.distribution.values())))
        entropies.append(entropy)
        margins.append(margin)
        if isinstance(score, LevelScore) and score.expected is not None:
            values = head.values
            span = float(values.max() - values.min()) or 1.0
            lows.append((score.expected - float(values.min())) / span)
    return max(entropies), min(margins), (min(lows) if lows else None)


class QueueItem(BaseModel):
    call_id: str
    agent_id: str | None
    agent_name: str = Field(default="", description="from the agent directory, where the server has one")
    started_at: datetime | None
    duration: float | None = Field(default=None, description="seconds, where the call's turns have times")
    model: str
    turns: int
    sampled: bool = Field(description="drawn for the random sample (抽检)")
    entropy: float
    margin: float
    low_score: float | None
    leased_to_me: bool
    total: float | None = Field(default=None, description="the scorecard total: the latest prediction's, or the "
                                "reviewed card's once reviewed")
    red_line: bool | None = None
    revision: int = Field(default=0, description="reviews saved (0: not reviewed)")


class CallFilter(BaseModel):
    """A search over the stored calls (the queue page's filters); every field narrows, None = any."""

    model_config = ConfigDict(extra="forbid")

    agents: list[Annotated[str, Field(max_length=200)]] | None = Field(default=None, max_length=1000)
    started_from: datetime | None = None
    started_before: datetime | None = None
    topic: Annotated[str, Field(max_length=100)] | None = None
    score_min: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] | None = None
    score_max: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] | None = None
    red_line: bool | None = None
    reviewed: bool | None = None
    sampled: bool | None = None
    reviewed_by: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="a reviewer's key id: "
                                                                      "calls they reviewed (“my reviews”)")


class Change(BaseModel):
    head: str
    previous: Label | None
    value: Label


class ReviewRecord(BaseModel):
    id: int
    revision: int
    reviewer: str
    reviewer_name: str
    created: datetime
    comment: str
    model: str | None
    changes: list[Change]
    scorecard: ScorecardReview | None = None
    reasons: dict[str, list[int]] = Field(default={}, description="head → turns marked as the reason for its label")
    source: str = Field(default="review", description="review, or appeal: a lead's ruling that overturned deductions")


class CallView(BaseModel):
    """Everything the review UI shows for one call."""

    call: Call
    model: str
    prediction_id: int
    scores: ScoredCall
    labels: dict[str, Label] = Field(description="current label per head (latest correction), where reviewed")
    revision: int = Field(description="send this back with a review; it changes when anyone saves one")
    lease_owner: str | None
    lease_until: datetime | None
    history: list[ReviewRecord] = Field(description="every review of the call, newest first")
    verdicts: ScorecardReview | None = Field(default=None, description="the verdicts the score of record applies: "
                                             "the latest review's on the scorecard, with appeal rulings on top")
    record: ScorecardResult | None = Field(default=None, description="the score of record: the reviewed "
                                           "prediction's scorecard as those verdicts leave it")


@dataclass(frozen=True)
class Reviewer:
    id: str
    name: str = ""


@dataclass(frozen=True)
class ReviewedCall:
    """A reviewed call with its current labels: what `reviews export` writes and `reviews agreement` compares."""

    call: Call
    labels: dict[str, Label]
    reviewer: str
    reviewed_at: datetime
    model: str
    predicted: dict[str, Label]  # the model's values in the prediction the latest review saw
    scorecard: ScorecardResult | None = None  # that prediction's scorecard
    reasons: dict[str, list[int]] | None = None  # head → turns reviewers marked as the reason for its current label
    scorecard_review: ScorecardReview | None = None  # the verdicts of record (serving.record.verdicts_of_record)
    source: str = "review"  # of the latest review: review, or appeal
    schema: LabelSchema | None = None  # the label schema of the model that made the prediction (None: not recorded)

    @property
    def record(self) -> ScorecardResult | None:
        """The score of record: the scorecard as the verdicts of record leave it."""
        return None if self.scorecard is None else card_of_record(self.scorecard, self.scorecard_review)


class ReviewStore:
    def __init__(self, url: str, policy: QueuePolicy | None = None):
        self.engine = make_engine(url)  # stores from before the report tables got them filled in revision 0003
        self.policy = policy or QueuePolicy()

    # --- calls and predictions in -------------------------------------------------------------------------------
    def add_scored(self, calls: Iterable[Call], scores: Iterable[CallScores], model: str, schema: LabelSchema) -> int:
        """Store calls with their predictions, in one transaction. A call stored before gets a new prediction (its
        transcript is replaced by this one, its reviews kept); an identical repeat prediction is not stored twice."""
        now, count = utcnow(), 0
        with Session(self.engine) as session, session.begin():
            if session.get(ModelRow, model) is None:
                session.add(ModelRow(tag=model, schema_name=schema.name, label_schema=schema.model_dump(mode="json"),
                                     added=now))
            for call, score in zip(calls, scores, strict=True):
                entropy, margin, low = queue_keys(score, schema)
                stored = score.model_dump(mode="json", exclude={"evidence"})  # evidence has a table of its own
                row = session.get(CallRow, call.call_id)
                transcript = call.model_dump(mode="json", exclude={"labels"}, exclude_none=True)
                if row is None:
                    row = CallRow(call_id=call.call_id, added=now, sample_key=sample_key(call.call_id), revision=0)
                    session.add(row)
                else:
                    last = _latest_prediction(session, call.call_id)
                    if last is not None and last.model == model and last.scores == stored \
                            and row.call == transcript:
                        continue
                # SQLite keeps no time zone: store UTC (a time without a zone is taken as UTC).
                started = call.started_at.astimezone(UTC) if call.started_at and call.started_at.tzinfo else call.started_at
                row.agent_id, row.started_at, row.turns, row.call = call.agent_id, started, len(call.turns), transcript
                row.duration = max((t.end for t in call.turns if t.end is not None), default=None)
                row.model, row.entropy, row.margin, row.low_score = model, entropy, margin, low
                prediction = PredictionRow(call_id=call.call_id, model=model, scores=stored,
                                           created=now)
                session.add(prediction)
                session.flush()  # the prediction's id
                row.prediction_id = prediction.id
                session.add_all(PredictionTopicRow(prediction_id=prediction.id, head=head, topic=topic)
                                for head, topic in _topics(score.scores))
                card = getattr(score, "scorecard", None)
                if row.revision == 0:  # a reviewed call keeps counting with its reviewed card
                    row.total, row.max_total, row.red_line = (card.total, card.max_total, card.red_line) if card else (None,) * 3
                if card is not None:
                    session.add(ScorecardRow(prediction_id=prediction.id, call_id=call.call_id, name=card.name,
                                             hash=card.hash, total=card.total, max_total=card.max_total,
                                             red_line=card.red_line))
                    session.add_all(DeductionCountRow(prediction_id=prediction.id, item=item, rule=rule, title=title,
                                                      hits=hits)
                                    for (item, rule), (title, hits) in deduction_counts(card).items())
                    session.add_all(ScorecardItemRow(prediction_id=prediction.id, item=i.id, section=s.id,
                                                     points=i.points, max_points=i.max_points,
                                                     deductions=len(i.deductions), applicable=i.applicable,
                                                     red_line=i.red_line)
                                    for s in card.sections for i in s.items)
                count += 1
        return count

    # --- the queue ----------------------------------------------------------------------------------------------
    def _available(self, session: Session, reviewer: str, now: datetime):
        """Unreviewed calls not leased to someone else, without agents whose daily quota is used up."""
        clauses = [CallRow.revision == 0,
                   or_(CallRow.lease_owner.is_(None), CallRow.lease_owner == reviewer, CallRow.lease_until < now)]
        if self.policy.agent_daily_quota:
            # Today's reviewed calls by index, counted here: a GROUP BY agent_id lets SQLite's planner walk the
            # agent_id index over every call instead.
            midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
            today = Counter(session.scalars(select(CallRow.agent_id).where(CallRow.reviewed_at >= midnight)))
            full = [agent for agent, n in today.items() if agent is not None and n >= self.policy.agent_daily_quota]
            if full:
                clauses.append(or_(CallRow.agent_id.is_(None), CallRow.agent_id.not_in(full)))
        return and_(*clauses)

    def _order(self) -> list:
        policy = self.policy
        sampled = (CallRow.sample_key < policy.sample_rate).desc()
        by = {"least_confident": CallRow.entropy.desc() if policy.confidence == "entropy" else CallRow.margin.asc(),
              "lowest_score": func.coalesce(CallRow.low_score, 2.0).asc(),
              "random": CallRow.sample_key.asc()}[policy.order]
        return [sampled, by, CallRow.call_id]

    def queue(self, reviewer: str, limit: int = 50) -> tuple[list[QueueItem], int]:
        """The next calls in queue order, and how many are waiting in all."""
        now = utcnow()
        with Session(self.engine) as session:
            where = self._available(session, reviewer, now)
            # Choose by the covering index, then read the chosen rows' columns (never a transcript).
            chosen = session.scalars(select(CallRow.call_id).where(where).order_by(*self._order()).limit(limit)).all()
            found = {r.call_id: r for r in session.execute(
                select(*_ITEM_COLUMNS).where(CallRow.call_id.in_(chosen)))}
            rows = [found[call_id] for call_id in chosen]
            total = session.scalar(select(func.count()).select_from(CallRow).where(where))
        items = [self._item(r, reviewer, now) for r in rows]
        return items, int(total or 0)

    def search(self, found: CallFilter, reviewer: str, limit: int = 50) -> tuple[list[QueueItem], int]:
        """Calls matching the filter, newest first, and how many match in all (reviewed calls too, unless filtered)."""
        now = utcnow()
        where = []
        if found.agents is not None:
            where.append(CallRow.agent_id.in_(found.agents))
        if found.started_from is not None:
            where.append(CallRow.started_at >= found.started_from.astimezone(UTC))
        if found.started_before is not None:
            where.append(CallRow.started_at < found.started_before.astimezone(UTC))
        if found.reviewed is not None:
            where.append(CallRow.revision > 0 if found.reviewed else CallRow.revision == 0)
        if found.sampled is not None:
            where.append((CallRow.sample_key < self.policy.sample_rate) == found.sampled)
        if found.topic is not None:
            where.append(exists().where(PredictionTopicRow.prediction_id == CallRow.prediction_id, PredictionTopicRow.topic == found.topic))
        if found.reviewed_by is not None:
            where.append(exists().where(ReviewRow.call_id == CallRow.call_id, ReviewRow.reviewer == found.reviewed_by))
        if found.score_min is not None:
            where.append(CallRow.total >= found.score_min)
        if found.score_max is not None:
            where.append(CallRow.total <= found.score_max)
        if found.red_line is not None:
            where.append(CallRow.red_line == found.red_line)
        query = select(*_ITEM_COLUMNS).where(*where)
        with Session(self.engine) as session:
            rows = session.execute(query.order_by(CallRow.started_at.desc(), CallRow.call_id).limit(limit)).all()
            total = session.scalar(select(func.count()).select_from(query.subquery()))
        return [self._item(r, reviewer, now) for r in rows], int(total or 0)

    def _item(self, r, reviewer: str, now: datetime) -> QueueItem:
        return QueueItem(call_id=r.call_id, agent_id=r.agent_id, started_at=_utc(r.started_at), duration=r.duration,
                         model=r.model, turns=r.turns, sampled=r.sample_key < self.policy.sample_rate,
                         entropy=r.entropy, margin=r.margin, low_score=r.low_score, revision=r.revision,
                         total=r.total, red_line=r.red_line,
                         leased_to_me=r.lease_owner == reviewer and r.lease_until is not None
                         and _utc(r.lease_until) > now)

    def lease(self, call_id: str, reviewer: Reviewer) -> datetime:
        """Lease a call to a reviewer (renewing their own lease); :class:`Leased` if someone else holds it."""
        now = utcnow()
        until = now + timedelta(minutes=self.policy.lease_minutes)
        with Session(self.engine) as session, session.begin():
            # The conditional UPDATE is the first statement, so SQLite takes its write lock before reading anything.
            done = session.execute(
                update(CallRow).where(CallRow.call_id == call_id, or_(CallRow.lease_owner.is_(None),
                                      CallRow.lease_owner == reviewer.id, CallRow.lease_until < now))
                .values(lease_owner=reviewer.id, lease_until=until)).rowcount
            if not done:
                self._why_not(session, call_id, reviewer, now)
        return until

    def release(self, call_id: str, reviewer: Reviewer) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(update(CallRow).where(CallRow.call_id == call_id, CallRow.lease_owner == reviewer.id)
                            .values(lease_owner=None, lease_until=None))

    def next_call(self, reviewer: Reviewer) -> str | None:
        """Lease the first call of the queue; None when the queue is empty. Retries when another reviewer takes
        the same call between reading the queue and leasing it."""
        for _ in range(20):
            items, _ = self.queue(reviewer.id, limit=1)
            if not items:
                return None
            try:
                self.lease(items[0].call_id, reviewer)
                return items[0].call_id
            except Leased:
                continue
        return None

    # --- reading a call -----------------------------------------------------------------------------------------
    def view(self, call_id: str) -> CallView:
        with Session(self.engine) as session:
            row = session.get(CallRow, call_id)
            if row is None:
                raise NotFound(f"no call {call_id!r} in the review store")
            prediction = _latest_prediction(session, call_id)
            history = self._history(session, call_id)
            scores = ScoredCall.model_validate(prediction.scores)
            verdicts = verdicts_of_record(history)
            record = None if scores.scorecard is None else card_of_record(scores.scorecard, verdicts)
            return CallView(call=Call.model_validate(row.call), model=prediction.model, prediction_id=prediction.id,
                            scores=scores, labels=_current(history), revision=row.revision,
                            lease_owner=row.lease_owner, lease_until=_utc(row.lease_until), history=history,
                            verdicts=verdicts, record=record)

    def preview_record(self, call_id: str, verdicts: ScorecardReview) -> ScorecardResult:
        """The score of record the call would have if these verdicts were saved on its latest prediction (the
        review UI shows it while the reviewer marks 误判 / 漏扣): checked exactly as a saved review is."""
        with Session(self.engine) as session:
            row = session.get(CallRow, call_id)
            if row is None:
                raise NotFound(f"no call {call_id!r} in the review store")
            shown = ScoredCall.model_validate(_latest_prediction(session, call_id).scores)
            # Checked as save_review checks them: a 误判 of a 漏扣 may refer to one of the verdicts of record.
            problems = _scorecard_problems(verdicts, shown, row.call["turns"],
                                           verdicts_of_record(history_of(session, call_id)))
        if problems:
            raise Mismatch("; ".join(problems))
        return card_of_record(shown.scorecard, verdicts)

    def evidence(self, call_id: str, model: str) -> CallEvidence | None:
        """The call's cached evidence under ``model``, if computed before."""
        with Session(self.engine) as session:
            row = session.get(EvidenceRow, (call_id, model))
            return CallEvidence.model_validate(row.data) if row else None

    def save_evidence(self, evidence: CallEvidence) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(EvidenceRow(call_id=evidence.call_id, model=evidence.model,
                                      data=evidence.model_dump(mode="json"), created=utcnow()))

    def _history(self, session: Session, call_id: str) -> list[ReviewRecord]:
        return history_of(session, call_id)

    # --- saving a review ----------------------------------------------------------------------------------------
    def submit(self, call_id: str, reviewer: Reviewer, revision: int, labels: dict[str, Label], schema: LabelSchema,
               comment: str = "", scorecard: ScorecardReview | None = None,
               reasons: dict[str, list[int]] | None = None, source: str = "review") -> ReviewRecord:
        """Save a review made on ``revision`` of the call: one correction per head in ``labels``, and the verdicts
        on the prediction's scorecard. Raises :class:`Conflict` when the call has a newer review, :class:`Leased`
        when another reviewer holds it. The review is committed (and on SQLite, synced to disk) before this returns."""
        problems = schema.check_labels(labels)
        if not labels and scorecard is None:
            problems.append(("labels", "no labels given: set at least one head, or judge the scorecard"))
        if problems:
            raise ReviewError("; ".join(f"{field}: {message}" for field, message in problems))
        with Session(self.engine) as session, session.begin():
            return self.save_review(session, call_id, reviewer, revision, labels, schema, comment, scorecard, reasons,
                                    source)

    def save_review(self, session: Session, call_id: str, reviewer: Reviewer, revision: int, labels: dict[str, Label],
                    schema: LabelSchema, comment: str = "", scorecard: ScorecardReview | None = None,
                    reasons: dict[str, list[int]] | None = None, source: str = "review") -> ReviewRecord:
        """:meth:`submit`'s work inside the caller's transaction (an appeal's ruling saves its correction and the
        ruling together). The caller has checked ``labels`` against the schema."""
        now = utcnow()
        done = session.execute(
            update(CallRow).where(CallRow.call_id == call_id, CallRow.revision == revision,
                                  or_(CallRow.lease_owner.is_(None), CallRow.lease_owner == reviewer.id,
                                      CallRow.lease_until < now))
            .values(revision=revision + 1, reviewed_at=now, lease_owner=None, lease_until=None)).rowcount
        if not done:
            self._why_not(session, call_id, reviewer, now, revision)
        prediction = _latest_prediction(session, call_id)
        earlier = self._history(session, call_id)
        before = _current(earlier)
        model_says = CallScores.model_validate(prediction.scores).predicted()
        review = ReviewRow(call_id=call_id, revision=revision + 1, reviewer=reviewer.id, reviewer_name=reviewer.name,
                           created=now, comment=comment, prediction_id=prediction.id, source=source,
                           scorecard_judged=scorecard is not None)
        session.add(review)
        session.flush()
        changes = [Change(head=head, previous=_canonical(before.get(head, model_says.get(head))),
                          value=_canonical(labels[head]))
                   for head in schema.head_names if head in labels]
        session.add_all(CorrectionRow(review_id=review.id, call_id=call_id, head=c.head, previous=c.previous,
                                      value=c.value) for c in changes)
        reasons = {head: sorted(set(turns)) for head, turns in (reasons or {}).items() if turns}
        if reasons:
            n_turns = len(session.get(CallRow, call_id).call["turns"])
            bad = [f"reasons.{head}: no head {head!r} in schema {schema.name!r}" for head in reasons
                   if head not in schema.head_names]
            bad += [f"reasons.{head}: turn {t} is not one of the call's {n_turns} turns"
                    for head, turns in reasons.items() for t in turns if t >= n_turns]
            if bad:  # a turn the call does not have: a conflict with the call, like a stale revision
                raise Mismatch("; ".join(bad))  # rolls the whole review back
            session.add_all(ReasonRow(review_id=review.id, head=head, turn=t, call_id=call_id)
                            for head, turns in reasons.items() for t in turns)
        if scorecard is not None:
            shown = ScoredCall.model_validate(prediction.scores)
            problems = _scorecard_problems(scorecard, shown, session.get(CallRow, call_id).call["turns"],
                                           verdicts_of_record(earlier))
            if problems:
                raise Mismatch("; ".join(problems))  # rolls the whole review back
            session.add_all(_scorecard_rows(scorecard, review.id, call_id))
        session.flush()
        _refresh_reviewed(session, call_id, prediction, self._history(session, call_id))
        # Built here, not read back: the session commits (and SQLite syncs) when this block exits.
        return ReviewRecord(id=review.id, revision=review.revision, reviewer=reviewer.id, reviewer_name=reviewer.name,
                            created=now, comment=comment, model=prediction.model, changes=changes,
                            scorecard=scorecard, reasons=reasons, source=source)

    def _why_not(self, session: Session, call_id: str, reviewer: Reviewer, now: datetime,
                 revision: int | None = None) -> None:
        row = session.get(CallRow, call_id)
        if row is None:
            raise NotFound(f"no call {call_id!r} in the review store")
        if revision is not None and row.revision != revision:
            last = session.scalar(select(ReviewRow).where(ReviewRow.call_id == call_id).order_by(ReviewRow.revision.desc()))
            who = f" by {last.reviewer_name or last.reviewer} at {_utc(last.created):%H:%M:%S} UTC" if last else ""
            raise Conflict(f"call {call_id} was reviewed{who} since you opened it (revision {row.revision}, yours "
                           f"{revision}); reload it to see that review, then save again")
        raise Leased(f"call {call_id} is being reviewed by {row.lease_owner} until "
                     f"{_utc(row.lease_until):%H:%M:%S} UTC")

    # --- reviewed calls out -------------------------------------------------------------------------------------
    def reviewed(self, since: date | datetime | None = None, started: tuple[datetime, datetime] | None = None,
                 agents: Iterable[str] | None = None) -> Iterator[ReviewedCall]:
        """Every reviewed call (last reviewed on or after ``since``; started in ``[start, end)``; of these agents)
        with its current labels, oldest review first."""
        with Session(self.engine) as session:
            query = select(CallRow).where(CallRow.revision > 0).order_by(CallRow.reviewed_at, CallRow.call_id)
            if since is not None:
                if not isinstance(since, datetime):
                    since = datetime.combine(since, datetime.min.time())
                query = query.where(CallRow.reviewed_at >= (since if since.tzinfo else since.replace(tzinfo=UTC)))
            if started is not None:
                query = query.where(CallRow.started_at >= started[0], CallRow.started_at < started[1])
            if agents is not None:
                query = query.where(CallRow.agent_id.in_(list(agents)))
            # Ids first, then one call at a time: nothing holds every transcript in memory at once.
            for call_id in session.scalars(query.with_only_columns(CallRow.call_id)).all():
                row = session.get(CallRow, call_id)
                history = self._history(session, row.call_id)
                latest = history[0]
                shown = session.get(PredictionRow, session.get(ReviewRow, latest.id).prediction_id)
                scores = ScoredCall.model_validate(shown.scores)
                yield ReviewedCall(call=Call.model_validate(row.call), labels=_current(history), reviewer=latest.reviewer,
                                   reviewed_at=latest.created, model=shown.model, predicted=scores.predicted(),
                                   scorecard=scores.scorecard, scorecard_review=verdicts_of_record(history),
                                   reasons=_current_reasons(history), source=latest.source,
                                   schema=self._schema_of(session, shown.model))
                session.expunge_all()

    def latest_started(self) -> datetime | None:
        """When the latest stored call started (UTC): where a report of "the latest month with calls" looks."""
        with Session(self.engine) as session:
            return _utc(session.scalar(select(func.max(CallRow.started_at))))

    def models(self) -> dict[str, LabelSchema]:
        """Every bundle whose predictions the store holds and knows the schema of: tag → label schema."""
        with Session(self.engine) as session:
            return {r.tag: LabelSchema.model_validate(r.label_schema) for r in session.scalars(select(ModelRow))}

    def _schema_of(self, session: Session, model: str) -> LabelSchema | None:
        row = session.get(ModelRow, model)
        return LabelSchema.model_validate(row.label_schema) if row is not None else None

    def counts(self) -> dict[str, int]:
        with Session(self.engine) as session:
            return {"calls": session.scalar(select(func.count()).select_from(CallRow)) or 0,
                    "reviewed": session.scalar(select(func.count()).select_from(CallRow).where(CallRow.revision > 0)) or 0,
                    "reviews": session.scalar(select(func.count()).select_from(ReviewRow)) or 0}


# What a queue or search row shows: the call's small columns and its latest scorecard's total (never a transcript).
_ITEM_COLUMNS = (CallRow.call_id, CallRow.agent_id, CallRow.started_at, CallRow.duration, CallRow.model, CallRow.turns,
                 CallRow.sample_key, CallRow.entropy, CallRow.margin, CallRow.low_score, CallRow.lease_owner,
                 CallRow.lease_until, CallRow.revision, CallRow.total, CallRow.red_line)


def _latest_prediction(session: Session, call_id: str) -> PredictionRow | None:
    return session.scalar(select(PredictionRow).where(PredictionRow.call_id == call_id)
                          .order_by(PredictionRow.id.desc()).limit(1))


def _canonical(label: Label) -> Label:
    """Labels stored in one spelling: class ids as strings, topic lists sorted and without repeats."""
    if isinstance(label, list):
        return sorted({str(x) for x in label})
    if isinstance(label, int):
        return str(label)
    return label


def _scorecard_problems(review: ScorecardReview, shown: ScoredCall, turns: list[dict],
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


def _scorecard_rows(review: ScorecardReview, review_id: int, call_id: str) -> list[ScorecardCorrectionRow]:
    rows = [ScorecardCorrectionRow(review_id=review_id, call_id=call_id, item=h.item, kind="false_hit", rule=h.rule,
                                   turn=h.turn, start=h.start) for h in review.false_hits]
    rows += [ScorecardCorrectionRow(review_id=review_id, call_id=call_id, item=m.item, kind="missed", turn=m.turn,
                                    start=m.start, end=m.end, points=m.points, note=m.note) for m in review.missed]
    rows += [ScorecardCorrectionRow(review_id=review_id, call_id=call_id, item=item, kind="points", points=points)
             for item, points in review.points.items()]
    return rows


def _current_reasons(history: list[ReviewRecord]) -> dict[str, list[int]]:
    """Per head, the turns marked by the latest review that marked any for it (newest first, like labels)."""
    reasons: dict[str, list[int]] = {}
    for review in history:
        for head, turns in review.reasons.items():
            reasons.setdefault(head, turns)
    return reasons


def _topics(scores: dict) -> list[tuple[str, str]]:
    """(head, topic) of every label over its threshold, from a prediction's scores (as stored or as objects)."""
    out = []
    for head, score in scores.items():
        predicted = score.get("predicted") if isinstance(score, dict) else getattr(score, "predicted", None)
        if isinstance(predicted, list):
            out += [(head, topic) for topic in predicted]
    return out


def _refresh_reviewed(session: Session, call_id: str, prediction: PredictionRow, history: list[ReviewRecord]) -> None:
    """Rewrite what reports count for a reviewed call: its scorecard and topics as its reviews leave them."""
    for table in (ReviewedScorecardRow, ReviewedItemRow, ReviewedTopicRow, ReviewedDeductionCountRow):
        session.execute(delete(table).where(table.call_id == call_id))
    shown = ScoredCall.model_validate(prediction.scores)
    labels = _current(history)
    topics = {(head, t) for head, t in _topics(shown.scores) if head not in labels}
    topics |= {(head, str(t)) for head, value in labels.items() if isinstance(value, list) for t in value}
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


def _current(history: list[ReviewRecord]) -> dict[str, Label]:
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
        changes.setdefault(c.review_id, []).append(Change(head=c.head, previous=_canonical(c.previous),
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
                         created=_utc(r.created), comment=r.comment, model=model, changes=changes.get(r.id, []),
                         scorecard=cards.get(r.id), reasons=reasons.get(r.id, {}), source=r.source or "review")
            for r, model in reviews]


def fill_report_tables(bind) -> None:
    """What reports count, for a store written before the report tables existed (schema revision 0003): each call's
    latest prediction and its card's columns, and every prediction's topics. (Reviewed calls get their score of
    record in revision 0004, with the rule counts.)"""
    with Session(bind) as session, session.begin():
        if session.scalar(select(CallRow.call_id).where(CallRow.prediction_id.is_(None)).limit(1)) is not None:
            latest = select(func.max(PredictionRow.id)).where(PredictionRow.call_id == CallRow.call_id).scalar_subquery()
            session.execute(update(CallRow).where(CallRow.prediction_id.is_(None)).values(prediction_id=latest))
        if session.scalar(select(CallRow.call_id).where(CallRow.total.is_(None), CallRow.revision == 0,
                                                        CallRow.prediction_id.in_(select(ScorecardRow.prediction_id)))
                          .limit(1)) is not None:
            card = select(ScorecardRow).where(ScorecardRow.prediction_id == CallRow.prediction_id)
            session.execute(update(CallRow).where(CallRow.total.is_(None), CallRow.revision == 0).values(
                total=card.with_only_columns(ScorecardRow.total).scalar_subquery(),
                max_total=card.with_only_columns(ScorecardRow.max_total).scalar_subquery(),
                red_line=card.with_only_columns(ScorecardRow.red_line).scalar_subquery()))
        if session.scalar(select(PredictionTopicRow.prediction_id).limit(1)) is None:
            for pid, scores in session.execute(select(PredictionRow.id, PredictionRow.scores)
                                               .execution_options(yield_per=2000)):
                session.add_all(PredictionTopicRow(prediction_id=pid, head=h, topic=t)
                                for h, t in _topics(scores.get("scores", {})))



def fill_deduction_counts(bind) -> None:
    """Rule counts for the predictions of a store from before they were kept, and every reviewed call's score of
    record by today's rules with its rule counts (revision 0004): stores from before kept totals that dropped
    confirmed red lines and 漏扣 that took nothing."""
    with Session(bind) as session, session.begin():
        for pid, scores in session.execute(select(PredictionRow.id, PredictionRow.scores)
                                           .execution_options(yield_per=2000)).all():
            card = scores.get("scorecard") if isinstance(scores, dict) else None
            if card:
                session.add_all(DeductionCountRow(prediction_id=pid, item=item, rule=rule, title=title, hits=hits)
                                for (item, rule), (title, hits)
                                in deduction_counts(ScorecardResult.model_validate(card)).items())
        for call_id in session.scalars(select(CallRow.call_id).where(CallRow.revision > 0)).all():
            history = history_of(session, call_id)
            shown = session.get(PredictionRow, session.get(ReviewRow, history[0].id).prediction_id)
            _refresh_reviewed(session, call_id, shown, history)

__all__ = ["CharIndex", "HitRef", "ItemId", "MissedDeduction", "TurnIndex", "CallFilter", "CallView", "Conflict", "Leased", "NotFound", "QueueItem", "QueuePolicy", "ReviewError",
           "Mismatch", "ReviewRecord", "ReviewStore", "ReviewedCall", "Reviewer", "ScorecardReview", "queue_keys",
           "fill_report_tables", "history_of", "sample_key"]
