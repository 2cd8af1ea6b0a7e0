"""来电分析: why customers call and how calls go — per call category and topic, per hour of the day and per weekday
(in the report's time zone): calls, average call length, talk and silence, interruptions, transfers and repeat calls
where the metadata has them, the predicted resolution rate, and for chats the first and average response times in
place of talk-time measures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ...store import CallFigures
from ..context import ReportContext, round_or_none
from ..model import Table
from .base import Section

WEEKDAYS = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]
COLUMNS = ["通话数", "平均时长（秒）", "静音占比 %", "抢话（次/通）", "转接（次/通）", "重复来电 %", "预测解决率 %",
           "在线会话数", "首次响应（秒）", "平均响应（秒）"]
NOTE = ("时长、静音、抢话按语音通话（有每句起止时间的）计；首次响应、平均响应按在线会话计；转接、重复来电取自通话的元数据"
        "（meta.transfers、meta.repeat_call），没有的不计入；预测解决率为模型判断已解决的通话占比。空白表示没有可计算的通话。")


def _mean(values: Iterable[float | int | bool | None]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None


@dataclass
class Group:
    """The calls of one row (a category, an hour, a weekday)."""

    calls: list[CallFigures] = field(default_factory=list)

    def row(self) -> list:
        voice = [c for c in self.calls if not c.chat]
        chat = [c for c in self.calls if c.chat]
        timed = [c for c in voice if c.duration and c.silence_seconds is not None]
        silence = (100 * sum(c.silence_seconds for c in timed) / sum(c.duration for c in timed)) if timed else None
        return [len(self.calls),
                round_or_none(_mean(c.duration for c in voice), 1),
                round_or_none(silence, 1),
                round_or_none(_mean(c.interruptions for c in voice), 2),
                round_or_none(_mean(c.transfers for c in self.calls), 2),
                round_or_none(_percent(c.repeat_call for c in self.calls), 1),
                round_or_none(_percent(c.resolved for c in self.calls), 1),
                len(chat),
                round_or_none(_mean(c.first_response for c in chat), 1),
                round_or_none(_mean(c.avg_response for c in chat), 1)]


def _percent(flags: Iterable[bool | None]) -> float | None:
    share = _mean(flags)
    return None if share is None else 100 * share


def grouped(calls: list[CallFigures], keys: Callable[[CallFigures], Iterable]) -> dict:
    groups: dict = defaultdict(Group)
    for call in calls:
        for key in keys(call):
            groups[key].calls.append(call)
    return groups


class CallAnalytics(Section):
    def tables(self, context: ReportContext) -> list[Table]:
        calls = context.call_measures
        if not calls:
            return []
        local = {c.call_id: context.local(c.started_at) for c in calls if c.started_at is not None}
        by_hour = grouped(calls, lambda c: [local[c.call_id].hour] if c.call_id in local else [])
        by_day = grouped(calls, lambda c: [local[c.call_id].weekday()] if c.call_id in local else [])
        counted = context.counted_by_call
        by_category = grouped(calls, lambda c: counted.get(c.call_id, []))
        return [
            Table(name="calls-by-category", title="来电分析：按来电类型与投诉主题", columns=["维度", "类别", *COLUMNS],
                  rows=[[*self._category(context, head, label), *group.row()]
                        for (head, label), group in sorted(by_category.items(), key=lambda kv: self._order(context, kv))],
                  note=NOTE),
            Table(name="calls-by-hour", title="来电分析：按时段", columns=["时段", *COLUMNS],
                  rows=[[f"{hour:02d}:00–{hour + 1:02d}:00", *by_hour[hour].row()] for hour in sorted(by_hour)],
                  note=f"按报告时区 {context.tz_name} 的来电时间"),
            Table(name="calls-by-weekday", title="来电分析：按星期", columns=["星期", *COLUMNS],
                  rows=[[WEEKDAYS[day], *by_day[day].row()] for day in sorted(by_day)]),
        ]

    @staticmethod
    def _category(context: ReportContext, head: str, label: str) -> list[str]:
        schema = context.schema
        if schema is None or head not in schema.head_names:
            return [head, label]
        return [schema[head].display, schema[head].classes.get(label, label)]

    @staticmethod
    def _order(context: ReportContext, item) -> tuple:
        (head, label), group = item
        heads = context.schema.head_names if context.schema is not None else []
        return (heads.index(head) if head in heads else len(heads), head, -len(group.calls), label)
