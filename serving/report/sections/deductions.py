"""主要问题: the rules that deducted on the most calls (red lines too: 禁语 costs no points but zeroes the call), by
their Chinese titles, with redacted examples from the model's cards."""

from __future__ import annotations

from callqa.redact import redact

from ..context import ReportContext
from ..model import Table
from .base import Section

TOP_RULES = 5
EXAMPLES_PER_RULE = 3


class Deductions(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        rules, items, rows = context.rows().rule_sums(), context.items, []
        for item, rule in sorted(rules, key=lambda r: (-rules[r][1], -rules[r][2], r))[:TOP_RULES]:
            title, calls, hits = rules[(item, rule)]
            rows.append([title, items[item].title if item in items else item, calls, hits,
                         "；".join(f"「{text}」" for text in examples(context, item, rule))])
        return [Table(name="deductions", title="主要问题（扣分通话最多的规则，红线在内；举例已脱敏）",
                      columns=["问题（规则）", "评分项", "被扣分通话", "扣分次数", "举例"], rows=rows)]


def examples(context: ReportContext, item: str, rule: str) -> list[str]:
    """Up to EXAMPLES_PER_RULE redacted spans the rule deducted on, one per call."""
    out = []
    for card in context.rows().cards(item=item, rule=rule, limit=EXAMPLES_PER_RULE):
        found = card.items().get(item)
        hit = next((d for d in (found.deductions if found else ()) if d.rule == rule), None)
        if hit is not None:
            out.append(redact(hit.text or "") or "（时间类扣分，无文字）")
    return out
