"""辅导与表扬: per agent the coaching notes reviewers sent about the period's calls and how many the agent read
(已阅), and the period's 表扬 examples — calls at the card's praise level (``praise_at``) or more, without a red line,
linked into the review UI."""

from __future__ import annotations

from ...store import Coaching
from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section

PRAISED = 20


class CoachingSection(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        start, end = context.period.utc
        counts = Coaching(context.store.engine).counts(start, end, context.agents)
        tables = []
        if counts:
            rows = [[agent, context.agent_name(agent), sent, read, round_or_none(100 * read / sent, 1), praise]
                    for agent, (sent, read, praise) in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))]
            tables.append(Table(name="coaching", title="辅导反馈（发送给坐席的复核意见）",
                                columns=["坐席", "姓名", "已发送", "已阅", "已阅率 %", "其中表扬"], rows=rows))
        card = next(iter(context.rows().cards(limit=1)), None)
        if card is not None and card.praise_at is not None:
            rows, links = [], {}
            for n, call in enumerate(context.rows().praised(card.praise_at, PRAISED)):
                when = context.local(call.started_at)
                rows.append([call.call_id, call.agent_id or "", context.agent_name(call.agent_id or ""),
                             f"{when:%Y-%m-%d %H:%M}" if when else "", call.total])
                links[n] = context.call_link(call.call_id)
            tables.append(Table(name="praise", title=f"表扬通话（{card.praise_at:g} 分及以上、无红线）", columns=["通话",
                                "坐席", "姓名", "开始时间", "得分"], rows=rows, links=links,
                                note=f"最多列出 {PRAISED} 通，得分高者在前；可在复核页面发送给坐席作为表扬"))
        return tables
