"""分类统计: calls per category, for every head whose kind the report counts (the call category 来电类型: the call's
own metadata first, else the model's; topics 投诉主题: those over threshold), a reviewer's labels where they set them."""

from __future__ import annotations

from collections import Counter

from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section


class Categories(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        n_calls, schema = context.overall.calls, context.schema
        per_head: dict[str, Counter] = {}
        for (head, label), n in context.topics.items():
            per_head.setdefault(head, Counter())[label] = n
        known = [h.name for h in schema.heads if h.name in per_head] if schema is not None else []
        rows = []
        for head in known + sorted(set(per_head) - set(known)):
            dimension = schema[head] if head in known else None
            for label, n in per_head[head].most_common():
                name = dimension.classes.get(label, label) if dimension is not None else label
                rows.append([dimension.display if dimension is not None else head, name, n,
                             round_or_none(100 * n / n_calls if n_calls else None, 1)])
        return [Table(name="categories", title="分类统计（来电类型与投诉主题，已复核的以复核为准）",
                      columns=["维度", "类别", "通话数", "占比 %"], rows=rows,
                      note="来电类型以通话自带的类型为准，没有的用模型判断；一通电话可涉及多个投诉主题")]
