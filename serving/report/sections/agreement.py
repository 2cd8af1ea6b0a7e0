"""模型与复核一致性: per bundle and head, how often the model agreed with the period's reviews (accuracy, κ)."""

from __future__ import annotations

from ...agreement import agreement, group_by_model
from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section


class Agreement(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        if not context.reviewed:
            return [Table(name="agreement", title="模型与复核一致性", columns=["指标", "数值"], rows=[["复核通话", 0]])]
        rows = []
        for model, calls in group_by_model(context.reviewed).items():  # each bundle on its own heads
            schema = calls[0].schema or context.schema
            for h in agreement(calls, schema) if schema is not None else ():
                rows.append([model, f"{h.display}（{h.metric}）", h.overall.n, round_or_none(h.overall.accuracy, 3),
                             round_or_none(h.overall.kappa, 3)])
        return [Table(name="agreement", title="模型与复核一致性（本期已复核通话，按模型）",
                      columns=["模型", "维度", "复核通话", "准确率", "一致性系数"], rows=rows)]
