"""The reviews aggregate's tables: one review per submission with its head corrections, reason turns and
scorecard verdicts (append-only), and what reports count for a reviewed call — its score of record, items,
topics and rule counts — rewritten with each review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base


class ReviewedDeductionCountRow(Base):
    """The same for a reviewed call's score of record (误判 gone, 漏扣 counted as rule ``missed``)."""

    __tablename__ = "reviewed_deduction_counts"

    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), primary_key=True)
    item: Mapped[str] = mapped_column(String(100), primary_key=True)
    rule: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    hits: Mapped[int] = mapped_column(Integer)


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
