"""The review queue: which calls a reviewer sees next (the policy's order, the random 抽检 share, the agents'
daily quota), searching the stored calls, and leases, so two reviewers never open the same call."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session

from callqa.analytics import DISPUTED_GAP
from callqa.schema import LabelSchema
from callqa.scores import CallScores, LevelScore

from .calls import CallRow, PredictionTopicRow
from .db import as_utc, utcnow
from .double import PENDING
from .errors import Leased
from .feedback import FeedbackRow
from .models import CallFilter, QueueItem, QueuePolicy, Reviewer
from .plan import SamplingPlan
from .plan_queue import plan_tier
from .reviews import ReviewRow


def queue_keys(scores: CallScores, schema: LabelSchema) -> tuple[float, float, float | None]:
    """(entropy, margin, low_score) of a call: the most uncertain head's entropy and the smallest margin, as each
    head's kind measures them (callqa.heads.HeadKind.uncertainty); low_score: the lowest ordinal expected score,
    scaled to 0..1 — None when the schema has no ordinal head."""
    entropies, margins, lows = [0.0], [1.0], []
    for name, score in scores.scores.items():
        if name not in schema.head_names:
            continue
        head = schema[name]
        entropy, margin = head.spec.uncertainty_of(score)
        entropies.append(entropy)
        margins.append(margin)
        if isinstance(score, LevelScore) and score.expected is not None:
            values = head.values
            span = float(values.max() - values.min()) or 1.0
            lows.append((score.expected - float(values.min())) / span)
    return max(entropies), min(margins), (min(lows) if lows else None)


# The total and red line a queue or search row shows — and what the search's score filters match: none while a 双评
# waits for its second, independent review (the columns hold the first reviewer's card of record, which a filter
# would otherwise give away to the second reviewer one bisection at a time).
SHOWN_TOTAL = case((CallRow.double_review == PENDING, None), else_=CallRow.total)
SHOWN_RED_LINE = case((CallRow.double_review == PENDING, None), else_=CallRow.red_line)
# What a queue or search row shows: the call's small columns and that total (never a transcript).
ITEM_COLUMNS = (CallRow.call_id, CallRow.agent_id, CallRow.started_at, CallRow.duration, CallRow.model, CallRow.turns,
                CallRow.sample_key, CallRow.entropy, CallRow.margin, CallRow.low_score, CallRow.lease_owner,
                CallRow.lease_until, CallRow.revision, SHOWN_TOTAL.label("total"), SHOWN_RED_LINE.label("red_line"),
                CallRow.double_review)


def lease_free_for(reviewer: str, now: datetime):
    """The calls ``reviewer`` may act on now: leased to no one, to them, or on a lease that has run out (the queue,
    a new lease and a saved review all ask this)."""
    return or_(CallRow.lease_owner.is_(None), CallRow.lease_owner == reviewer, CallRow.lease_until < now)


class ReviewQueue:
    """The queue half of :class:`ReviewStore` (an engine and a policy)."""

    engine: Engine
    policy: QueuePolicy
    plan: SamplingPlan | None

    def _available(self, session: Session, reviewer: str, now: datetime):
        """Unreviewed calls, and 双评 calls waiting for a second reviewer that ``reviewer`` has not reviewed, not
        leased to someone else, without agents whose daily quota is used up."""
        second = and_(CallRow.double_review == PENDING,
                      ~exists().where(ReviewRow.call_id == CallRow.call_id, ReviewRow.reviewer == reviewer))
        clauses = [or_(CallRow.revision == 0, second), lease_free_for(reviewer, now)]
        if self.policy.agent_daily_quota:
            # Today's reviewed calls by index, counted here: a GROUP BY agent_id lets SQLite's planner walk the
            # agent_id index over every call instead.
            midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
            today = Counter(session.scalars(select(CallRow.agent_id).where(CallRow.reviewed_at >= midnight)))
            full = [agent for agent, n in today.items() if agent is not None and n >= self.policy.agent_daily_quota]
            if full:
                clauses.append(or_(CallRow.agent_id.is_(None), CallRow.agent_id.not_in(full)))
        return and_(*clauses)

    def _order(self, session: Session, now: datetime) -> list:
        policy = self.policy
        sampled = (CallRow.sample_key < policy.sample_rate).desc()
        by = {"least_confident": CallRow.entropy.desc() if policy.confidence == "entropy" else CallRow.margin.asc(),
              "lowest_score": func.coalesce(CallRow.low_score, 2.0).asc(),
              "random": CallRow.sample_key.asc()}[policy.order]
        # Under a sampling plan, its tiers come first: flagged calls, then strata still short this period.
        tiers = [plan_tier(session, self.plan, now)] if self.plan is not None else []
        # A 双评 call's second review first: its first reviewer's work waits on it.
        second = case((CallRow.double_review == PENDING, 0), else_=1)
        return [second, *tiers, sampled, by, CallRow.call_id]

    def queue(self, reviewer: str, limit: int = 50) -> tuple[list[QueueItem], int]:
        """The next calls in queue order, and how many are waiting in all."""
        now = utcnow()
        with Session(self.engine) as session:
            where = self._available(session, reviewer, now)
            # Choose by the covering index, then read the chosen rows' columns (never a transcript).
            chosen = session.scalars(select(CallRow.call_id).where(where).order_by(*self._order(session, now))
                                     .limit(limit)).all()
            found = {r.call_id: r for r in session.execute(
                select(*ITEM_COLUMNS).where(CallRow.call_id.in_(chosen)))}
            rows = [found[call_id] for call_id in chosen]
            total = session.scalar(select(func.count()).select_from(CallRow).where(where))
        items = [self._item(r, reviewer, now) for r in rows]
        return items, int(total or 0)

    def search(self, found: CallFilter, reviewer: str, limit: int = 50) -> tuple[list[QueueItem], int]:
        """Calls matching the filter, newest first, and how many match in all (reviewed calls too, unless filtered)."""
        now = utcnow()
        where = []
        if found.agents is not None:
            where.append(CallRow.agent_id.in_(found.agents))
        if found.started_from is not None:
            where.append(CallRow.started_at >= found.started_from.astimezone(UTC))
        if found.started_before is not None:
            where.append(CallRow.started_at < found.started_before.astimezone(UTC))
        if found.reviewed is not None:
            where.append(CallRow.revision > 0 if found.reviewed else CallRow.revision == 0)
        if found.sampled is not None:
            where.append((CallRow.sample_key < self.policy.sample_rate) == found.sampled)
        if found.topic is not None:
            where.append(exists().where(PredictionTopicRow.prediction_id == CallRow.prediction_id, PredictionTopicRow.topic == found.topic))
        if found.disputed is not None:
            gap = func.abs(CallRow.satisfaction - (FeedbackRow.satisfaction - 1) / 4)  # analytics.survey_gap, in SQL
            disputed = exists().where(FeedbackRow.call_id == CallRow.call_id, gap >= DISPUTED_GAP)
            where.append(disputed if found.disputed else ~disputed)
        if found.double is not None:
            where.append(CallRow.double_review == found.double)
        if found.reviewed_by is not None:
            where.append(exists().where(ReviewRow.call_id == CallRow.call_id, ReviewRow.reviewer == found.reviewed_by))
        if found.score_min is not None:
            where.append(SHOWN_TOTAL >= found.score_min)
        if found.score_max is not None:
            where.append(SHOWN_TOTAL <= found.score_max)
        if found.red_line is not None:
            where.append(SHOWN_RED_LINE == found.red_line)
        query = select(*ITEM_COLUMNS).where(*where)
        with Session(self.engine) as session:
            rows = session.execute(query.order_by(CallRow.started_at.desc(), CallRow.call_id).limit(limit)).all()
            total = session.scalar(select(func.count()).select_from(query.subquery()))
        return [self._item(r, reviewer, now) for r in rows], int(total or 0)

    def _item(self, r, reviewer: str, now: datetime) -> QueueItem:
        return QueueItem(call_id=r.call_id, agent_id=r.agent_id, started_at=as_utc(r.started_at), duration=r.duration,
                         model=r.model, turns=r.turns, sampled=r.sample_key < self.policy.sample_rate,
                         entropy=r.entropy, margin=r.margin, low_score=r.low_score, revision=r.revision,
                         double=r.double_review, total=r.total, red_line=r.red_line,
                         leased_to_me=r.lease_owner == reviewer and r.lease_until is not None
                         and as_utc(r.lease_until) > now)

    def lease(self, call_id: str, reviewer: Reviewer) -> datetime:
        """Lease a call to a reviewer (renewing their own lease); :class:`Leased` if someone else holds it."""
        now = utcnow()
        until = now + timedelta(minutes=self.policy.lease_minutes)
        with Session(self.engine) as session, session.begin():
            # The conditional UPDATE is the first statement, so SQLite takes its write lock before reading anything.
            done = session.execute(
                update(CallRow).where(CallRow.call_id == call_id, lease_free_for(reviewer.id, now))
                .values(lease_owner=reviewer.id, lease_until=until)).rowcount
            if not done:
                self._why_not(session, call_id, reviewer, now)
        return until

    def release(self, call_id: str, reviewer: Reviewer) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(update(CallRow).where(CallRow.call_id == call_id, CallRow.lease_owner == reviewer.id)
                            .values(lease_owner=None, lease_until=None))

    def next_call(self, reviewer: Reviewer) -> str | None:
        """Lease the first call of the queue; None when the queue is empty. Retries when another reviewer takes
        the same call between reading the queue and leasing it."""
        for _ in range(20):
            items, _ = self.queue(reviewer.id, limit=1)
            if not items:
                return None
            try:
                self.lease(items[0].call_id, reviewer)
                return items[0].call_id
            except Leased:
                continue
        return None
