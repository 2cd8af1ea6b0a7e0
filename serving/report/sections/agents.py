"""坐席成绩: per agent the calls, average total, red lines, reviews and each item's average."""

from __future__ import annotations

from ..context import ReportContext, points_text, round_or_none
from ..model import Table
from .base import Section


class Agents(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        items, item_sums = context.items, context.item_sums
        columns = ["坐席", "姓名", "班组", "通话数", "平均得分", "红线", "复核数",
                   *(f"{info.title}（{points_text(info.max_points)}）" for info in items.values())]
        rows = []
        for agent in context.agents_by_calls():
            s = context.agent_sums[agent]
            per_item = [round_or_none(item_sums[(agent, i)].average) if (agent, i) in item_sums else None for i in items]
            rows.append([agent, context.agent_name(agent), context.directory.team(agent), s.calls,
                         round_or_none(s.average), s.red_lines, s.reviewed, *per_item])
        return [Table(name="agents", title="坐席成绩", columns=columns, rows=rows)]
