"""客户满意度: what customers said in surveys about the period's calls, as a second view of quality — answers and
response rate, satisfaction per agent and per call type / topic, the model's satisfaction-like head (``role:
satisfaction``) against the surveys (Spearman's ρ and a confusion table), and the calls where model and customer
disagree most, linked into the review UI. No section when no call of the period has an answer."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy.stats import spearmanr

from callqa.analytics import DISPUTED_GAP, scaled, survey_gap

from ...store import Answered
from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section

MOST_DISAGREED = 10
SATISFIED = 4  # 满意率: the share of answers at 4 (满意) or 5 (非常满意)


def _summary(answers: list[Answered]) -> list:
    values = [a.satisfaction for a in answers]
    return [len(answers), round_or_none(float(np.mean(values)), 2),
            round_or_none(100 * float(np.mean([v >= SATISFIED for v in values])), 1)]


class Satisfaction(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        answers = context.answers
        if not answers:
            return []
        head = context.schema.with_role("satisfaction") if context.schema is not None else None
        predicted = {a.call_id: p for a in answers if (p := _predicted(a, head)) is not None}
        return [self._overview(context, answers, head, predicted), self._per_agent(context, answers),
                self._per_category(context, answers), *self._against_model(context, answers, head, predicted)]

    def _overview(self, context: ReportContext, answers: list[Answered], head, predicted: dict) -> Table:
        calls = context.overall.calls
        answered = len({a.call_id for a in answers})
        pairs = [(predicted[a.call_id][1], a.satisfaction) for a in answers if a.call_id in predicted]
        rho = spearmanr(*zip(*pairs)).statistic if len(pairs) >= 3 and len({p for p, _ in pairs}) > 1 and \
            len({s for _, s in pairs}) > 1 else None
        n, mean, satisfied = _summary(answers)
        rows = [["回访答复数", n], ["有答复的通话", answered],
                ["回应率 %", round_or_none(100 * answered / calls, 1) if calls else None],
                ["平均满意度（1–5）", mean], ["满意率 %（4 分及以上）", satisfied],
                [f"模型「{head.display}」与客户评分的 Spearman ρ" if head else "模型与客户评分的 Spearman ρ",
                 round_or_none(rho, 3)]]
        note = ("Spearman ρ：模型预测的期望分与客户评分的等级相关（1 为完全一致）" if head else
                "标签方案中没有 role: satisfaction 的评分项，无法与模型对照")
        return Table(name="satisfaction", title="客户满意度（回访、短信、IVR、在线评价）", columns=["指标", "数值"],
                     rows=rows, note=note)

    def _per_agent(self, context: ReportContext, answers: list[Answered]) -> Table:
        by_agent: dict[str, list[Answered]] = defaultdict(list)
        for a in answers:
            by_agent[a.agent_id or ""].append(a)
        rows = [[agent, context.agent_name(agent), *_summary(group)]
                for agent, group in sorted(by_agent.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
        return Table(name="satisfaction-agents", title="客户满意度：按坐席", columns=["坐席", "姓名", "答复数",
                     "平均满意度", "满意率 %"], rows=rows)

    def _per_category(self, context: ReportContext, answers: list[Answered]) -> Table:
        counted = context.counted_by_call
        groups: dict[tuple[str, str], list[Answered]] = defaultdict(list)
        for a in answers:
            for key in counted.get(a.call_id, []):
                groups[key].append(a)
        schema = context.schema
        rows = []
        for (name, label), group in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1]), kv[0][1])):
            head = schema[name] if schema is not None and name in schema.head_names else None
            rows.append([head.display if head else name, head.classes.get(label, label) if head else label,
                         *_summary(group)])
        return Table(name="satisfaction-categories", title="客户满意度：按来电类型与投诉主题",
                     columns=["维度", "类别", "答复数", "平均满意度", "满意率 %"], rows=rows)

    def _against_model(self, context: ReportContext, answers: list[Answered], head, predicted: dict) -> list[Table]:
        if head is None or not predicted:
            return []
        names = list(head.classes.values())
        matrix = {score: [0] * len(names) for score in range(1, 6)}
        gaps = []
        for a in answers:
            if a.call_id not in predicted:
                continue
            index, expected = predicted[a.call_id]
            matrix[int(round(a.satisfaction))][index] += 1
            gaps.append((survey_gap(scaled(head, expected), a.satisfaction), a, expected))  # both on 0..1
        confusion = Table(name="satisfaction-vs-model", title=f"客户评分与模型「{head.display}」对照（行：客户评分，列：模型）",
                          columns=["客户评分", *names], rows=[[score, *counts] for score, counts in matrix.items()])
        rows, links = [], {}
        for n, (gap, a, expected) in enumerate(sorted(gaps, key=lambda g: (-g[0], g[1].call_id))[:MOST_DISAGREED]):
            rows.append([a.call_id, context.agent_name(a.agent_id or "") or (a.agent_id or ""), a.channel,
                         round_or_none(a.satisfaction, 1), round_or_none(expected, 2), round_or_none(gap, 2)])
            links[n] = context.call_link(a.call_id)
        disagreed = Table(name="satisfaction-disagreed", title=f"模型与客户分歧最大的 {len(rows)} 通（点击打开复核页面）",
                          columns=["通话", "坐席", "渠道", "客户评分", f"模型{head.display}期望分", "分歧（0–1）"],
                          rows=rows, links=links, note=f"分歧：两者各自换算到 0–1 后之差的绝对值；{DISPUTED_GAP:g} 及以上的"
                          f"共 {sum(g >= DISPUTED_GAP for g, _, _ in gaps)} 条，复核队列可按「客户评价与模型不一致」筛选")
        return [confusion, disagreed]


def _predicted(answer: Answered, head) -> tuple[int, float] | None:
    """(level index, expected score) the model gave the call on the satisfaction head."""
    score = (answer.scores.get("scores") or {}).get(head.name) if head is not None else None
    if not score or score.get("expected") is None or score.get("level") not in head.classes:
        return None
    return head.class_ids.index(score["level"]), float(score["expected"])
