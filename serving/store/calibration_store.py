"""Calibration sessions (校准) in and out of the store: a lead picks calls and reviewers; each reviewer labels the calls
blind (the transcript only: no model scores, no one else's labels) until the lead closes the session; then everyone in
it sees the votes, the consensus, each reviewer's deviation and Krippendorff's α (serving.consensus)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from callqa.calls import Call, Identifier, Turn, Votes
from callqa.schema import LabelSchema

from .calibration import CalibrationCallRow, CalibrationLabelRow, CalibrationMemberRow, CalibrationRow
from .calls import CallRow
from .db import as_utc, utcnow
from .errors import Conflict, Mismatch, NotFound
from .models import Reviewer

KeyId = Annotated[str, Field(min_length=1, max_length=64)]


class SessionRequest(BaseModel):
    """POST /api/calibration (a lead)."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, Field(min_length=1, max_length=200)]
    calls: list[Identifier] = Field(min_length=1, max_length=200)
    reviewers: list[KeyId] = Field(min_length=2, max_length=50, description="reviewer key ids (callqa keys list)")


class LabelsRequest(BaseModel):
    """POST /api/calibration/{session_id}/calls/{call_id}: my labels of one call, head → class id."""

    model_config = ConfigDict(extra="forbid")

    labels: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=50)


class BlindCall(BaseModel):
    call_id: str
    turns: list[Turn]
    mine: dict[str, str] = Field(description="my labels so far")


class SessionSummary(BaseModel):
    id: int
    title: str
    created_at: datetime
    closed_at: datetime | None
    calls: int
    reviewers: list[str]
    labelled: int = Field(description="calls I labelled (every head)")
    alpha: dict[str, float | None] = Field(default={}, description="head → Krippendorff's α, once closed")


class Calibrations:
    """The store's calibration API; ``schema`` names the heads reviewers label (one class each)."""

    def __init__(self, engine, schema: LabelSchema | None):
        self.engine, self.schema = engine, schema  # no schema: reading and exporting only (no heads to label)
        self.heads = [h for h in schema.heads if not h.spec.multiple] if schema is not None else []

    def create(self, lead: Reviewer, request: SessionRequest) -> SessionSummary:
        with Session(self.engine) as session, session.begin():
            missing = [c for c in request.calls if session.get(CallRow, c) is None]
            if missing:
                raise NotFound(f"no call {missing[0]}")
            row = CalibrationRow(title=request.title, created_by=lead.id, created_at=utcnow())
            session.add(row)
            session.flush()
            session.add_all(CalibrationCallRow(session_id=row.id, call_id=c) for c in dict.fromkeys(request.calls))
            session.add_all(CalibrationMemberRow(session_id=row.id, reviewer=r) for r in dict.fromkeys(request.reviewers))
            created = row.id
        return self.summary(created, lead.id)

    def _session(self, session: Session, session_id: int, reviewer: str, lead: bool) -> CalibrationRow:
        row = session.get(CalibrationRow, session_id)
        members = set(session.scalars(select(CalibrationMemberRow.reviewer).where(CalibrationMemberRow.session_id == session_id)))
        if row is None or not (lead or reviewer in members):
            raise NotFound(f"no calibration session {session_id}")
        return row

    def summary(self, session_id: int, reviewer: str, lead: bool = True) -> SessionSummary:
        with Session(self.engine) as session:
            row = self._session(session, session_id, reviewer, lead)
            calls = session.scalars(select(CalibrationCallRow.call_id).where(CalibrationCallRow.session_id == row.id)).all()
            members = session.scalars(select(CalibrationMemberRow.reviewer).where(CalibrationMemberRow.session_id == row.id)).all()
            labels = self._labels(session, row.id)
        done = sum(1 for c in calls if all(h.name in labels.get(c, {}).get(reviewer, {}) for h in self.heads))
        alpha = {r.head: r.alpha for r in self.results(row.id, labels)} if row.closed_at else {}
        return SessionSummary(id=row.id, title=row.title, created_at=as_utc(row.created_at),
                              closed_at=as_utc(row.closed_at) if row.closed_at else None, calls=len(calls),
                              reviewers=sorted(members), labelled=done, alpha=alpha)

    def sessions(self, reviewer: str, lead: bool) -> list[SessionSummary]:
        """The sessions a reviewer is in (a lead: all), newest first."""
        with Session(self.engine) as session:
            query = select(CalibrationRow.id).order_by(CalibrationRow.id.desc())
            if not lead:
                query = query.join(CalibrationMemberRow, CalibrationMemberRow.session_id == CalibrationRow.id).where(
                    CalibrationMemberRow.reviewer == reviewer)
            ids = session.scalars(query).all()
        return [self.summary(i, reviewer, lead) for i in ids]

    def calls(self, session_id: int, reviewer: str, lead: bool) -> list[BlindCall]:
        """The session's calls as a member labels them: transcript and their own labels, nothing else."""
        with Session(self.engine) as session:
            row = self._session(session, session_id, reviewer, lead)
            ids = session.scalars(select(CalibrationCallRow.call_id).where(CalibrationCallRow.session_id == row.id)
                                  .order_by(CalibrationCallRow.call_id)).all()
            labels = self._labels(session, row.id)
            return [BlindCall(call_id=c, turns=Call.model_validate(session.get(CallRow, c).call).turns,
                              mine=labels.get(c, {}).get(reviewer, {})) for c in ids]

    def label(self, session_id: int, call_id: str, reviewer: str, request: LabelsRequest) -> None:
        with Session(self.engine) as session, session.begin():
            row = self._session(session, session_id, reviewer, lead=False)
            if row.closed_at is not None:
                raise Conflict(f"calibration session {session_id} is closed")
            if session.get(CalibrationCallRow, (session_id, call_id)) is None:
                raise NotFound(f"call {call_id} is not in calibration session {session_id}")
            by_name = {h.name: h for h in self.heads}
            bad = [f"labels.{k}: not a head to calibrate ({', '.join(by_name)})" for k in request.labels if k not in by_name]
            bad += [f"labels.{k}: {v!r} is not a class of {k}" for k, v in request.labels.items()
                    if k in by_name and v not in by_name[k].classes]
            if bad:
                raise Mismatch("; ".join(bad))
            for head, value in request.labels.items():
                session.execute(delete(CalibrationLabelRow).where(
                    CalibrationLabelRow.session_id == session_id, CalibrationLabelRow.call_id == call_id,
                    CalibrationLabelRow.reviewer == reviewer, CalibrationLabelRow.head == head))
                session.add(CalibrationLabelRow(session_id=session_id, call_id=call_id, reviewer=reviewer, head=head,
                                                label=value, scored_at=utcnow()))

    def close(self, session_id: int, lead: Reviewer) -> SessionSummary:
        with Session(self.engine) as session, session.begin():
            row = self._session(session, session_id, lead.id, lead=True)
            if row.closed_at is None:
                row.closed_at = utcnow()
        return self.summary(session_id, lead.id)

    def results(self, session_id: int, labels: dict | None = None) -> list:
        """Per head, :func:`serving.consensus.calibrate` over the session's labels (heads nobody labelled left out)."""
        from ..consensus import calibrate

        if labels is None:
            with Session(self.engine) as session:
                labels = self._labels(session, session_id)
        out = []
        for head in self.heads:
            per_call = {c: {r: heads[head.name] for r, heads in by.items() if head.name in heads} for c, by in labels.items()}
            per_call = {c: by for c, by in per_call.items() if by}
            if per_call:
                out.append(calibrate(head, per_call))
        return out

    def closed_results(self, session_id: int, reviewer: str, lead: bool) -> list:
        """The results, for a member or a lead, once the session is closed (blind until then: 409)."""
        with Session(self.engine) as session:
            row = self._session(session, session_id, reviewer, lead)
            if row.closed_at is None:
                raise Conflict(f"calibration session {session_id} is still open: results show when the lead closes it")
        return self.results(session_id)

    def closed_between(self, start: datetime, end: datetime) -> list[SessionSummary]:
        """Sessions closed in ``[start, end)``, oldest first: the report's α over time."""
        with Session(self.engine) as session:
            ids = session.scalars(select(CalibrationRow.id).where(CalibrationRow.closed_at >= start,
                                                                  CalibrationRow.closed_at < end)
                                  .order_by(CalibrationRow.closed_at)).all()
        return [self.summary(i, "", lead=True) for i in ids]

    def consensus_calls(self) -> Iterator[Call]:
        """Every call of a closed session with its reviewers' labels as votes per head (meta.source = calibration):
        training data whose targets are the reviewers' spread, as STC-3's annotators' are."""
        with Session(self.engine) as session:
            closed = session.scalars(select(CalibrationRow.id).where(CalibrationRow.closed_at.is_not(None))
                                     .order_by(CalibrationRow.id)).all()
            for session_id in closed:
                for call_id, by_reviewer in sorted(self._labels(session, session_id).items()):
                    votes: dict[str, dict[str, int]] = {}
                    for heads in by_reviewer.values():
                        for head, label in heads.items():
                            votes.setdefault(head, {}).setdefault(label, 0)
                            votes[head][label] += 1
                    call = Call.model_validate(session.get(CallRow, call_id).call)
                    yield call.model_copy(update={"labels": {h: Votes(votes=v) for h, v in votes.items()},
                                                  "meta": {**call.meta, "source": "calibration", "session": session_id,
                                                           "reviewers": len(by_reviewer)}})

    @staticmethod
    def _labels(session: Session, session_id: int) -> dict[str, dict[str, dict[str, str]]]:
        """call id → reviewer → head → class id."""
        out: dict[str, dict[str, dict[str, str]]] = {}
        for r in session.scalars(select(CalibrationLabelRow).where(CalibrationLabelRow.session_id == session_id)):
            out.setdefault(r.call_id, {}).setdefault(r.reviewer, {})[r.head] = r.label
        return out
