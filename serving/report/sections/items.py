"""评分项: each item's average points against its standard, and how often it deducted."""

from __future__ import annotations

from ...store import ItemSums
from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section


class Items(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        rows = []
        for i, info in context.items.items():
            s = context.per_item.get(i, ItemSums())
            avg = s.average
            rows.append([info.section, info.title, info.max_points, round_or_none(avg),
                         round_or_none(100 * avg / info.max_points if avg is not None and info.max_points else None, 1),
                         s.deducted_calls, s.deductions])
        return [Table(name="items", title="评分项（平均得分对比标准分）",
                      columns=["部分", "评分项", "标准分", "平均得分", "得分率 %", "被扣分通话", "扣分次数"], rows=rows)]
