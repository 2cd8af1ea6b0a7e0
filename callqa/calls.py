"""The call transcript format: one call per JSON line (see datasets/README.md)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictStr,
    field_validator,
)

Speaker = Literal["agent", "customer"]

# Bounds of the format itself, so a data file, /score and the review store accept exactly the same calls (the
# scoring service adds tighter, configurable limits on top).
MAX_ID = 200
MAX_TURNS = 10_000
MAX_TEXT = 100_000
MAX_SECONDS = 86_400.0  # a turn starts and ends within a day of the call's start
FIRST_YEAR, LAST_YEAR = 1970, 2100
# The same bounds as a JSON Schema pattern (a date from 1970-01-01 to 2099-12-31), for tools outside Python.
YEAR_PATTERN = r"^(19[7-9]\d|20\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
MAX_META_DEPTH = 8


# A call or agent id: 1–200 characters, no "/" (ids are path segments in the review API), no control characters
# (C0, DEL, C1: CR/LF would forge log lines) and no invisible format characters (zero-width, bidi overrides, BOM)
# that make two ids look alike. A pattern, not code, so the JSON Schema and the OpenAPI spec say exactly this; written
# with \xXX and \uXXXX escapes, which Python, Rust (pydantic) and JavaScript read alike.
ID_PATTERN = r"^[^/\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]+$"
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)]
ClassId = Annotated[StrictStr, Field(min_length=1, max_length=100)]


def _json_integer(value: Any) -> Any:
    # JSON Schema's integer is a number with no fraction: 12 and 12.0 (clients and the OpenAPI document agree), never
    # "12", true or 12.5 (StrictInt refuses those).
    return int(value) if isinstance(value, float) and value.is_integer() else value


def json_int(**bounds: int) -> Any:
    """A JSON integer within ``bounds`` (ge, gt, le, lt). The bounds sit inside the conversion, so the JSON Schema
    states them (minimum, maximum) and the error names them."""
    return Annotated[int, Strict(), Field(**bounds), BeforeValidator(_json_integer)]


JsonInt = json_int()
LevelInt = json_int(ge=-1_000_000, le=1_000_000)


def _finite_json(value: Any, depth: int = 0) -> Any:
    """meta is free-form JSON, but finite and shallow: Python's JSON reader takes 1e400 as inf and NaN as nan."""
    if depth > MAX_META_DEPTH:
        raise ValueError(f"nested deeper than {MAX_META_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if isinstance(value, dict):
        for k, v in value.items():
            if len(k) > MAX_ID:
                raise ValueError(f"key longer than {MAX_ID} characters")
            _finite_json(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _finite_json(v, depth + 1)
    return value


class Votes(BaseModel):
    """Several annotators' choices for one head (calibration sessions, STC-3's 19 annotators): class id → count."""

    model_config = ConfigDict(extra="forbid")

    # The JSON Schema says what the validator below does: at least one class with a vote.
    votes: dict[ClassId, json_int(ge=0, le=1_000_000)] = Field(max_length=1000, json_schema_extra={
        "minProperties": 1, "not": {"additionalProperties": {"maximum": 0}}})

    @field_validator("votes")
    @classmethod
    def _some_votes(cls, votes: dict[str, int]) -> dict[str, int]:
        if sum(votes.values()) == 0:
            raise ValueError("votes must count at least one vote")
        return votes


# One annotator's value: a level id (4, "resolved") or a list of classes (multilabel topics). What a reviewer sends.
SingleLabel = LevelInt | ClassId | Annotated[list[ClassId], Field(max_length=1000)]
# A label in a file: one annotator's value, or several annotators' votes. None = not labeled.
Label = SingleLabel | Votes
Labels = Annotated[dict[Annotated[str, Field(min_length=1, max_length=100)], Label | None], Field(max_length=100)]
# Strict: a number, not true/false or "1.5" (which lax parsing would turn into seconds).
Seconds = Annotated[float, Field(strict=True, ge=0, le=MAX_SECONDS, allow_inf_nan=False)]


class Turn(BaseModel):
    """One turn of a call: who spoke, what they said, when (seconds from the call's start, where known)."""

    model_config = ConfigDict(extra="forbid")

    speaker: Speaker
    # The pattern is for tools reading the JSON Schema (the validator below says why a blank text is refused).
    text: str = Field(min_length=1, max_length=MAX_TEXT, json_schema_extra={"pattern": r"\S"})
    start: Seconds | None = Field(default=None, description="seconds from the start of the call")
    end: Seconds | None = None
    labels: Labels = Field(default_factory=dict, description="turn-level labels, e.g. STC-3 nuggets")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text


class Call(BaseModel):
    """One call: who spoke what, and (for training data) its labels. Labels are checked against a schema separately."""

    model_config = ConfigDict(extra="forbid")

    call_id: Identifier = Field(description="1–200 characters; no '/', control or format characters")
    agent_id: Identifier | None = None
    started_at: datetime | None = Field(default=None, description=f"ISO 8601, between {FIRST_YEAR} and {LAST_YEAR}",
                                        json_schema_extra={"pattern": YEAR_PATTERN})
    channel: str | None = Field(default=None, max_length=50)
    turns: list[Turn] = Field(min_length=1, max_length=MAX_TURNS)
    labels: Labels = Field(default_factory=dict)
    meta: Annotated[dict[str, Any], AfterValidator(_finite_json)] = Field(default_factory=dict)

    @field_validator("started_at", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        # Lax parsing would take a number as Unix seconds; the format says ISO 8601 text.
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("must be ISO 8601 text, e.g. 2026-03-02T09:15:00+08:00")
        return value

    @field_validator("started_at")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        # Far from the calendar's ends, so converting it to UTC for storage cannot overflow.
        if value is not None and not FIRST_YEAR <= value.year < LAST_YEAR:
            raise ValueError(f"must be between {FIRST_YEAR} and {LAST_YEAR}")
        return value

    def label(self, head: str) -> Label | None:
        return self.labels.get(head)
