"""Reading a survey export (满意度回访, 短信评价, IVR 按键评价, 在线问卷) as customer feedback: a CSV with one answer
per row and a small YAML mapping that names its columns and maps its rating scale to 1–5 satisfaction.

    columns: {call_id: 通话ID, answered: 回访时间, channel: 渠道, rating: 满意度, comment: 客户意见}
    channel: 回访                 # when the file has no channel column: every answer came this way
    scale: {非常满意: 5, 满意: 4, 一般: 3, 不满意: 2, 非常不满意: 1}   # a worded scale, or
    numeric: [1, 10]              # a numbered one, mapped linearly onto 1–5

Every bad row is reported as ``file:line: field: problem``; the good rows are kept.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from callqa.yamlfile import read_yaml, require_mapping, validate

from .store import FeedbackIn

MAX_ERRORS = 50


class SurveyColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: str
    rating: str
    answered: str | None = None
    channel: str | None = None
    comment: str | None = None


class SurveyMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: SurveyColumns
    channel: str | None = Field(default=None, description="the channel of every answer when the file has no column")
    scale: dict[str, float] | None = Field(default=None, description="a worded rating → 1–5")
    numeric: tuple[float, float] | None = Field(default=None, description="[lowest, highest] of a numbered rating")
    encoding: str = "utf-8-sig"
    delimiter: str = Field(default=",", min_length=1, max_length=1)

    @model_validator(mode="after")
    def _one_scale(self) -> SurveyMapping:
        if (self.scale is None) == (self.numeric is None):
            raise ValueError("give the rating's scale: either scale (words → 1–5) or numeric ([lowest, highest])")
        if self.scale is not None and any(not 1 <= v <= 5 for v in self.scale.values()):
            raise ValueError("scale: every rating maps to 1–5")
        if self.numeric is not None and self.numeric[0] >= self.numeric[1]:
            raise ValueError("numeric: [lowest, highest] with lowest below highest")
        if self.columns.channel is None and self.channel is None:
            raise ValueError("name the channel column (columns.channel) or the channel of every answer (channel)")
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> SurveyMapping:
        document = read_yaml(path, ValueError, "survey mapping")
        return validate(cls, document, ValueError, data=require_mapping(document, ValueError, "a survey mapping"))

    def satisfaction(self, rating: str) -> float:
        """The rating on 1–5; ValueError naming the scale when it is not on it."""
        text = rating.strip()
        if self.scale is not None:
            if text not in self.scale:
                raise ValueError(f"{text!r} is not on the scale ({', '.join(self.scale)})")
            return float(self.scale[text])
        low, high = self.numeric
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number from {low:g} to {high:g}") from None
        if not low <= value <= high:
            raise ValueError(f"{value:g} is outside {low:g}–{high:g}")
        return 1 + 4 * (value - low) / (high - low)


def read_survey(path: Path, mapping: SurveyMapping) -> tuple[list[FeedbackIn], list[str]]:
    """(answers, problems): every row that reads as an answer, and ``file:line: field: problem`` for the others."""
    answers, problems = [], []
    cols = mapping.columns
    with open(path, encoding=mapping.encoding, newline="") as handle:
        reader = csv.DictReader(handle, delimiter=mapping.delimiter)
        missing = [c for c in cols.model_dump().values() if c and c not in (reader.fieldnames or [])]
        if missing:
            return [], [f"{path}:1: header: no column {', '.join(missing)} (columns: {', '.join(reader.fieldnames or [])})"]
        for line, row in enumerate(reader, start=2):
            try:
                answers.append(_answer(row, mapping))
            except ValidationError as err:
                first = err.errors()[0]
                problems.append(f"{path}:{line}: {'.'.join(map(str, first['loc']))}: {first['msg']}")
            except FieldProblem as err:
                problems.append(f"{path}:{line}: {err.field}: {err}")
    return answers, problems


class FieldProblem(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _answer(row: dict, mapping: SurveyMapping) -> FeedbackIn:
    cols = mapping.columns
    rating = (row.get(cols.rating) or "").strip()
    answered = (row.get(cols.answered) or "").strip() if cols.answered else ""
    try:
        satisfaction = mapping.satisfaction(rating)
    except ValueError as err:
        raise FieldProblem(cols.rating, str(err)) from None
    try:
        when = datetime.fromisoformat(answered) if answered else None
    except ValueError:
        raise FieldProblem(cols.answered, f"{answered!r} is not a time like 2026-03-05 14:30") from None
    return FeedbackIn.model_validate({
        "call_id": (row.get(cols.call_id) or "").strip(), "answered": when,
        "channel": (row.get(cols.channel) or "").strip() if cols.channel else mapping.channel,
        "rating": rating[:50], "satisfaction": satisfaction,
        "comment": (row.get(cols.comment) or "").strip()[:2000] if cols.comment else ""}, strict=False)
