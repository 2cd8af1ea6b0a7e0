"""双评: the period's calls that went to two reviewers (store/double.py), how often the two agreed, and what still
waits for a lead's 仲裁 — the inspectors' subjectivity, measured on the calls the model expected them to split on."""

from __future__ import annotations

from ..context import ReportContext
from ..model import Table
from .base import Section


class DoubleReview(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        counts = context.rows().double_counts()
        if not counts.calls:
            return []
        agreement = None if counts.agreement is None else round(100 * counts.agreement, 1)
        row = [counts.calls, counts.pending, counts.agreed, counts.differs, counts.adjudicated, agreement]
        return [Table(name="double_review", title="双评与仲裁",
                      columns=["双评通话", "待第二位复核", "双评一致", "待仲裁", "已仲裁", "一致率 %"], rows=[row],
                      note="预测分歧大的通话由两位质检员独立复核；结果不一致时由组长仲裁，仲裁结果为最终得分。"
                           "一致率 = 双评一致 ÷ 两位都已复核的通话。")]
