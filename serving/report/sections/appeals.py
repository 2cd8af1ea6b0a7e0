"""申诉: appeals of the period's calls per item and rule — filed, ruled, overturned. A rule overturned often is a
bad rule."""

from __future__ import annotations

from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section


class Appeals(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        items, rows = context.items, []
        for c in context.rows().appeal_counts():
            rows.append([items[c.item].title if c.item in items else c.item, c.rule_title, c.filed, c.ruled,
                         c.overturned, round_or_none(100 * c.overturned / c.ruled if c.ruled else None, 1)])
        rows.sort(key=lambda r: (-(r[4]), -r[2], r[0]))
        return [Table(name="appeals", title="申诉（按评分项与规则；改判率高的规则需要复查）",
                      columns=["评分项", "规则", "申诉", "已裁决", "改判", "改判率 %"], rows=rows)]
