"""The calls aggregate's tables: a stored call (transcript and queue keys), its predictions, the bundles that
made them, their scorecards in columns, their topics and rule counts, and cached evidence. Predictions are
never updated: a call scored again gets a new one."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from callqa.analytics import CallMeasures, predicted_resolved, predicted_satisfaction
from callqa.calls import Call
from callqa.schema import LabelSchema
from callqa.scorecard import ScorecardResult
from callqa.scores import CallScores

from .db import Base
from .record import MISSED


class CallRow(Base):
    __tablename__ = "review_calls"
    # Covers the queue's filter and every sort key: choosing the next calls reads this index, not the table.
    __table_args__ = (Index("ix_review_calls_queue", "revision", "sample_key", "entropy", "margin", "low_score",
                            "lease_owner", "lease_until", "agent_id", "call_id"),
                      # the export's `--since` and the agents' daily quota
                      Index("ix_review_calls_reviewed", "reviewed_at", "agent_id"),
                      # reports: a period's calls per agent with their totals and latest predictions, from the index
                      # alone (report_rows.by_period names it)
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
    double_review: Mapped[str | None] = mapped_column(String(12), index=True)  # 双评 state (store/double.py)
    # Last, so reading the small columns above never walks through a long transcript's overflow pages.
    call: Mapped[dict] = mapped_column(JSON)  # the Call, without labels
    # 来电分析: how the call went (callqa.analytics.CallMeasures) and whether the model predicts it resolved; in
    # columns, so a month's call analytics read no transcript (revision 0006).
    channel: Mapped[str | None] = mapped_column(String(50))
    chat: Mapped[bool | None] = mapped_column(Boolean)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    silence_seconds: Mapped[float | None] = mapped_column(Float)
    interruptions: Mapped[int | None] = mapped_column(Integer)
    transfers: Mapped[int | None] = mapped_column(Integer)
    repeat_call: Mapped[bool | None] = mapped_column(Boolean)
    first_response: Mapped[float | None] = mapped_column(Float)
    avg_response: Mapped[float | None] = mapped_column(Float)
    resolved: Mapped[bool | None] = mapped_column(Boolean)
    satisfaction: Mapped[float | None] = mapped_column(Float)  # the model's, 0..1 (role: satisfaction head)


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


class EvidenceRow(Base):
    """Per-turn attributions of a call under one model (computed on demand, kept: they cost N + 1 scorings)."""

    __tablename__ = "evidence"

    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    data: Mapped[dict] = mapped_column(JSON)  # CallEvidence
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def sample_key(call_id: str) -> float:
    """A stable uniform draw in [0, 1) per call id: the same calls are sampled on every server and every run."""
    return int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big") / 2**64


def latest_prediction(session: Session, call_id: str) -> PredictionRow | None:
    return session.scalar(select(PredictionRow).where(PredictionRow.call_id == call_id)
                          .order_by(PredictionRow.id.desc()).limit(1))


def measure_columns(call: Call, scores: CallScores | dict, schema: LabelSchema | None) -> dict:
    """The call row's 来电分析 columns for a call and the prediction stored with it."""
    measures = CallMeasures.of(call)
    return {"channel": (call.channel or None) and call.channel[:50], "chat": measures.chat,
            "talk_seconds": measures.talk_seconds, "silence_seconds": measures.silence_seconds,
            "interruptions": measures.interruptions, "transfers": measures.transfers,
            "repeat_call": measures.repeat_call, "first_response": measures.first_response,
            "avg_response": measures.avg_response, "resolved": predicted_resolved(scores, schema),
            "satisfaction": predicted_satisfaction(scores, schema)}


def schemas_by_model(session: Session) -> dict[str, LabelSchema]:
    """The label schema each bundle scored with, as the store recorded it: tag → label schema."""
    return {r.tag: LabelSchema.model_validate(r.label_schema) for r in session.scalars(select(ModelRow))}
