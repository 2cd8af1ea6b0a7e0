"""分类统计: calls per category (the model's topics, a reviewer's where they set them)."""

from __future__ import annotations

from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section


class Categories(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        n_calls, schema, rows = context.overall.calls, context.schema, []
        for (head, topic), n in context.topics.most_common():
            name = topic
            if schema is not None and head in schema.head_names:
                name = schema[head].classes.get(topic, topic)
            rows.append([name, n, round_or_none(100 * n / n_calls if n_calls else None, 1)])
        return [Table(name="categories", title="分类统计（模型话题，已复核的以复核为准）",
                      columns=["类别", "通话数", "占比 %"], rows=rows, note="一通电话可属多个类别")]
