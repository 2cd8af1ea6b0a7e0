"""概览: the period, the scope, how many calls were monitored and reviewed, the average total and red lines."""

from __future__ import annotations

from datetime import timedelta

from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section


class Overview(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        period, overall = context.period, context.overall
        span = f"{period.start:%Y-%m-%d} 至 {(period.end - timedelta(days=1)):%Y-%m-%d}"
        rows = [["统计周期", f"{period.label}（{span}，{context.tz_name}）"],
                ["范围", context.scope], ["质检通话数", overall.calls], ["其中复核", overall.reviewed],
                ["平均得分", round_or_none(overall.average)], ["红线通话", overall.red_lines], ["评分来源", context.source]]
        return [Table(name="overview", title="概览", columns=["项目", "数值"], rows=rows)]
