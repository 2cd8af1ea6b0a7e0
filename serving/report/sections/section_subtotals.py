"""各部分得分对比标准分: per agent and overall, each scorecard section's average points against its standard (the
card's section maxima: 开头语/结束语 5, 服务态度/沟通能力 25, … on the default card)."""

from __future__ import annotations

from ...store import ItemSums
from ..context import ReportContext, points_text, round_or_none
from ..model import Table
from .base import Section


class SectionSubtotals(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        items = context.items
        sections: dict[str, list[str]] = {}
        for item_id, info in items.items():
            sections.setdefault(info.section, []).append(item_id)
        maxima = {title: sum(items[i].max_points for i in ids) for title, ids in sections.items()}

        def row(who: str, name: str, sums: dict[str, ItemSums]) -> list:
            calls = max((sums[i].calls for ids in sections.values() for i in ids if i in sums), default=0)
            averages = [sum(sums[i].points for i in ids if i in sums) / calls if calls else None
                        for ids in sections.values()]
            rates = [round_or_none(100 * a / maxima[t], 1) if a is not None and maxima[t] else None
                     for a, t in zip(averages, sections)]
            return [who, name, calls, *(round_or_none(a) for a in averages), *rates]

        rows = [row("全部", "", context.per_item)]
        for agent in context.agents_by_calls():
            mine = {i: s for (a, i), s in context.item_sums.items() if a == agent}
            rows.append(row(agent, context.agent_name(agent), mine))
        columns = ["坐席", "姓名", "通话数", *(f"{t}（{points_text(m)}）" for t, m in maxima.items()),
                   *(f"{t} 得分率 %" for t in maxima)]
        return [Table(name="sections", title="各部分得分对比标准分", columns=columns, rows=rows)]
