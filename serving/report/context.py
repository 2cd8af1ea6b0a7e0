"""What every section of a report reads: the period, whose calls, the store's rows for them (each aggregate asked
for once, when the first section needs it) and how to name agents, classes and links."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from callqa.schema import LabelSchema

from ..directory import AgentDirectory
from ..store import (
    Answered,
    CallFigures,
    Feedbacks,
    ItemInfo,
    ItemSums,
    ReportRows,
    ReviewedCall,
    ReviewStore,
    Sums,
    all_agents,
)
from .period import Period

TREND_PERIODS = 6


@dataclass
class ReportContext:
    store: ReviewStore
    period: Period
    agents: list[str] | None  # None: every agent
    scope: str  # 全部坐席, 班组 …, 坐席 …
    schema: LabelSchema | None
    directory: AgentDirectory
    tz: ZoneInfo
    tz_name: str
    ui_base: str

    def rows(self, period: Period | None = None) -> ReportRows:
        start, end = (period or self.period).utc
        return self.store.report_rows(start, end, self.agents)

    @functools.cached_property
    def agent_sums(self) -> dict[str, Sums]:
        return self.rows().agent_sums()

    @functools.cached_property
    def overall(self) -> Sums:
        return all_agents(self.agent_sums)

    @functools.cached_property
    def item_sums(self) -> dict[tuple[str, str], ItemSums]:
        return self.rows().item_sums()

    @functools.cached_property
    def per_item(self) -> dict[str, ItemSums]:
        """Item → sums over every agent."""
        out: dict[str, ItemSums] = {}
        for (_, item), s in self.item_sums.items():
            out.setdefault(item, ItemSums()).add(s.calls, s.points, s.deducted_calls, s.deductions)
        return out

    @functools.cached_property
    def items(self) -> dict[str, ItemInfo]:
        return self.rows().item_info()

    @functools.cached_property
    def trend_periods(self) -> list[Period]:
        return self.period.last(TREND_PERIODS)

    @functools.cached_property
    def trend_sums(self) -> list[dict[str, Sums]]:
        return [self.rows(p).agent_sums() for p in self.trend_periods[:-1]] + [self.agent_sums]

    @functools.cached_property
    def topics(self) -> Counter:
        return self.rows().topic_counts()

    @functools.cached_property
    def call_measures(self) -> list[CallFigures]:
        return self.rows().call_measures()

    @functools.cached_property
    def answers(self) -> list[Answered]:
        start, end = self.period.utc
        return Feedbacks(self.store.engine).answered(start, end, self.agents)

    @functools.cached_property
    def counted_by_call(self) -> dict[str, list[tuple[str, str]]]:
        return self.rows().counted_by_call()

    @functools.cached_property
    def reviewed(self) -> list[ReviewedCall]:
        """The period's reviewed calls one by one (agreement compares each call's labels with the model's)."""
        return list(self.store.reviewed(started=self.period.utc, agents=self.agents))

    @property
    def source(self) -> str:
        """Which scores the figures count, in words."""
        overall = self.overall
        return (f"模型评分卡 {overall.calls - overall.reviewed} 通；复核员评分 {overall.reviewed} 通（已复核的通话以复核员"
                f"给分为准：手动给分，或模型扣分中被标为误判的分数退回）")

    def local(self, moment: datetime | None) -> datetime | None:
        """A stored time (aware, or naive UTC as SQLite keeps it) in the report's time zone."""
        return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(self.tz) if moment is not None else None

    def call_link(self, call_id: str) -> str:
        """The call's page in the review UI (it opens after login)."""
        return f"{self.ui_base}/review/?call={quote(call_id, safe='')}"

    def agent_name(self, agent: str) -> str:
        """The agent's name where the directory has them, else ""."""
        return self.directory.name(agent) if agent in self.directory.agents else ""

    def agents_by_calls(self) -> list[str]:
        return sorted(self.agent_sums, key=lambda a: (-(self.agent_sums[a].calls), a))


def round_or_none(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def points_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
