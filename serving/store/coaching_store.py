"""辅导与表扬 in and out of the store: a reviewer sends a reviewed call to its agent with a comment (praise or a
point to improve); the agent lists theirs and marks each read (已阅) — or appeals the call, as any agent may; the
report counts notes sent and read per agent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from .calls import CallRow
from .coaching import CoachingRow
from .db import as_utc, utcnow
from .errors import Conflict, NotFound
from .models import Reviewer


class CoachingRequest(BaseModel):
    """POST /api/reviews/calls/{call_id}/coaching."""

    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, Field(min_length=1, max_length=2000)] = Field(description="what the agent should read")
    praise: StrictBool = Field(default=False, description="表扬 (an example to follow), else 辅导 (to improve)")


class CoachingNote(BaseModel):
    id: int
    call_id: str
    agent_id: str
    sent_by: str = Field(description="the reviewer's name")
    sent_at: datetime
    comment: str
    praise: bool
    acknowledged_at: datetime | None


class CoachingNotes(BaseModel):
    notes: list[CoachingNote]


def _note(row: CoachingRow) -> CoachingNote:
    return CoachingNote(id=row.id, call_id=row.call_id, agent_id=row.agent_id, sent_by=row.sent_by_name or row.sent_by,
                        sent_at=as_utc(row.sent_at), comment=row.comment, praise=row.praise,
                        acknowledged_at=as_utc(row.acknowledged_at) if row.acknowledged_at else None)


class Coaching:
    """The store's coaching API."""

    def __init__(self, engine):
        self.engine = engine

    def send(self, call_id: str, reviewer: Reviewer, request: CoachingRequest) -> CoachingNote:
        with Session(self.engine) as session, session.begin():
            call = session.get(CallRow, call_id)
            if call is None:
                raise NotFound(f"no call {call_id}")
            if not call.revision:
                raise Conflict(f"call {call_id} is not reviewed yet: review it, then send it to its agent")
            if not call.agent_id:
                raise Conflict(f"call {call_id} names no agent to send it to")
            row = CoachingRow(call_id=call_id, agent_id=call.agent_id, sent_by=reviewer.id, sent_by_name=reviewer.name,
                              sent_at=utcnow(), comment=request.comment, praise=request.praise)
            session.add(row)
            session.flush()
            return _note(row)

    def mine(self, agent_id: str) -> list[CoachingNote]:
        """An agent's notes, unread first, newest first."""
        with Session(self.engine) as session:
            rows = session.scalars(select(CoachingRow).where(CoachingRow.agent_id == agent_id)
                                   .order_by(CoachingRow.acknowledged_at.is_not(None), CoachingRow.id.desc()))
            return [_note(r) for r in rows]

    def acknowledge(self, note_id: int, agent_id: str) -> CoachingNote:
        """已阅: the agent read the note (404 for another agent's, as for a missing one); reading twice keeps the first
        time."""
        with Session(self.engine) as session, session.begin():
            row = session.get(CoachingRow, note_id)
            if row is None or row.agent_id != agent_id:
                raise NotFound(f"no coaching note {note_id}")
            session.execute(update(CoachingRow).where(CoachingRow.id == note_id, CoachingRow.acknowledged_at.is_(None))
                            .values(acknowledged_at=utcnow()))
            session.refresh(row)
            return _note(row)

    def counts(self, start: datetime, end: datetime, agents: list[str] | None) -> dict[str, tuple[int, int, int]]:
        """Per agent, of the notes on calls started in ``[start, end)``: (sent, read, praise)."""
        where = [CallRow.started_at >= start, CallRow.started_at < end]
        if agents is not None:
            where.append(CoachingRow.agent_id.in_(agents))
        query = (select(CoachingRow.agent_id, func.count(), func.count(CoachingRow.acknowledged_at),
                        func.sum(case((CoachingRow.praise.is_(True), 1), else_=0)))
                 .join(CallRow, CallRow.call_id == CoachingRow.call_id).where(and_(*where))
                 .group_by(CoachingRow.agent_id))
        with Session(self.engine) as session:
            return {agent: (int(sent), int(read), int(praise or 0)) for agent, sent, read, praise in session.execute(query)}
