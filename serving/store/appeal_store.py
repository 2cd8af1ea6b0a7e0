"""Appeals (申诉): an agent disputes deductions of their call's scorecard, a QA lead rules, and an overturned deduction
becomes a correction — training data like any review (``reviews export`` writes it with meta.source = appeal).

- An agent (an ``agent`` key, bound to one agent id) appeals one or more deductions, or whole items, of the latest
  scorecard of one of *their own* calls, with a reason, within ``window_days`` of the call's scoring.
- A lead upholds or overturns each appealed entry with a comment. Overturned entries are saved as a review by the
  lead (the deduction marked 误判, or the whole item given its points), so the call's points change everywhere:
  the review UI, reports, the export.
- An upheld entry may be appealed once more; the ruling on that second appeal is final (终审), and a lead may make
  any ruling final. Nothing is updated or deleted: appeals, entries and rulings are rows with who and when.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from callqa.calls import Call, json_int
from callqa.pipeline import ScoredCall
from callqa.schema import LabelSchema
from callqa.scorecard import ScorecardResult

from .appeals import AppealEntryRow, AppealRow, RulingRow
from .calls import CallRow, PredictionRow, latest_prediction
from .db import as_utc, utcnow
from .errors import Conflict, Mismatch, NotFound, ReviewError
from .history import history_of
from .models import Reviewer
from .record import CharIndex, HitRef, ItemId, ScorecardReview, TurnIndex, score_of_record
from .review_store import ReviewStore

MAX_ROUNDS = 2  # a first appeal, and one more after it was upheld; the second ruling is final


class AppealTarget(BaseModel):
    """A deduction (item, rule, turn, start as the scorecard lists it), or a whole item (no rule)."""

    model_config = ConfigDict(extra="forbid")

    item: ItemId
    rule: ItemId | None = None
    turn: TurnIndex | None = None
    start: CharIndex | None = None


class AppealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: StrictStr = Field(min_length=1, max_length=2000, description="why the agent disputes the deductions")
    entries: list[AppealTarget] = Field(min_length=1, max_length=50)


class RulingInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry: json_int(ge=1, le=2**62)
    decision: Literal["upheld", "overturned"]
    comment: StrictStr = Field(default="", max_length=2000)


class RulingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rulings: list[RulingInput] = Field(min_length=1, max_length=50)
    final: StrictBool = Field(default=False, description="终审: no further appeal of these entries (always so in round 2)")


class Ruling(BaseModel):
    decision: str
    comment: str
    decided_by: str
    decided_by_name: str
    decided_at: datetime
    final: bool


class AppealEntry(AppealTarget):
    id: int
    round: int
    title: str = Field(description="the item's (and deduction's) title, as the scorecard names it")
    points: float = Field(description="points at stake: the deduction's, or the item's missing points")
    ruling: Ruling | None = None


class AppealRecord(BaseModel):
    id: int
    call_id: str
    agent_id: str
    filed_at: datetime
    reason: str
    entries: list[AppealEntry]

    @property
    def open(self) -> bool:
        return any(e.ruling is None for e in self.entries)


class AgentCall(BaseModel):
    """One of an agent's calls, as their appeal page lists it."""

    call_id: str
    started_at: datetime | None
    total: float | None
    max_total: float | None
    red_line: bool | None
    appealable_until: datetime | None = Field(description="null: no scorecard to appeal")
    appeals: int


class AgentCallView(BaseModel):
    call: Call
    scorecard: ScorecardResult | None
    appealable_until: datetime | None
    appeals: list[AppealRecord]


class Appeals:
    """The appeal flow over a :class:`ReviewStore`'s database."""

    def __init__(self, store: ReviewStore, schema: LabelSchema, window_days: float = 7.0):
        self.store, self.schema, self.window = store, schema, timedelta(days=window_days)

    # --- the agent's side ------------------------------------------------------------------------------------
    def _own(self, session: Session, call_id: str, agent_id: str) -> tuple[CallRow, PredictionRow]:
        row = session.get(CallRow, call_id)
        if row is None or row.agent_id != agent_id:
            raise NotFound("no such call of yours")  # another agent's call looks exactly like a missing one
        return row, latest_prediction(session, call_id)

    def my_calls(self, agent_id: str, limit: int = 100) -> list[AgentCall]:
        with Session(self.store.engine) as session:
            rows = session.execute(
                select(CallRow.call_id, CallRow.started_at, CallRow.total, CallRow.max_total, CallRow.red_line,
                       PredictionRow.created)
                .join(PredictionRow, PredictionRow.id == CallRow.prediction_id)
                .where(CallRow.agent_id == agent_id)
                .order_by(CallRow.started_at.desc(), CallRow.call_id).limit(limit)).all()
            counts = dict(session.execute(select(AppealRow.call_id, func.count()).where(AppealRow.agent_id == agent_id)
                                          .group_by(AppealRow.call_id)).all())
        return [AgentCall(call_id=r.call_id, started_at=as_utc(r.started_at), total=r.total, max_total=r.max_total,
                          red_line=r.red_line, appealable_until=as_utc(r.created) + self.window if r.total is not None else None,
                          appeals=counts.get(r.call_id, 0)) for r in rows]

    def my_call(self, call_id: str, agent_id: str) -> AgentCallView:
        with Session(self.store.engine) as session:
            row, prediction = self._own(session, call_id, agent_id)
            appeals = self._records(session, call_id)
            card = _record(session, call_id, prediction)  # as every other screen shows it
        return AgentCallView(call=Call.model_validate(row.call), scorecard=card, appeals=appeals,
                             appealable_until=as_utc(prediction.created) + self.window if card else None)

    def file(self, call_id: str, agent: Reviewer, agent_id: str, request: AppealRequest) -> AppealRecord:
        now = utcnow()
        with Session(self.store.engine) as session, session.begin():
            _write_first(session, call_id)
            _, prediction = self._own(session, call_id, agent_id)
            card = _record(session, call_id, prediction)  # what the agent sees: the score of record
            if card is None:
                raise Conflict(f"call {call_id} has no scorecard to appeal")
            if now > as_utc(prediction.created) + self.window:
                raise Conflict(f"the appeal window of call {call_id} closed at "
                                  f"{as_utc(prediction.created) + self.window:%Y-%m-%d %H:%M} UTC")
            previous = self._entries(session, call_id)
            rounds, stakes = [], []
            for n, target in enumerate(request.entries):
                before = [e for e in previous if _same(e, target)]
                if any(e.ruling is None for e in before):
                    raise Conflict(f"entries.{n}: already appealed, waiting for a ruling")
                if any(e.ruling.decision == "overturned" for e in before):
                    raise Conflict(f"entries.{n}: already overturned")
                if any(e.ruling.final for e in before) or len(before) >= MAX_ROUNDS:
                    raise Conflict(f"entries.{n}: the ruling is final (终审)")
                stakes.append(_stake(card, target, f"entries.{n}"))
                rounds.append(len(before) + 1)
            if len({(t.item, t.rule, t.turn, t.start) for t in request.entries}) < len(request.entries):
                raise ReviewError("entries: the same deduction twice")  # a body the spec cannot forbid: 400
            appeal = AppealRow(call_id=call_id, prediction_id=prediction.id, agent_id=agent_id, filed_by=agent.id,
                               filed_at=now, reason=request.reason)
            session.add(appeal)
            session.flush()
            session.add_all(AppealEntryRow(appeal_id=appeal.id, call_id=call_id, item=t.item, rule=t.rule, turn=t.turn,
                                           start=t.start, round=r, title=title, points=points)
                            for t, r, (title, points) in zip(request.entries, rounds, stakes))
            session.flush()
            return next(a for a in self._records(session, call_id) if a.id == appeal.id)

    # --- the lead's side -------------------------------------------------------------------------------------
    def list(self, open_only: bool = True, limit: int = 100) -> list[AppealRecord]:
        with Session(self.store.engine) as session:
            call_ids = session.scalars(select(AppealRow.call_id).distinct()).all()
            records = [a for c in call_ids for a in self._records(session, c)]
        records = [a for a in records if a.open] if open_only else records
        return sorted(records, key=lambda a: a.filed_at)[:limit]

    def rule(self, appeal_id: int, lead: Reviewer, request: RulingRequest) -> AppealRecord:
        now = utcnow()
        with Session(self.store.engine) as session, session.begin():
            appeal = session.get(AppealRow, appeal_id)
            if appeal is None:
                raise NotFound(f"no appeal {appeal_id}")
            _write_first(session, appeal.call_id)
            record = next(a for a in self._records(session, appeal.call_id) if a.id == appeal_id)
            entries = {e.id: e for e in record.entries}
            for n, r in enumerate(request.rulings):
                if r.entry not in entries:  # another appeal's entry, or none at all
                    raise NotFound(f"rulings.{n}.entry: appeal {appeal_id} has no entry {r.entry}")
                if entries[r.entry].ruling is not None:
                    raise Conflict(f"rulings.{n}.entry: entry {r.entry} was ruled on already")
            overturned = [entries[r.entry] for r in request.rulings if r.decision == "overturned"]
            review_id = None
            if overturned:
                review_id = self._correct(session, appeal, overturned, lead)
            session.add_all(RulingRow(entry_id=r.entry, decision=r.decision, comment=r.comment, decided_by=lead.id,
                                      decided_by_name=lead.name, decided_at=now,
                                      final=request.final or entries[r.entry].round >= MAX_ROUNDS,
                                      review_id=review_id if r.decision == "overturned" else None)
                            for r in request.rulings)
            session.flush()
            return next(a for a in self._records(session, appeal.call_id) if a.id == appeal_id)

    def _correct(self, session: Session, appeal: AppealRow, overturned: list[AppealEntry], lead: Reviewer) -> int:
        """Save the overturns as the lead's review of the appealed prediction (a deduction marked 误判, or a whole
        item given its full points), in the ruling's transaction: both are saved, or neither."""
        items = _record(session, appeal.call_id, session.get(PredictionRow, appeal.prediction_id)).items()
        # A whole item overturned gets its points back and loses its deductions — the rules' and a reviewer's 漏扣 —
        # and a red-line item its red line with them.
        whole = [items[e.item] for e in overturned if e.rule is None]
        verdict = ScorecardReview(
            false_hits=[HitRef(item=e.item, rule=e.rule, turn=e.turn, start=e.start) for e in overturned if e.rule]
            + [HitRef(item=i.id, rule=d.rule, turn=d.turn, start=d.start) for i in whole for d in i.deductions],
            points={i.id: i.max_points for i in whole})
        row = session.get(CallRow, appeal.call_id)
        if latest_prediction(session, appeal.call_id).id != appeal.prediction_id:
            raise Conflict(f"call {appeal.call_id} was scored again since the appeal; the agent should appeal the "
                           f"new scorecard")
        record = self.store.save_review(session, appeal.call_id, lead, row.revision, {}, self.schema, scorecard=verdict,
                                        comment=f"申诉 #{appeal.id} 改判", source="appeal")
        return record.id

    # --- reading ---------------------------------------------------------------------------------------------
    def _entries(self, session: Session, call_id: str) -> list[AppealEntry]:
        return [e for a in self._records(session, call_id) for e in a.entries]

    def _records(self, session: Session, call_id: str) -> list[AppealRecord]:
        appeals = session.scalars(select(AppealRow).where(AppealRow.call_id == call_id).order_by(AppealRow.id)).all()
        rows = session.execute(select(AppealEntryRow, RulingRow).outerjoin(RulingRow, RulingRow.entry_id == AppealEntryRow.id)
                               .where(AppealEntryRow.call_id == call_id).order_by(AppealEntryRow.id)).all()
        cards = {a.prediction_id: ScoredCall.model_validate(session.get(PredictionRow, a.prediction_id).scores).scorecard
                 for a in appeals}
        out = []
        for a in appeals:
            entries = []
            for e, r in rows:
                if e.appeal_id != a.id:
                    continue
                target = AppealTarget(item=e.item, rule=e.rule, turn=e.turn, start=e.start)
                title, points = (e.title, e.points) if e.title is not None else \
                    _stake(cards[a.prediction_id], target, "entry")
                ruling = None if r is None else Ruling(decision=r.decision, comment=r.comment, decided_by=r.decided_by,
                                                       decided_by_name=r.decided_by_name, decided_at=as_utc(r.decided_at),
                                                       final=r.final)
                entries.append(AppealEntry(id=e.id, round=e.round, title=title, points=points, ruling=ruling,
                                           **target.model_dump()))
            out.append(AppealRecord(id=a.id, call_id=a.call_id, agent_id=a.agent_id, filed_at=as_utc(a.filed_at),
                                    reason=a.reason, entries=entries))
        return out


def _record(session: Session, call_id: str, prediction: PredictionRow) -> ScorecardResult | None:
    """The prediction's scorecard as the call's reviews and rulings leave it (the score of record)."""
    return score_of_record(ScoredCall.model_validate(prediction.scores).scorecard, history_of(session, call_id))


def _write_first(session: Session, call_id: str) -> None:
    """A no-op write as a transaction's first statement: SQLite then takes its write lock before anything is read, so
    a concurrent save cannot make what this transaction read stale (the review store's conditional UPDATE does the
    same)."""
    session.execute(update(CallRow).where(CallRow.call_id == call_id).values(turns=CallRow.turns))


def _same(entry: AppealEntry, target: AppealTarget) -> bool:
    return (entry.item, entry.rule, entry.turn, entry.start) == (target.item, target.rule, target.turn, target.start)


def _stake(card: ScorecardResult, target: AppealTarget, field: str) -> tuple[str, float]:
    """(title, points at stake) of an appealed deduction or item; :class:`Mismatch` (409) naming ``field`` where the
    call's scorecard has none."""
    item = card.items().get(target.item)
    if item is None:
        raise Mismatch(f"{field}.item: the scorecard has no item {target.item!r}")
    if target.rule is None:
        if item.points >= item.max_points:
            raise Mismatch(f"{field}: item {target.item!r} lost no points")
        return item.title, item.max_points - item.points
    for d in item.deductions:
        if (d.rule, d.turn, d.start) == (target.rule, target.turn, target.start):
            return f"{item.title}：{d.title}", d.points
    raise Mismatch(f"{field}: item {target.item!r} has no such deduction (rule {target.rule}, turn {target.turn})")
