"""The call transcript format: one call per JSON line (see datasets/README.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, StrictInt, StrictStr, field_validator

Speaker = Literal["agent", "customer"]


class Votes(BaseModel):
    """Several annotators' choices for one head (calibration sessions, STC-3's 19 annotators): class id → count."""

    model_config = ConfigDict(extra="forbid")

    votes: dict[str, NonNegativeInt]

    @field_validator("votes")
    @classmethod
    def _some_votes(cls, votes: dict[str, int]) -> dict[str, int]:
        if sum(votes.values()) == 0:
            raise ValueError("votes must count at least one vote")
        return votes


# One value (a level id: 4, "resolved"), a list of classes (multilabel topics), or votes. None = not labeled.
Label = StrictInt | StrictStr | list[StrictStr] | Votes


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker: Speaker
    text: str = Field(min_length=1)
    start: float | None = Field(default=None, ge=0, description="seconds from the start of the call")
    end: float | None = Field(default=None, ge=0)
    labels: dict[str, Label | None] = Field(default_factory=dict, description="turn-level labels, e.g. STC-3 nuggets")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text


class Call(BaseModel):
    """One call: who spoke what, and (for training data) its labels. Labels are checked against a schema separately."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(min_length=1)
    agent_id: str | None = None
    started_at: datetime | None = None
    channel: str | None = None
    turns: list[Turn] = Field(min_length=1)
    labels: dict[str, Label | None] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)

    def label(self, head: str) -> Label | None:
        return self.labels.get(head)
