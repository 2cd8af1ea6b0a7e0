"""抽样计划: which calls a QA team must review each period so that the sample covers every agent, call type and
time slot (样本抽取应确保覆盖不同的客服人员、业务类型、时间段), and which calls the model flags for review first.

A plan is YAML (``configs/sampling/*.yaml``, named in the serving config's ``review.plan``). The queue follows it —
flagged calls first, then the calls of strata still short of their minimum this period, then the random 抽检 share,
then the queue's order — and the report's 抽样覆盖 section shows planned against reviewed per stratum with the gaps
named. Both ask :meth:`SamplingPlan.coverage`, the one count of what the period's reviews cover.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callqa.resources import config_dir
from callqa.yamlfile import read_yaml, require_mapping, validate

PLAN_DIR = config_dir("sampling")


class PlanError(ValueError):
    """A sampling plan that cannot be used; the message names the file, line and key."""


class Flags(BaseModel):
    """Calls the model flags, reviewed before any stratum."""

    model_config = ConfigDict(extra="forbid")

    red_line: bool = Field(default=True, description="calls whose scorecard hit a red line (红线)")
    lowest_share: float | None = Field(default=None, gt=0, le=1, description="calls whose total is at most this share "
                                       "of the card's maximum (0.6: 60 points of 100 or less)")
    disagreement: float | None = Field(default=None, gt=0, le=1, description="calls whose most uncertain head's "
                                       "normalised entropy is at least this: where reviewers would disagree")


class SamplingPlan(BaseModel):
    """Minimum reviewed calls per period and stratum, and the calls flagged first."""

    model_config = ConfigDict(extra="forbid")

    name: str
    period: str = Field(default="month", pattern="^(month|week)$", description="coverage counts per calendar month or "
                        "ISO week, in the plan's time zone")
    time_zone: str = "Asia/Shanghai"
    per_agent: int = Field(default=0, ge=0, description="reviewed calls per agent per period, at least")
    category_head: str | None = Field(default=None, description="a head the report counts (来电类型 call_type, 投诉主题 "
                                      "topics) whose classes are strata")
    per_category: int = Field(default=0, ge=0, description="reviewed calls per class of category_head, at least")
    slots: dict[str, tuple[int, int]] = Field(default={}, description="time slot → [first hour, end hour) local, "
                                              "e.g. 早班: [8, 16]; an end below the start wraps past midnight")
    holidays: list[date] = Field(default=[], description="days whose calls fall in the 节假日 slot, whatever the hour")
    per_slot: int = Field(default=0, ge=0, description="reviewed calls per time slot (节假日 included), at least")
    flags: Flags = Flags()

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("slots")
    @classmethod
    def _hours(cls, value: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        for name, (start, end) in value.items():
            if not (0 <= start <= 23 and 1 <= end <= 24 and start != end):
                raise ValueError(f"slot {name}: hours are 0–23 then 1–24, and differ (got [{start}, {end}])")
        return value

    @model_validator(mode="after")
    def _category(self) -> SamplingPlan:
        if self.per_category and not self.category_head:
            raise ValueError("per_category needs category_head: the head whose classes are the strata")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def slot_of(self, started: datetime | None) -> str | None:
        """The time slot of a call started at ``started`` (aware, or naive UTC): 节假日 on a holiday, else the first
        slot whose hours hold it."""
        if started is None or not self.slots and not self.holidays:
            return None
        local = (started if started.tzinfo else started.replace(tzinfo=ZoneInfo("UTC"))).astimezone(self.tz)
        if local.date() in self.holidays:
            return HOLIDAY
        for name, (start, end) in self.slots.items():
            if start <= local.hour < end or (end < start and (local.hour >= start or local.hour < end)):
                return name
        return None

    def coverage(self, calls: Iterable[PlannedCall]) -> list[Stratum]:
        """Per stratum of this plan: the minimum, the period's reviewed calls in it and the calls it has at all."""
        reviewed, present = Counter(), Counter()
        for call in calls:
            for key in self.strata_of(call):
                present[key] += 1
                reviewed[key] += call.reviewed
        minimum = {"agent": self.per_agent, "business": self.per_category, "slot": self.per_slot}
        return [Stratum(kind, value, minimum[kind], reviewed[(kind, value)], present[(kind, value)])
                for kind, value in sorted(present, key=lambda k: (ORDER.index(k[0]), k[1])) if minimum[kind]]

    def strata_of(self, call: PlannedCall) -> list[tuple[str, str]]:
        out = []
        if self.per_agent and call.agent_id:
            out.append(("agent", call.agent_id))
        if self.per_category:
            out += [("business", label) for head, label in call.counted if head == self.category_head]
        slot = self.slot_of(call.started_at) if self.per_slot else None
        if slot is not None:
            out.append(("slot", slot))
        return out


HOLIDAY = "节假日"
ORDER = ("agent", "business", "slot")
KIND_NAMES = {"agent": "坐席", "business": "业务类型", "slot": "时段"}


@dataclass(frozen=True)
class PlannedCall:
    """What the plan needs of one call of the period."""

    agent_id: str | None
    started_at: datetime | None
    counted: tuple[tuple[str, str], ...]  # (head, class) the report counts it under
    reviewed: bool


@dataclass(frozen=True)
class Stratum:
    kind: str  # agent, category, slot
    value: str
    minimum: int
    reviewed: int
    calls: int

    @property
    def gap(self) -> int:
        """Reviews still missing: the minimum, or every call the stratum has when it has fewer."""
        return max(0, min(self.minimum, self.calls) - self.reviewed)


def load_plan(name_or_path: str | Path) -> SamplingPlan:
    """A plan by file path, or by the name of one shipped in configs/sampling (``default``)."""
    path = Path(name_or_path)
    if not (path.suffix in {".yaml", ".yml"} or path.exists()):
        shipped = PLAN_DIR / f"{name_or_path}.yaml"
        if not shipped.exists():
            known = ", ".join(sorted(p.stem for p in PLAN_DIR.glob("*.yaml")))
            raise PlanError(f"no sampling plan {str(name_or_path)!r}: not a file, and not a shipped plan ({known})")
        path = shipped
    document = read_yaml(path, PlanError, "sampling plan")
    data = dict(require_mapping(document, PlanError, "a sampling plan"))
    data.setdefault("name", path.stem)
    return validate(SamplingPlan, document, PlanError, data=data)
