"""The calibration aggregate's tables (校准): a lead's session — calls and reviewers — and each reviewer's blind
labels. Rows only, but for the session's close time and a reviewer's own label, which they may change until then."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base


class CalibrationRow(Base):
    __tablename__ = "calibration_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CalibrationMemberRow(Base):
    __tablename__ = "calibration_members"

    session_id: Mapped[int] = mapped_column(ForeignKey("calibration_sessions.id"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(64), primary_key=True)  # a reviewer key's id


class CalibrationCallRow(Base):
    __tablename__ = "calibration_calls"

    session_id: Mapped[int] = mapped_column(ForeignKey("calibration_sessions.id"), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), primary_key=True)


class CalibrationLabelRow(Base):
    __tablename__ = "calibration_labels"

    session_id: Mapped[int] = mapped_column(ForeignKey("calibration_sessions.id"), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(64), primary_key=True)
    head: Mapped[str] = mapped_column(String(100), primary_key=True)
    label: Mapped[str] = mapped_column(String(100))  # a class id
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
