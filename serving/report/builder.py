"""Building a report: a period and a scope (all agents, a team, an agent) become a context, and each registered
section adds its tables."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from callqa.schema import LabelSchema

from ..directory import AgentDirectory
from ..store import ReviewStore, all_agents
from .context import ReportContext
from .html import charts
from .model import Report
from .period import Period
from .sections import SECTIONS

DEFAULT_TZ = "Asia/Shanghai"


class UnknownTeam(LookupError):
    """A team the agent directory does not have (a 404, like a call that does not exist)."""


class ReportBuilder:
    """Reports over one :class:`ReviewStore`, in a time zone, linking calls into the review UI at ``ui_base``."""

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

    def context(self, period_text: str, team: str | None = None, agent: str | None = None) -> ReportContext:
        period = Period.parse(period_text, self.tz)
        agents = [agent] if agent else (self.directory.members(team) if team else None)
        if team and not agents:
            raise UnknownTeam(f"team {team!r}: no agent of the directory is in it")
        scope = f"坐席 {self.directory.name(agent)}" if agent else (f"班组 {team}" if team else "全部坐席")
        return ReportContext(store=self.store, period=period, agents=agents, scope=scope, schema=self.schema,
                             directory=self.directory, tz=self.tz, tz_name=self.tz_name, ui_base=self.ui_base)

    def build(self, period_text: str, team: str | None = None, agent: str | None = None) -> Report:
        context = self.context(period_text, team, agent)
        tables = [table for section in SECTIONS for table in section.tables(context)]
        trend = {"全部": [all_agents(sums).average for sums in context.trend_sums]}
        for a in sorted({a for sums in context.trend_sums for a in sums}):
            trend[self.directory.name(a) or "（无坐席）"] = [sums[a].average if a in sums else None
                                                           for sums in context.trend_sums]
        items = context.items
        period = context.period
        report = Report(
            title=f"质检{'月' if period.kind == 'month' else '周'}报 {period.label}", period=period.label,
            time_zone=self.tz_name, generated=datetime.now(self.tz).strftime("%Y-%m-%d %H:%M %Z"),
            source=context.source, scope=context.scope, tables=tables, trend=trend,
            trend_periods=[p.label for p in context.trend_periods],
            items=[(items[i].title, s.average or 0.0, items[i].max_points) for i, s in context.per_item.items()
                   if i in items],
        )
        return report.model_copy(update={"charts": charts(report)})
