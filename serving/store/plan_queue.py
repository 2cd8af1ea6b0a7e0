"""The queue's side of a sampling plan: which tier each waiting call falls in now — 0 flagged by the model, 1 an agent
still short of their reviews this period, 2 a category still short, 3 a time slot still short, 4 the rest — from the
period's reviews so far (:meth:`SamplingPlan.coverage`, the same count the report's 抽样覆盖 shows)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, exists, extract, false, or_, select
from sqlalchemy.orm import Session

from .calls import CallRow, PredictionTopicRow
from .plan import HOLIDAY, PlannedCall, SamplingPlan
from .reviews import ReviewedTopicRow

FLAGGED, AGENT, CATEGORY, SLOT, REST = range(5)


def period_bounds(plan: SamplingPlan, now: datetime) -> tuple[datetime, datetime]:
    """The plan's current period (month or ISO week, in its time zone) as UTC bounds."""
    local = now.astimezone(plan.tz)
    if plan.period == "week":
        start = datetime.combine(local.date() - timedelta(days=local.weekday()), datetime.min.time(), tzinfo=plan.tz)
        end = start + timedelta(days=7)
    else:
        start = datetime(local.year, local.month, 1, tzinfo=plan.tz)
        end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=plan.tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def reviewed_calls(session: Session, plan: SamplingPlan, start: datetime, end: datetime) -> list[PlannedCall]:
    """The period's reviewed calls with what the plan stratifies them by."""
    in_period = and_(CallRow.started_at >= start, CallRow.started_at < end, CallRow.revision > 0)
    counted: dict[str, list[tuple[str, str]]] = {}
    if plan.category_head:
        for call_id, head, label in session.execute(
                select(ReviewedTopicRow.call_id, ReviewedTopicRow.head, ReviewedTopicRow.topic)
                .join(CallRow, CallRow.call_id == ReviewedTopicRow.call_id)
                .where(in_period, ReviewedTopicRow.head == plan.category_head)):
            counted.setdefault(call_id, []).append((head, label))
    rows = session.execute(select(CallRow.call_id, CallRow.agent_id, CallRow.started_at).where(in_period))
    return [PlannedCall(agent, started, tuple(counted.get(call_id, ())), True) for call_id, agent, started in rows]


def plan_tier(session: Session, plan: SamplingPlan, now: datetime) -> ColumnElement:
    """A SQL expression giving each call its tier under ``plan`` now (lower first)."""
    start, end = period_bounds(plan, now)
    covered = {(s.kind, s.value) for s in plan.coverage(reviewed_calls(session, plan, start, end))
               if s.reviewed >= s.minimum}
    in_period = and_(CallRow.started_at >= start, CallRow.started_at < end)
    whens = [(_flagged(plan), FLAGGED)]
    if plan.per_agent:
        done = [value for kind, value in covered if kind == "agent"]
        whens.append((and_(in_period, CallRow.agent_id.is_not(None), CallRow.agent_id.not_in(done)), AGENT))
    if plan.per_category:
        done = [value for kind, value in covered if kind == "business"]
        short = exists().where(PredictionTopicRow.prediction_id == CallRow.prediction_id,
                               PredictionTopicRow.head == plan.category_head, PredictionTopicRow.topic.not_in(done))
        whens.append((and_(in_period, short), CATEGORY))
    if plan.per_slot:
        slots = [name for name in [*plan.slots, HOLIDAY] if ("slot", name) not in covered]
        whens.append((and_(in_period, or_(false(), *(_in_slot(plan, name, now) for name in slots))), SLOT))
    return case(*whens, else_=REST)


def _flagged(plan: SamplingPlan) -> ColumnElement:
    flags = plan.flags
    clauses = []
    if flags.red_line:
        clauses.append(CallRow.red_line.is_(True))
    if flags.lowest_share is not None:
        clauses.append(and_(CallRow.total.is_not(None), CallRow.total <= flags.lowest_share * CallRow.max_total))
    if flags.disagreement is not None:
        clauses.append(CallRow.entropy >= flags.disagreement)
    return or_(false(), *clauses)


def _in_slot(plan: SamplingPlan, name: str, now: datetime) -> ColumnElement:
    """Calls in the slot: by the hour of their start in the plan's zone (its offset now: whole-hour zones such as
    China's, which keeps no daylight saving), or on one of the plan's holidays."""
    holidays = or_(false(), *(_on_day(plan, day) for day in plan.holidays))
    if name == HOLIDAY:
        return holidays
    offset = int(now.astimezone(plan.tz).utcoffset().total_seconds() // 3600)
    hour = (extract("hour", CallRow.started_at) + 24 + offset) % 24
    start, end = plan.slots[name]
    within = and_(hour >= start, hour < end) if start < end else or_(hour >= start, hour < end)
    return and_(within, ~holidays)


def _on_day(plan: SamplingPlan, day: date) -> ColumnElement:
    start = datetime.combine(day, datetime.min.time(), tzinfo=plan.tz).astimezone(UTC)
    return and_(CallRow.started_at >= start, CallRow.started_at < start + timedelta(days=1))
