"""The appeals aggregate's tables: an appeal of a call's scorecard, its entries (a deduction or a whole item, with
the points at stake) and the leads' rulings on them. Rows only: nothing is updated or deleted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base


class AppealRow(Base):
    __tablename__ = "appeals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), index=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id"))
    agent_id: Mapped[str] = mapped_column(String(200), index=True)
    filed_by: Mapped[str] = mapped_column(String(64))  # the agent key's id
    filed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    reason: Mapped[str] = mapped_column(Text)


class AppealEntryRow(Base):
    """One appealed deduction (rule, turn, start) of an item, or the whole item (rule None)."""

    __tablename__ = "appeal_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id"), index=True)
    call_id: Mapped[str] = mapped_column(String(200), index=True)
    item: Mapped[str] = mapped_column(String(100))
    rule: Mapped[str | None] = mapped_column(String(100))
    turn: Mapped[int | None] = mapped_column(Integer)
    start: Mapped[int | None] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer)
    # What was at stake when filed, as the score of record showed it (NULL in entries filed before: read from the
    # model's card): a reviewer's 漏扣 is on no model card.
    title: Mapped[str | None] = mapped_column(String(300))
    points: Mapped[float | None] = mapped_column(Float)


class RulingRow(Base):
    __tablename__ = "appeal_rulings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("appeal_entries.id"), unique=True)  # one ruling per entry
    decision: Mapped[str] = mapped_column(String(20))  # upheld | overturned
    comment: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_by_name: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    final: Mapped[bool] = mapped_column(Boolean)
    review_id: Mapped[int | None] = mapped_column(Integer)  # the correction an overturn saved
