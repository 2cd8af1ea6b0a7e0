"""What reports read from the store: one period's calls aggregated in SQL (sums and counts per agent, item, rule and
topic, on the ``started_at`` index), the worst calls, example predictions and appeal counts. Unreviewed calls count
with their latest prediction's card; reviewed calls with the rows the store rewrites with each review (their score
of record). Each method opens its own read-only session."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from callqa.scorecard import ScorecardResult

from .appeals import AppealEntryRow, AppealRow, RulingRow
from .calls import CallRow, DeductionCountRow, PredictionRow, PredictionTopicRow, ScorecardItemRow
from .double import DoubleCounts
from .plan import PlannedCall
from .reviews import ReviewedDeductionCountRow, ReviewedItemRow, ReviewedTopicRow


@dataclass
class Sums:
    """Running sums of one agent's calls (or of all agents', :func:`all_agents`)."""

    calls: int = 0
    total: float = 0.0
    red_lines: int = 0
    reviewed: int = 0

    def add(self, calls: int, total: float, red_lines: int, reviewed: int = 0) -> None:
        self.calls += calls
        self.total += total
        self.red_lines += red_lines
        self.reviewed += reviewed

    @property
    def average(self) -> float | None:
        return self.total / self.calls if self.calls else None


def all_agents(sums: dict[str, Sums]) -> Sums:
    """One period's sums over every agent."""
    out = Sums()
    for s in sums.values():
        out.add(s.calls, s.total, s.red_lines, s.reviewed)
    return out


@dataclass
class ItemSums:
    calls: int = 0
    points: float = 0.0
    deducted_calls: int = 0
    deductions: int = 0

    def add(self, calls: int, points: float, deducted_calls: int, deductions: int) -> None:
        self.calls += calls
        self.points += points
        self.deducted_calls += deducted_calls
        self.deductions += deductions

    @property
    def average(self) -> float | None:
        return self.points / self.calls if self.calls else None


@dataclass
class ItemInfo:
    title: str
    section: str
    max_points: float
    rules: dict[str, str] = field(default_factory=dict)  # rule id → the deduction's title


@dataclass(frozen=True)
class WorstCall:
    call_id: str
    agent_id: str | None
    started_at: datetime | None
    total: float
    red_line: bool | None


@dataclass(frozen=True)
class CallFigures:
    call_id: str
    started_at: datetime | None
    chat: bool | None
    duration: float | None
    talk_seconds: float | None
    silence_seconds: float | None
    interruptions: int | None
    transfers: int | None
    repeat_call: bool | None
    first_response: float | None
    avg_response: float | None
    resolved: bool | None


@dataclass(frozen=True)
class AppealCounts:
    item: str
    rule: str | None
    rule_title: str
    filed: int
    ruled: int
    overturned: int


def card_of(scores) -> ScorecardResult | None:
    """The scorecard of a stored prediction's scores (JSON text on some drivers)."""
    if isinstance(scores, str):
        scores = json.loads(scores)
    card = scores.get("scorecard")
    return ScorecardResult.model_validate(card) if card else None


def by_period(query):
    """The query reading review_calls through its period index. SQLite without ANALYZE statistics would otherwise
    pick the queue's index for ``revision = 0`` and read every unreviewed call's row: 10× slower at 1M calls."""
    return query.with_hint(CallRow, "INDEXED BY ix_review_calls_report", dialect_name="sqlite")


class ReportRows:
    """One period's rows: calls started in ``[start, end)`` (UTC) of ``agents`` (None: every agent)."""

    def __init__(self, engine: Engine, start: datetime, end: datetime, agents: list[str] | None):
        self.engine, self.start, self.end, self.agents = engine, start, end, agents

    def _in_period(self):
        where = [CallRow.started_at >= self.start, CallRow.started_at < self.end]
        if self.agents is not None:
            where.append(CallRow.agent_id.in_(self.agents))
        return and_(*where)

    def _all(self, query) -> list:
        with Session(self.engine) as session:
            return session.execute(by_period(query)).all()

    def agent_sums(self) -> dict[str, Sums]:
        """Per agent: calls, sum of totals, red lines, reviewed calls — the model's scorecards for unreviewed calls,
        the reviewed scorecards for the others (the store keeps both on the call row)."""
        out: dict[str, Sums] = defaultdict(Sums)
        # The call row holds what counts (the model's card, or the reviewed one): a scan of the report index.
        query = (select(CallRow.agent_id, func.count(), func.sum(CallRow.total),
                        func.sum(case((CallRow.red_line, 1), else_=0)), func.sum(case((CallRow.revision > 0, 1), else_=0)))
                 .where(self._in_period(), CallRow.total.is_not(None)).group_by(CallRow.agent_id))
        for agent, calls, total, red, reviewed in self._all(query):
            out[agent or ""].add(calls, float(total or 0.0), int(red or 0), int(reviewed or 0))
        return out

    def item_sums(self) -> dict[tuple[str, str], ItemSums]:
        """(agent, item) → sums over the period's calls (reviewed calls: the reviewer's points and kept deductions)."""
        out: dict[tuple[str, str], ItemSums] = defaultdict(ItemSums)
        for rows, reviewed in ((ScorecardItemRow, False), (ReviewedItemRow, True)):
            join = (rows.call_id == CallRow.call_id) if reviewed else (rows.prediction_id == CallRow.prediction_id)
            query = (select(CallRow.agent_id, rows.item, func.count(), func.sum(rows.points),
                            func.sum(case((rows.deductions > 0, 1), else_=0)), func.sum(rows.deductions))
                     .join(rows, join)
                     .where(self._in_period(), (CallRow.revision > 0) if reviewed else (CallRow.revision == 0))
                     .group_by(CallRow.agent_id, rows.item))
            for agent, item, calls, points, deducted, deductions in self._all(query):
                out[(agent or "", item)].add(calls, float(points or 0), int(deducted or 0), int(deductions or 0))
        return out

    def rule_sums(self) -> dict[tuple[str, str], list]:
        """(item, rule) → [rule title, calls it deducted on, hits]: the model's cards for unreviewed calls, the score
        of record for reviewed ones (误判 gone, 漏扣 as rule ``missed``)."""
        out: dict[tuple[str, str], list] = {}
        for rows, reviewed in ((DeductionCountRow, False), (ReviewedDeductionCountRow, True)):
            join = (rows.call_id == CallRow.call_id) if reviewed else (rows.prediction_id == CallRow.prediction_id)
            query = (select(rows.item, rows.rule, func.min(rows.title), func.count(), func.sum(rows.hits))
                     .select_from(CallRow).join(rows, join)
                     .where(self._in_period(), (CallRow.revision > 0) if reviewed else (CallRow.revision == 0))
                     .group_by(rows.item, rows.rule))
            for item, rule, title, calls, hits in self._all(query):
                entry = out.setdefault((item, rule), [title, 0, 0])
                entry[1] += calls
                entry[2] += int(hits or 0)
        return out

    def cards(self, item: str | None = None, rule: str | None = None, limit: int | None = None) -> list[ScorecardResult]:
        """The scorecards of the period's calls' latest predictions, oldest call first (those with a deduction of
        ``item``, by ``rule`` where given)."""
        query = (select(PredictionRow.scores).select_from(CallRow)
                 .join(PredictionRow, PredictionRow.id == CallRow.prediction_id).where(self._in_period()))
        if item is not None and rule is not None:
            query = query.join(DeductionCountRow, and_(DeductionCountRow.prediction_id == PredictionRow.id,
                                                       DeductionCountRow.item == item, DeductionCountRow.rule == rule))
        elif item is not None:
            query = query.join(ScorecardItemRow, and_(ScorecardItemRow.prediction_id == PredictionRow.id,
                                                      ScorecardItemRow.item == item, ScorecardItemRow.deductions > 0))
        query = query.order_by(CallRow.started_at, CallRow.call_id)
        return [card for (scores,) in self._all(query.limit(limit) if limit else query)
                if (card := card_of(scores)) is not None]

    def item_info(self) -> dict[str, ItemInfo]:
        """Item titles, sections and standard points, from the period's first stored scorecard."""
        for card in self.cards(limit=1):
            return {i.id: ItemInfo(i.title, s.title, i.max_points) for s in card.sections for i in s.items}
        return {}

    def topic_counts(self) -> Counter:
        """Calls per (head, topic) of the multilabel heads: predicted, or as reviewers left them."""
        counts: Counter = Counter()
        model = (select(PredictionTopicRow.head, PredictionTopicRow.topic, func.count())
                 .select_from(CallRow)
                 .join(PredictionTopicRow, PredictionTopicRow.prediction_id == CallRow.prediction_id)
                 .where(self._in_period(), CallRow.revision == 0)
                 .group_by(PredictionTopicRow.head, PredictionTopicRow.topic))
        reviewed = (select(ReviewedTopicRow.head, ReviewedTopicRow.topic, func.count())
                    .select_from(CallRow)
                    .join(ReviewedTopicRow, ReviewedTopicRow.call_id == CallRow.call_id)
                    .where(self._in_period(), CallRow.revision > 0)
                    .group_by(ReviewedTopicRow.head, ReviewedTopicRow.topic))
        for query in (model, reviewed):
            for head, topic, n in self._all(query):
                counts[(head, topic)] += n
        return counts

    def call_measures(self) -> list[CallFigures]:
        """来电分析: each of the period's calls with its start, channel, measures and predicted resolution."""
        query = (select(CallRow.call_id, CallRow.started_at, CallRow.chat, CallRow.duration, CallRow.talk_seconds,
                        CallRow.silence_seconds, CallRow.interruptions, CallRow.transfers, CallRow.repeat_call,
                        CallRow.first_response, CallRow.avg_response, CallRow.resolved)
                 .where(self._in_period()))
        return [CallFigures(*row) for row in self._all(query)]

    def planned_calls(self) -> list[PlannedCall]:
        """The period's calls as a sampling plan stratifies them: agent, start, counted classes, reviewed or not."""
        counted = self.counted_by_call()
        query = select(CallRow.call_id, CallRow.agent_id, CallRow.started_at, CallRow.revision).where(self._in_period())
        return [PlannedCall(agent, started, tuple(counted.get(call_id, ())), revision > 0)
                for call_id, agent, started, revision in self._all(query)]

    def counted_by_call(self) -> dict[str, list[tuple[str, str]]]:
        """Per call of the period, the (head, class) 分类统计 counts it under (as :meth:`topic_counts`, per call)."""
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        model = (select(CallRow.call_id, PredictionTopicRow.head, PredictionTopicRow.topic)
                 .join(PredictionTopicRow, PredictionTopicRow.prediction_id == CallRow.prediction_id)
                 .where(self._in_period(), CallRow.revision == 0))
        reviewed = (select(CallRow.call_id, ReviewedTopicRow.head, ReviewedTopicRow.topic)
                    .join(ReviewedTopicRow, ReviewedTopicRow.call_id == CallRow.call_id)
                    .where(self._in_period(), CallRow.revision > 0))
        for query in (model, reviewed):
            for call_id, head, label in self._all(query):
                out[call_id].append((head, label))
        return out

    def praised(self, at_least: float, limit: int) -> list[WorstCall]:
        """表扬: the period's calls at ``at_least`` or more (the score of record) without a red line, best first."""
        query = (select(CallRow.call_id, CallRow.agent_id, CallRow.started_at, CallRow.total, CallRow.red_line)
                 .where(self._in_period(), CallRow.total >= at_least, CallRow.red_line.is_not(True))
                 .order_by(CallRow.total.desc(), CallRow.call_id).limit(limit))
        return [WorstCall(*row) for row in self._all(query)]

    def worst(self, limit: int) -> list[WorstCall]:
        """The period's calls with the lowest share of their card's maximum, the score of record for reviewed ones."""
        query = (select(CallRow.call_id, CallRow.agent_id, CallRow.started_at, CallRow.total, CallRow.red_line)
                 .where(self._in_period(), CallRow.total.is_not(None))
                 .order_by(cast(CallRow.total, Float) / CallRow.max_total, CallRow.call_id).limit(limit))
        return [WorstCall(*row) for row in self._all(query)]

    def double_counts(self) -> DoubleCounts:
        """The period's 双评 calls by state (store/double.py)."""
        query = (select(CallRow.double_review, func.count()).where(self._in_period(), CallRow.double_review.is_not(None))
                 .group_by(CallRow.double_review))
        return DoubleCounts(**{state: int(n) for state, n in self._all(query)})

    def appeal_counts(self) -> list[AppealCounts]:
        """Appeals of the period's calls per item and rule: filed, ruled, overturned."""
        query = (select(AppealEntryRow.item, AppealEntryRow.rule, func.count(AppealEntryRow.id), func.count(RulingRow.id),
                        func.sum(case((RulingRow.decision == "overturned", 1), else_=0)))
                 .select_from(CallRow)
                 .join(AppealEntryRow, AppealEntryRow.call_id == CallRow.call_id)
                 .outerjoin(RulingRow, RulingRow.entry_id == AppealEntryRow.id)
                 .where(self._in_period())
                 .group_by(AppealEntryRow.item, AppealEntryRow.rule))
        with Session(self.engine) as session:
            return [AppealCounts(item, rule, _rule_title(session, item, rule), filed, ruled, int(overturned or 0))
                    for item, rule, filed, ruled, overturned in session.execute(by_period(query)).all()]


def _rule_title(session: Session, item: str, rule: str | None) -> str:
    """A rule's Chinese title (使用禁语, not forbidden), as the scorecard the appeal was filed on names it."""
    if rule is None:
        return "（整项）"
    prediction = session.scalar(select(AppealRow.prediction_id).join(AppealEntryRow, AppealEntryRow.appeal_id == AppealRow.id)
                                .where(AppealEntryRow.item == item, AppealEntryRow.rule == rule).limit(1))
    card = card_of(session.get(PredictionRow, prediction).scores) if prediction is not None else None
    found = card.items().get(item) if card else None
    return next((d.title for d in (found.deductions if found else ()) if d.rule == rule), "（规则已改名）")
