"""规则准确率: per rule, the deductions reviewers judged, how many they marked 误判, and the 漏扣 they marked on
its items (shown once anything was reviewed in the period)."""

from __future__ import annotations

from ...agreement import scorecard_agreement
from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section


class RulePrecision(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        if not context.reviewed:
            return []
        card = scorecard_agreement(context.reviewed)
        rows = [[r.title, r.reviewed, r.wrong, round_or_none(r.precision, 3), r.missed, round_or_none(r.recall, 3)]
                for r in card.rules]
        return [Table(name="rules", title="规则准确率（复核确认的扣分 / 复核过的扣分）与漏扣",
                      columns=["规则", "复核过的扣分", "误判", "准确率", "漏扣", "查全率"], rows=rows)]
