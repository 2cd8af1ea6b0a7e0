"""抽样覆盖: the sampling plan against the period's reviews — per agent, call category and time slot the planned
minimum, the calls reviewed, the calls there were, and the gap, with the strata still short named (no section
without a plan)."""

from __future__ import annotations

from ...store import KIND_NAMES
from ..context import ReportContext
from ..model import Table
from .base import Section


class Coverage(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        plan = context.store.plan
        if plan is None:
            return []
        strata = plan.coverage(context.rows().planned_calls())
        rows, gaps = [], []
        for s in strata:
            name = self._name(context, s.kind, s.value, plan.category_head)
            rows.append([KIND_NAMES[s.kind], name, s.minimum, s.reviewed, s.calls, s.gap, "达标" if not s.gap else f"缺 {s.gap} 通"])
            if s.gap:
                gaps.append(f"{KIND_NAMES[s.kind]}{name}缺 {s.gap} 通")
        note = (f"抽样计划「{plan.name}」：每位坐席 {plan.per_agent} 通、每类 {plan.per_category} 通、每时段 {plan.per_slot} 通；"
                + ("未达标：" + "；".join(gaps) if gaps else "全部达标")
                + "。本期通话少于计划数的分层，以全部复核为达标。")
        return [Table(name="coverage", title="抽样覆盖（计划与实际复核）",
                      columns=["维度", "分层", "计划（通）", "已复核", "本期通话", "缺口", "状态"], rows=rows, note=note)]

    @staticmethod
    def _name(context: ReportContext, kind: str, value: str, category_head: str | None) -> str:
        if kind == "agent":
            return f"{value} {context.agent_name(value)}".strip()
        schema = context.schema
        if kind == "business" and schema is not None and category_head in schema.head_names:
            return schema[category_head].classes.get(value, value)
        return value
