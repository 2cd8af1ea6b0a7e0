"""The coaching aggregate's table (辅导与表扬): a reviewed call sent to its agent with a reviewer's comment — a
correction to learn from, or praise for an excellent call — and when the agent read it (已阅). Rows only, but for the
one acknowledgement an agent adds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base


class CoachingRow(Base):
    __tablename__ = "coaching"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("review_calls.call_id"), index=True)
    agent_id: Mapped[str] = mapped_column(String(200), index=True)
    sent_by: Mapped[str] = mapped_column(String(64))  # the reviewer key's id
    sent_by_name: Mapped[str] = mapped_column(String(200))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    comment: Mapped[str] = mapped_column(Text)
    praise: Mapped[bool] = mapped_column(Boolean)  # 表扬 (else 辅导: something to improve)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
