"""校准: the calibration sessions closed in the period, oldest first, with each head's Krippendorff's α — how far the
inspectors agree with each other, session after session (质检结果受质检人员主观因素影响: this is the measure)."""

from __future__ import annotations

from ...store import Calibrations
from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section


class CalibrationSection(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        if context.schema is None:
            return []
        start, end = context.period.utc
        closed = Calibrations(context.store.engine, context.schema).closed_between(start, end)
        if not closed:
            return []
        heads = [h for h in context.schema.heads if not h.spec.multiple]
        rows = [[s.title, f"{s.closed_at.astimezone(context.tz):%Y-%m-%d}", s.calls, len(s.reviewers),
                 *(round_or_none(s.alpha.get(h.name), 3) for h in heads)] for s in closed]
        return [Table(name="calibration", title="校准（复核员之间的一致性）",
                      columns=["校准会话", "结束日期", "通话数", "复核员数", *(f"{h.display} α" for h in heads)], rows=rows,
                      note="Krippendorff's α：1 为完全一致，0 为与随机相当；空白表示无法计算（只有一种标签）。")]
