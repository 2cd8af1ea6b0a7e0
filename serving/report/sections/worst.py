"""得分最低的通话: the period's lowest-scored calls (the score of record), each linked into the review UI."""

from __future__ import annotations

from ..context import ReportContext
from ..model import Table
from .base import Section

WORST_CALLS = 10


class WorstCalls(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        rows, links = [], {}
        for n, call in enumerate(context.rows().worst(WORST_CALLS)):
            when = context.local(call.started_at)
            rows.append([call.call_id, context.directory.name(call.agent_id), f"{when:%Y-%m-%d %H:%M}" if when else "",
                         call.total, "是" if call.red_line else ""])
            links[n] = context.call_link(call.call_id)
        return [Table(name="worst", title=f"得分最低的 {len(rows)} 通（已复核的按复核得分；点击打开复核页面）",
                      columns=["通话", "坐席", "开始时间", "得分", "红线"], rows=rows, links=links)]
