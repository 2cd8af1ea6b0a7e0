"""趋势: the average total of every agent and of all, over this period and the ones before it."""

from __future__ import annotations

from ...store import all_agents
from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section


class Trend(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        sums, periods = context.trend_sums, context.trend_periods
        rows = [["全部", "", *(round_or_none(all_agents(s).average) for s in sums)]]
        for a in sorted({a for s in sums for a in s}):
            rows.append([a, context.agent_name(a), *(round_or_none(s[a].average) if a in s else None for s in sums)])
        return [Table(name="trend", title=f"近 {len(periods)} 期平均得分趋势",
                      columns=["坐席", "姓名", *(p.label for p in periods)], rows=rows)]
