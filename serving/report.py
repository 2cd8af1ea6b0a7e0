"""QA reports (质检月报) from the review store: what a QA lead hands up every month.

The figures follow a call center's monthly report: calls monitored in total and per category (the model's topics);
per agent the calls, average total, red lines and per-item averages against the item's standard points; the trend
over the last six periods; the most frequent deductions with example spans (PII redacted); the worst calls with links
into the review UI; and model–reviewer agreement for the period.

Which score counts: the scorecard of a call's latest prediction, unless a reviewer reviewed the call — then the
reviewer's points (points set by hand, or the card's with the deductions marked 误判 given back; see
:func:`callqa.serving.reviews.reviewed_card`). The report says how many calls each source gave.

Scale: every figure is a SQL aggregate (sums and counts per agent, item and topic over the period's calls, on the
``started_at`` index): unreviewed calls from their latest prediction's scorecard and topic rows, reviewed calls from
the rows the store rewrites with each review (``reviewed_scorecards``, ``reviewed_scorecard_items``,
``reviewed_topics``). Only the agreement table reads the period's reviewed calls one by one. Periods are calendar
months or ISO weeks in a configurable time zone (default Asia/Shanghai); ``started_at`` is stored in UTC.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from callqa.redact import redact
from callqa.schema import LabelSchema
from callqa.scorecard import ScorecardResult

from .agreement import agreement, group_by_model, scorecard_agreement
from .appeals import AppealEntryRow, AppealRow, RulingRow
from .directory import AgentDirectory
from .reviews import (
    CallRow,
    DeductionCountRow,
    PredictionRow,
    PredictionTopicRow,
    ReviewedCall,
    ReviewedDeductionCountRow,
    ReviewedItemRow,
    ReviewedTopicRow,
    ReviewStore,
    ScorecardItemRow,
)

DEFAULT_TZ = "Asia/Shanghai"
TREND_PERIODS = 6
EXAMPLES_PER_ITEM = 3
TOP_RULES = 5  # 主要问题: this many rules
WORST_CALLS = 10
# Chinese text in the HTML and the charts' SVG text: the first of these fonts the reader's machine has.
CJK_FONTS = '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif'


# The HTML report's one style element (the served page's Content-Security-Policy allows it by hash).
REPORT_STYLE = (f"body{{font-family:{CJK_FONTS};margin:2em auto;max-width:1100px;color:#101828}}"
                "table{border-collapse:collapse;font-size:.9em;margin:.5em 0 1.5em}"
                "th,td{border:1px solid #d0d5dd;padding:.3em .6em;text-align:right}th{background:#f2f4f7}"
                "td:first-child,th:first-child{text-align:left}.meta,.note{color:#667085}.source{background:#fffaeb;"
                "padding:.5em}.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{max-width:100%}")

class UnknownTeam(LookupError):
    """A team the agent directory does not have (a 404, like a call that does not exist)."""


# ----------------------------------------------------------------------------------------------- periods

# A month or an ISO week, exactly (the OpenAPI document states the same pattern, so what it allows, the server reads):
# years 1970-2099, week 53 only in the years that have one. [0-9], not \d: \d takes full-width digits.
_LONG_YEARS = "|".join(str(y) for y in range(1970, 2100) if date(y, 12, 28).isocalendar()[1] == 53)
PERIOD_PATTERN = (rf"^(?:(?P<year>19[7-9][0-9]|20[0-9]{{2}})-(?:(?P<month>0[1-9]|1[0-2])|W(?P<week>0[1-9]|[1-4][0-9]|5[0-2]))"
                  rf"|(?P<long>{_LONG_YEARS})-W(?P<w53>53))$")

@dataclass(frozen=True)
class Period:
    """A calendar month (``2026-03``) or ISO week (``2026-W10``) in a time zone; ``start``/``end`` are aware."""

    kind: Literal["month", "week"]
    label: str
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo) -> Period:
        """``2026-03`` or ``2026-W10`` exactly as :data:`PERIOD_PATTERN` spells it (ASCII digits, no sign, no
        whitespace), years 1970–2099; ValueError otherwise."""
        found = re.fullmatch(PERIOD_PATTERN.strip("^$"), text)
        try:
            if found is None:
                raise ValueError(text)
            if found["w53"]:
                return cls._week(date.fromisocalendar(int(found["long"]), 53, 1), tz)
            if found["week"]:
                return cls._week(date.fromisocalendar(int(found["year"]), int(found["week"]), 1), tz)
            return cls._month(int(found["year"]), int(found["month"]), tz)
        except ValueError:
            raise ValueError(f"period: {text[:20]!r} is not a period; write a month as 2026-03 or an ISO week as "
                             f"2026-W10 (years 1970–2099)") from None

    @classmethod
    def _month(cls, year: int, month: int, tz: ZoneInfo) -> Period:
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return cls("month", f"{year:04d}-{month:02d}", start, end)

    @classmethod
    def _week(cls, monday: date, tz: ZoneInfo) -> Period:
        start = datetime.combine(monday, datetime.min.time(), tzinfo=tz)
        year, week, _ = monday.isocalendar()
        return cls("week", f"{year:04d}-W{week:02d}", start, datetime.combine(monday + timedelta(days=7),
                                                                               datetime.min.time(), tzinfo=tz))

    @property
    def utc(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC, as the store keeps started_at (SQLite compares the stored text, so offsets must match)."""
        return self.start.astimezone(UTC), self.end.astimezone(UTC)

    def previous(self) -> Period:
        if self.kind == "week":
            return self._week(self.start.date() - timedelta(days=7), self.start.tzinfo)
        month = self.start.month - 1 or 12
        return self._month(self.start.year - (self.start.month == 1), month, self.start.tzinfo)

    def last(self, n: int) -> list[Period]:
        """This period and the n − 1 before it, oldest first."""
        periods = [self]
        while len(periods) < n:
            periods.append(periods[-1].previous())
        return periods[::-1]


# ----------------------------------------------------------------------------------------------- the report

class Table(BaseModel):
    name: str  # sheet and CSV file name
    title: str
    columns: list[str]
    rows: list[list[str | int | float | None]]
    note: str = ""
    links: dict[int, str] = {}  # row index → URL of the row's call in the review UI (HTML only)


class Report(BaseModel):
    title: str
    period: str
    time_zone: str
    generated: str
    source: str  # which scores were used
    scope: str  # all agents, a team, or an agent
    tables: list[Table]
    trend: dict[str, list[float | None]]  # "全部" and each agent → average total per period (charts)
    trend_periods: list[str]
    items: list[tuple[str, float, float]]  # (item title, average points, standard points) (charts)
    charts: list[str] = []  # the trend and item charts as SVG documents (HTML inlines them; the dashboard shows images)

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


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


def by_period(query):
    """The query reading review_calls through its period index. SQLite without ANALYZE statistics would otherwise
    pick the queue's index for ``revision = 0`` and read every unreviewed call's row: 10× slower at 1M calls."""
    return query.with_hint(CallRow, "INDEXED BY ix_review_calls_report", dialect_name="sqlite")


class ReportBuilder:
    """Reads one period's figures out of a :class:`ReviewStore`."""

    def __init__(self, store: ReviewStore, schema: LabelSchema | None = None, directory: AgentDirectory | None = None,
                 tz: str = DEFAULT_TZ, ui_base: str = "http://127.0.0.1:3000"):
        self.store, self.schema = store, schema
        self.directory = directory or AgentDirectory()
        self.tz_name, self.tz = tz, ZoneInfo(tz)
        base = urlsplit(ui_base)
        # The worst calls link here ("": the same server, as the served report page links): a javascript: or data:
        # base would put a script in every report that opens it.
        if ui_base and (base.scheme not in ("http", "https") or not base.netloc or base.query or base.fragment):
            raise ValueError(f"ui base {ui_base[:80]!r}: give the review UI's http(s) URL, e.g. http://127.0.0.1:3000")
        self.ui_base = ui_base.rstrip("/")

    # --- SQL aggregates --------------------------------------------------------------------------------------
    def _in_period(self, period: Period, agents: list[str] | None):
        start, end = period.utc
        where = [CallRow.started_at >= start, CallRow.started_at < end]
        if agents is not None:
            where.append(CallRow.agent_id.in_(agents))
        return and_(*where)

    def agent_sums(self, session: Session, period: Period, agents: list[str] | None) -> dict[str, Sums]:
        """Per agent: calls, sum of totals, red lines, reviewed calls — the model's scorecards for unreviewed calls,
        the reviewed scorecards for the others (the store keeps both on the call row)."""
        out: dict[str, Sums] = defaultdict(Sums)
        # The call row holds what counts (the model's card, or the reviewed one): a scan of the report index.
        query = (select(CallRow.agent_id, func.count(), func.sum(CallRow.total),
                        func.sum(case((CallRow.red_line, 1), else_=0)), func.sum(case((CallRow.revision > 0, 1), else_=0)))
                 .where(self._in_period(period, agents), CallRow.total.is_not(None)).group_by(CallRow.agent_id))
        for agent, calls, total, red, reviewed in session.execute(by_period(query)):
            out[agent or ""].add(calls, float(total or 0.0), int(red or 0), int(reviewed or 0))
        return out

    def item_sums(self, session: Session, period: Period, agents: list[str] | None) -> dict[tuple[str, str], ItemSums]:
        """(agent, item) → sums over the period's calls (reviewed calls: the reviewer's points and kept deductions)."""
        out: dict[tuple[str, str], ItemSums] = defaultdict(ItemSums)
        for rows, reviewed in ((ScorecardItemRow, False), (ReviewedItemRow, True)):
            join = (rows.call_id == CallRow.call_id) if reviewed else (rows.prediction_id == CallRow.prediction_id)
            query = (select(CallRow.agent_id, rows.item, func.count(), func.sum(rows.points),
                            func.sum(case((rows.deductions > 0, 1), else_=0)), func.sum(rows.deductions))
                     .join(rows, join)
                     .where(self._in_period(period, agents), (CallRow.revision > 0) if reviewed else (CallRow.revision == 0))
                     .group_by(CallRow.agent_id, rows.item))
            for agent, item, calls, points, deducted, deductions in session.execute(by_period(query)):
                out[(agent or "", item)].add(calls, float(points or 0), int(deducted or 0), int(deductions or 0))
        return out

    def rule_sums(self, session: Session, period: Period, agents: list[str] | None) -> dict[tuple[str, str], list]:
        """(item, rule) → [rule title, calls it deducted on, hits]: the model's cards for unreviewed calls, the score
        of record for reviewed ones (误判 gone, 漏扣 as rule ``missed``)."""
        out: dict[tuple[str, str], list] = {}
        for rows, reviewed in ((DeductionCountRow, False), (ReviewedDeductionCountRow, True)):
            join = (rows.call_id == CallRow.call_id) if reviewed else (rows.prediction_id == CallRow.prediction_id)
            query = (select(rows.item, rows.rule, func.min(rows.title), func.count(), func.sum(rows.hits))
                     .select_from(CallRow).join(rows, join)
                     .where(self._in_period(period, agents), (CallRow.revision > 0) if reviewed else (CallRow.revision == 0))
                     .group_by(rows.item, rows.rule))
            for item, rule, title, calls, hits in session.execute(by_period(query)):
                entry = out.setdefault((item, rule), [title, 0, 0])
                entry[1] += calls
                entry[2] += int(hits or 0)
        return out

    def predictions(self, session: Session, period: Period, agents: list[str] | None, item: str | None = None,
                    limit: int | None = None, rule: str | None = None):
        """(call id, agent, started_at, stored scores) of the period's calls' latest predictions."""
        query = (select(CallRow.call_id, CallRow.agent_id, CallRow.started_at, PredictionRow.scores)
                 .join(PredictionRow, PredictionRow.id == CallRow.prediction_id)
                 .where(self._in_period(period, agents)))
        if item is not None and rule is not None:
            query = query.join(DeductionCountRow, and_(DeductionCountRow.prediction_id == PredictionRow.id,
                                                       DeductionCountRow.item == item, DeductionCountRow.rule == rule))
        elif item is not None:
            query = query.join(ScorecardItemRow, and_(ScorecardItemRow.prediction_id == PredictionRow.id,
                                                      ScorecardItemRow.item == item, ScorecardItemRow.deductions > 0))
        query = query.order_by(CallRow.started_at, CallRow.call_id)
        return session.execute(by_period(query.limit(limit) if limit else query))

    def topic_counts(self, session: Session, period: Period, agents: list[str] | None) -> Counter:
        """Calls per (head, topic) of the multilabel heads: predicted, or as reviewers left them."""
        counts: Counter = Counter()
        model = (select(PredictionTopicRow.head, PredictionTopicRow.topic, func.count())
                 .select_from(CallRow)
                 .join(PredictionTopicRow, PredictionTopicRow.prediction_id == CallRow.prediction_id)
                 .where(self._in_period(period, agents), CallRow.revision == 0)
                 .group_by(PredictionTopicRow.head, PredictionTopicRow.topic))
        reviewed = (select(ReviewedTopicRow.head, ReviewedTopicRow.topic, func.count())
                    .select_from(CallRow)
                    .join(ReviewedTopicRow, ReviewedTopicRow.call_id == CallRow.call_id)
                    .where(self._in_period(period, agents), CallRow.revision > 0)
                    .group_by(ReviewedTopicRow.head, ReviewedTopicRow.topic))
        for query in (model, reviewed):
            for head, topic, n in session.execute(by_period(query)):
                counts[(head, topic)] += n
        return counts

    # --- the report ------------------------------------------------------------------------------------------
    def build(self, period_text: str, team: str | None = None, agent: str | None = None) -> Report:
        period = Period.parse(period_text, self.tz)
        agents = [agent] if agent else (self.directory.members(team) if team else None)
        if team and not agents:
            raise UnknownTeam(f"team {team!r}: no agent of the directory is in it")
        scope = f"坐席 {self.directory.name(agent)}" if agent else (f"班组 {team}" if team else "全部坐席")
        with Session(self.store.engine) as session:
            agent_sums = self.agent_sums(session, period, agents)
            item_sums = self.item_sums(session, period, agents)
            items = self._item_info(session, period, agents)
            trend_periods = period.last(TREND_PERIODS)
            trend_sums = [self.agent_sums(session, p, agents) for p in trend_periods[:-1]] + [agent_sums]
            topics = self.topic_counts(session, period, agents)
            rules = self.rule_sums(session, period, agents)
            top = sorted(rules, key=lambda r: (-rules[r][1], -rules[r][2], r))[:TOP_RULES]
            examples = {r: self._examples(session, period, agents, *r) for r in top}
            worst = session.execute(by_period(
                select(CallRow.call_id, CallRow.agent_id, CallRow.started_at, CallRow.total, CallRow.red_line)
                .where(self._in_period(period, agents), CallRow.total.is_not(None))
                .order_by(cast(CallRow.total, Float) / CallRow.max_total, CallRow.call_id).limit(WORST_CALLS))).all()
            appeals = self._appeals(session, period, agents, items)
        # Agreement compares each reviewed call's labels with what the model said: read call by call, this period's only.
        reviewed = list(self.store.reviewed(started=period.utc, agents=agents))

        overall = all_agents(agent_sums)
        n_calls = overall.calls
        source = (f"模型评分卡 {n_calls - overall.reviewed} 通；复核员评分 {overall.reviewed} 通（已复核的通话以复核员"
                  f"给分为准：手动给分，或模型扣分中被标为误判的分数退回）")
        tables = [
            self._overview(period, n_calls, overall, scope, source),
            self._categories(topics, n_calls),
            self._agents(agent_sums, item_sums, items),
            self._sections(agent_sums, item_sums, items),
            self._items(item_sums, items),
            self._trend(trend_periods, trend_sums),
            self._deductions(rules, items, examples),
            self._worst(worst),
            appeals,
            *self._agreement(reviewed),
        ]
        trend = {"全部": [all_agents(sums).average for sums in trend_sums]}
        for a in sorted({a for sums in trend_sums for a in sums}):
            trend[self.directory.name(a) or "（无坐席）"] = [sums[a].average if a in sums else None for sums in trend_sums]
        per_item = self._per_item(item_sums)
        report = Report(
            title=f"质检{'月' if period.kind == 'month' else '周'}报 {period.label}", period=period.label,
            time_zone=self.tz_name, generated=datetime.now(self.tz).strftime("%Y-%m-%d %H:%M %Z"), source=source,
            scope=scope, tables=tables, trend=trend, trend_periods=[p.label for p in trend_periods],
            items=[(items[i].title, s.average or 0.0, items[i].max_points) for i, s in per_item.items() if i in items],
        )
        return report.model_copy(update={"charts": _charts(report)})

    def _item_info(self, session, period, agents) -> dict[str, ItemInfo]:
        """Item titles, sections and standard points, from the period's first stored scorecard."""
        for _, _, _, scores in self.predictions(session, period, agents, limit=1):
            card = _card(scores)
            if card:
                return {i.id: ItemInfo(i.title, s.title, i.max_points) for s in card.sections for i in s.items}
        return {}

    @staticmethod
    def _per_item(item_sums) -> dict[str, ItemSums]:
        out: dict[str, ItemSums] = defaultdict(ItemSums)
        for (_, item), s in item_sums.items():
            out[item].add(s.calls, s.points, s.deducted_calls, s.deductions)
        return out

    def _examples(self, session, period, agents, item: str, rule: str) -> list[str]:
        """Up to EXAMPLES_PER_ITEM redacted spans a rule deducted on, one per call (the model's cards)."""
        out = []
        for _, _, _, scores in self.predictions(session, period, agents, item=item, rule=rule, limit=EXAMPLES_PER_ITEM):
            card = _card(scores)
            found = card.items().get(item) if card else None
            hit = next((d for d in (found.deductions if found else ()) if d.rule == rule), None)
            if hit is not None:
                out.append(redact(hit.text or "") or "（时间类扣分，无文字）")
        return out

    # --- tables ----------------------------------------------------------------------------------------------
    def _overview(self, period: Period, n_calls: int, overall: Sums, scope: str, source: str) -> Table:
        rows = [["统计周期", f"{period.label}（{period.start:%Y-%m-%d} 至 {(period.end - timedelta(days=1)):%Y-%m-%d}，{self.tz_name}）"],
                ["范围", scope], ["质检通话数", n_calls], ["其中复核", overall.reviewed],
                ["平均得分", _round(overall.average)], ["红线通话", overall.red_lines], ["评分来源", source]]
        return Table(name="overview", title="概览", columns=["项目", "数值"], rows=rows)

    def _categories(self, topics: Counter, n_calls: int) -> Table:
        rows = []
        for (head, topic), n in topics.most_common():
            name = topic
            if self.schema is not None and head in self.schema.head_names:
                name = self.schema[head].classes.get(topic, topic)
            rows.append([name, n, _round(100 * n / n_calls if n_calls else None, 1)])
        return Table(name="categories", title="分类统计（模型话题，已复核的以复核为准）", columns=["类别", "通话数", "占比 %"],
                     rows=rows, note="一通电话可属多个类别")

    def _agents(self, agent_sums, item_sums, items: dict[str, ItemInfo]) -> Table:
        columns = ["坐席", "姓名", "班组", "通话数", "平均得分", "红线", "复核数",
                   *(f"{info.title}（{_fmt(info.max_points)}）" for info in items.values())]
        rows = []
        for agent in sorted(agent_sums, key=lambda a: (-(agent_sums[a].calls), a)):
            s = agent_sums[agent]
            per_item = [_round(item_sums[(agent, i)].average) if (agent, i) in item_sums else None for i in items]
            rows.append([agent, self.directory.name(agent) if agent in self.directory.agents else "",
                         self.directory.team(agent), s.calls, _round(s.average), s.red_lines, s.reviewed, *per_item])
        return Table(name="agents", title="坐席成绩", columns=columns, rows=rows)

    def _sections(self, agent_sums, item_sums, items: dict[str, ItemInfo]) -> Table:
        """Per agent and overall, each section's average points against its standard (the card's section maxima:
        开头语/结束语 5, 服务态度/沟通能力 25, … on the default card)."""
        sections: dict[str, list[str]] = {}
        for item_id, info in items.items():
            sections.setdefault(info.section, []).append(item_id)
        maxima = {title: sum(items[i].max_points for i in ids) for title, ids in sections.items()}

        def row(who: str, name: str, sums: dict[str, ItemSums]) -> list:
            calls = max((sums[i].calls for ids in sections.values() for i in ids if i in sums), default=0)
            averages = [sum(sums[i].points for i in ids if i in sums) / calls if calls else None
                        for ids in sections.values()]
            rates = [_round(100 * a / maxima[t], 1) if a is not None and maxima[t] else None
                     for a, t in zip(averages, sections)]
            return [who, name, calls, *(_round(a) for a in averages), *rates]

        rows = [row("全部", "", self._per_item(item_sums))]
        for agent in sorted(agent_sums, key=lambda a: (-(agent_sums[a].calls), a)):
            mine = {i: s for (a, i), s in item_sums.items() if a == agent}
            rows.append(row(agent, self.directory.name(agent) if agent in self.directory.agents else "", mine))
        columns = ["坐席", "姓名", "通话数", *(f"{t}（{_fmt(m)}）" for t, m in maxima.items()),
                   *(f"{t} 得分率 %" for t in maxima)]
        return Table(name="sections", title="各部分得分对比标准分",
                     columns=columns, rows=rows)

    def _items(self, item_sums, items: dict[str, ItemInfo]) -> Table:
        per_item = self._per_item(item_sums)
        rows = []
        for i, info in items.items():
            s = per_item.get(i, ItemSums())
            avg = s.average
            rows.append([info.section, info.title, info.max_points, _round(avg),
                         _round(100 * avg / info.max_points if avg is not None and info.max_points else None, 1),
                         s.deducted_calls, s.deductions])
        return Table(name="items", title="评分项（平均得分对比标准分）",
                     columns=["部分", "评分项", "标准分", "平均得分", "得分率 %", "被扣分通话", "扣分次数"], rows=rows)

    def _trend(self, periods: list[Period], sums: list[dict[str, Sums]]) -> Table:
        agents = sorted({a for s in sums for a in s})
        rows = [["全部", "", *(_round(all_agents(s).average) for s in sums)]]
        for a in agents:
            rows.append([a, self.directory.name(a) if a in self.directory.agents else "",
                         *(_round(s[a].average) if a in s else None for s in sums)])
        return Table(name="trend", title=f"近 {len(periods)} 期平均得分趋势", columns=["坐席", "姓名", *(p.label for p in periods)],
                     rows=rows)

    def _deductions(self, rules: dict[tuple[str, str], list], items: dict[str, ItemInfo],
                    examples: dict[tuple[str, str], list[str]]) -> Table:
        """主要问题: the rules that deducted on the most calls (red lines too: 禁语 costs no points but zeroes the
        call), by their Chinese titles, with redacted examples."""
        rows = []
        for (item, rule), found in examples.items():
            title, calls, hits = rules[(item, rule)]
            rows.append([title, items[item].title if item in items else item, calls, hits,
                         "；".join(f"「{text}」" for text in found)])
        return Table(name="deductions", title="主要问题（扣分通话最多的规则，红线在内；举例已脱敏）",
                     columns=["问题（规则）", "评分项", "被扣分通话", "扣分次数", "举例"], rows=rows)

    def _worst(self, worst) -> Table:
        rows, links = [], {}
        for n, (call_id, agent, started, total, red_line) in enumerate(worst):
            when = started.replace(tzinfo=started.tzinfo or ZoneInfo("UTC")).astimezone(self.tz) if started else None
            rows.append([call_id, self.directory.name(agent), f"{when:%Y-%m-%d %H:%M}" if when else "", total,
                         "是" if red_line else ""])
            links[n] = f"{self.ui_base}/review/?call={quote(call_id, safe='')}"
        return Table(name="worst", title=f"得分最低的 {len(rows)} 通（已复核的按复核得分；点击打开复核页面）",
                     columns=["通话", "坐席", "开始时间", "得分", "红线"], rows=rows, links=links)

    def _appeals(self, session: Session, period: Period, agents: list[str] | None, items: dict[str, ItemInfo]) -> Table:
        """Appeals of the period's calls per item and rule: filed, ruled, overturned. A rule overturned often is a
        bad rule."""
        query = (select(AppealEntryRow.item, AppealEntryRow.rule, func.count(AppealEntryRow.id), func.count(RulingRow.id),
                        func.sum(case((RulingRow.decision == "overturned", 1), else_=0)))
                 .select_from(CallRow)
                 .join(AppealEntryRow, AppealEntryRow.call_id == CallRow.call_id)
                 .outerjoin(RulingRow, RulingRow.entry_id == AppealEntryRow.id)
                 .where(self._in_period(period, agents))
                 .group_by(AppealEntryRow.item, AppealEntryRow.rule))
        rows = []
        for item, rule, filed, ruled, overturned in session.execute(by_period(query)):
            title = items[item].title if item in items else item
            rows.append([title, self._rule_title(session, item, rule), filed, ruled, int(overturned or 0),
                         _round(100 * (overturned or 0) / ruled if ruled else None, 1)])
        rows.sort(key=lambda r: (-(r[4]), -r[2], r[0]))
        return Table(name="appeals", title="申诉（按评分项与规则；改判率高的规则需要复查）",
                     columns=["评分项", "规则", "申诉", "已裁决", "改判", "改判率 %"], rows=rows)

    @staticmethod
    def _rule_title(session: Session, item: str, rule: str | None) -> str:
        """A rule's Chinese title (使用禁语, not forbidden), as the scorecard the appeal was filed on names it."""
        if rule is None:
            return "（整项）"
        prediction = session.scalar(select(AppealRow.prediction_id).join(AppealEntryRow, AppealEntryRow.appeal_id == AppealRow.id)
                                    .where(AppealEntryRow.item == item, AppealEntryRow.rule == rule).limit(1))
        card = _card(session.get(PredictionRow, prediction).scores) if prediction is not None else None
        found = card.items().get(item) if card else None
        return next((d.title for d in (found.deductions if found else ()) if d.rule == rule), "（规则已改名）")

    def _agreement(self, reviewed: list[ReviewedCall]) -> list[Table]:
        if not reviewed:
            return [Table(name="agreement", title="模型与复核一致性", columns=["指标", "数值"], rows=[["复核通话", 0]])]
        rows = []
        for model, calls in group_by_model(reviewed).items():  # each bundle on its own heads
            schema = calls[0].schema or self.schema
            for h in agreement(calls, schema) if schema is not None else ():
                rows.append([model, f"{h.display}（{h.metric}）", h.overall.n, _round(h.overall.accuracy, 3),
                             _round(h.overall.kappa, 3)])
        card = scorecard_agreement(reviewed)
        rules = [[r.title, r.reviewed, r.wrong, _round(r.precision, 3)] for r in card.rules]
        return [Table(name="agreement", title="模型与复核一致性（本期已复核通话，按模型）",
                      columns=["模型", "维度", "复核通话", "准确率", "一致性系数"], rows=rows),
                Table(name="rules", title="规则准确率（复核确认的扣分 / 复核过的扣分）", columns=["规则", "复核过的扣分", "误判", "准确率"],
                      rows=rules)]


def _card(scores) -> ScorecardResult | None:
    if isinstance(scores, str):
        scores = json.loads(scores)
    card = scores.get("scorecard")
    return ScorecardResult.model_validate(card) if card else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# ----------------------------------------------------------------------------------------------- writers

def _charts(report: Report) -> list[str]:
    """Inline SVG charts (matplotlib; text kept as text so the browser draws Chinese with the page's fonts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.family": "sans-serif", "font.size": 10,
                         "font.sans-serif": [f.strip('" ') for f in CJK_FONTS.split(",")] + ["DejaVu Sans"]})
    # Text stays text in the SVG, so a machine without CJK fonts only measures it with a Latin font: say nothing.
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    warnings.filterwarnings("ignore", message="findfont: Font family")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    out = []
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, values in list(report.trend.items())[:9]:  # all calls and the first agents: a readable chart
        xs = [p for p, v in zip(report.trend_periods, values) if v is not None]
        ys = [v for v in values if v is not None]
        ax.plot(xs, ys, marker="o", linewidth=2.5 if name == "全部" else 1, label=name)
    ax.set_title("平均得分趋势")
    ax.set_ylabel("平均得分")
    ax.legend(fontsize=8, ncol=3)
    ax.grid(alpha=0.3)
    out.append(_svg(fig))
    if report.items:
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(report.items)))
        titles = [t for t, _, _ in report.items]
        ax.barh(titles, [m for _, _, m in report.items], color="#e4e7ec", label="标准分")
        ax.barh(titles, [a for _, a, _ in report.items], color="#3538cd", height=0.5, label="平均得分")
        ax.invert_yaxis()
        ax.set_title("评分项：平均得分 / 标准分")
        ax.legend(fontsize=8)
        out.append(_svg(fig))
    plt.close("all")
    return out


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _cell(value) -> str:
    if value is None:
        return "–"
    return html.escape(_fmt(value) if isinstance(value, float) else str(value))


def write_html(report: Report, path: Path) -> None:
    Path(path).write_text(render_html(report), encoding="utf-8")


def render_html(report: Report) -> str:
    """One self-contained page: styles and charts inline, no script, no network. Links open in the whole window
    (the dashboard shows the page in a frame)."""
    parts = [f"<h1>{html.escape(report.title)}</h1>",
             f"<p class=meta>{html.escape(report.scope)} · 时区 {html.escape(report.time_zone)} · 生成于 "
             f"{html.escape(report.generated)}</p>", f"<p class=source>{html.escape(report.source)}</p>",
             # Charts as images: an SVG's own style attributes stay inside it, under any page's style policy.
             '<div class=charts>' + "".join(f'<figure><img alt="图表" src="data:image/svg+xml;base64,'
                                            f'{base64.b64encode(svg.encode()).decode()}"></figure>'
                                            for svg in report.charts) + "</div>"]
    for t in report.tables:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
        body = []
        for n, row in enumerate(t.rows):
            cells = [f"<td>{_cell(v)}</td>" for v in row]
            if n in t.links:
                cells[0] = f'<td><a href="{html.escape(t.links[n])}">{_cell(row[0])}</a></td>'
            # An agent's row names the agent, so the dashboard can drill down to them.
            key = f' data-agent="{html.escape(str(row[0]))}"' if t.name == "agents" else ""
            body.append(f"<tr{key}>" + "".join(cells) + "</tr>")
        note = f"<p class=note>{html.escape(t.note)}</p>" if t.note else ""
        parts.append(f'<section id="{t.name}"><h2>{html.escape(t.title)}</h2><table><thead><tr>{head}</tr></thead>'
                     f"<tbody>{''.join(body) or '<tr><td>（无）</td></tr>'}</tbody></table>{note}</section>")
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><base target="_top">'
            f"<title>{html.escape(report.title)}</title><style>{REPORT_STYLE}</style></head><body>{''.join(parts)}</body></html>")


def write_xlsx(report: Report, path: Path) -> None:
    """One sheet per table, headers bold and frozen, column widths fitted to the text."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for t in report.tables:
        sheet = book.create_sheet(t.title[:31].replace("/", "／"))
        sheet.append(t.columns)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for n, row in enumerate(t.rows):
            sheet.append(row)
            if n in t.links:
                sheet.cell(row=n + 2, column=1).hyperlink = t.links[n]
        sheet.freeze_panes = "A2"
        for column in sheet.columns:
            width = max(len(str(c.value or "")) for c in column)
            sheet.column_dimensions[column[0].column_letter].width = min(60, 4 + 1.8 * width)
    book.save(path)


def write_csv(report: Report, directory: Path) -> list[Path]:
    """One CSV per table (UTF-8 with BOM, which Excel opens as Chinese)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in report.tables:
        path = directory / f"{t.name}.csv"
        with open(path, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(t.columns)
            writer.writerows(t.rows)
        paths.append(path)
    return paths


def write_report(report: Report, out: Path) -> list[Path]:
    """``out`` ending in .html, .xlsx or .csv (a folder of CSVs named after it) writes that; anything else is a
    folder that gets all three."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".html":
        write_html(report, out)
        return [out]
    if suffix == ".xlsx":
        write_xlsx(report, out)
        return [out]
    if suffix == ".csv":
        return write_csv(report, out.with_suffix(""))
    out.mkdir(parents=True, exist_ok=True)
    write_html(report, out / "report.html")
    write_xlsx(report, out / "report.xlsx")
    return [out / "report.html", out / "report.xlsx", *write_csv(report, out / "csv")]
