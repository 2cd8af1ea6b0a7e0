"""The customer-feedback aggregate's table: one survey answer (服务评价, 满意度回访, 短信/IVR 评价, 在线问卷) about one
call, its rating as the survey wrote it and on the 1–5 satisfaction scale, and the customer's comment, redacted.
Rows only: an answer is never updated (a second answer about a call is a row of its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_call", "call_id", "answered"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(200))  # the call may be stored later: no foreign key
    answered: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when the customer answered
    channel: Mapped[str] = mapped_column(String(20))  # 回访 / 短信 / IVR / 在线
    rating: Mapped[str] = mapped_column(String(50))  # as the survey wrote it (非常满意, 9, ★★★★)
    satisfaction: Mapped[float] = mapped_column(Float)  # 1 (very dissatisfied) … 5 (very satisfied)
    comment: Mapped[str] = mapped_column(Text)  # redacted: no phone, ID or card numbers
    source: Mapped[str] = mapped_column(String(20))  # import (a survey file) or api
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True))
