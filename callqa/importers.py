"""Turning transcripts from elsewhere into the call format: CSV exports of speech-to-text systems and call-center
platforms, one row per turn (utterance).

Which column holds what is data, not code (:class:`CsvMapping`, from ``--mapping FILE.yaml`` or command-line flags),
so an export from another platform is a new mapping, not a new importer. Rows of one call need not be adjacent; turns
keep the file's order, or are sorted by start time where there is one. A bad row is reported as
``file:line:column: message`` and its whole call is left out (a call with a missing turn would be judged on half a
conversation); every other call is written.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callqa.calls import Call
from callqa.jsonl import LineError
from callqa.schema import LabelSchema
from callqa.yamlfile import read_yaml, require_mapping, validate


class CsvMapping(BaseModel):
    """Which CSV column is which field of the call format."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(description="column with the call id (rows with the same id form one call)")
    speaker: str = Field(description="column telling who speaks: see agent_values / customer_values")
    text: str = Field(description="column with the utterance's text")
    start: str | None = Field(default=None, description="column with the turn's start time")
    end: str | None = Field(default=None, description="column with the turn's end time")
    time_unit: Literal["s", "ms"] = Field(default="s", description="unit of start/end: seconds or milliseconds")
    agent_id: str | None = None
    started_at: str | None = Field(default=None, description="column with the call's start (ISO 8601)")
    channel: str | None = Field(default=None, description="column with the call's channel (phone, chat …)")
    agent_values: tuple[str, ...] = Field(default=("agent", "坐席", "客服", "A", "0"),
                                          description="speaker values meaning the agent (e.g. stereo channel 0)")
    customer_values: tuple[str, ...] = Field(default=("customer", "客户", "用户", "C", "1"),
                                             description="speaker values meaning the customer")
    labels: dict[str, str] = Field(default={}, description="head → column holding the call's label (first non-empty "
                                   "value among the call's rows)")
    encoding: str = Field(default="utf-8-sig", description="utf-8-sig reads UTF-8 with or without Excel's BOM; gb18030 "
                          "reads GBK exports")
    delimiter: str = Field(default=",", min_length=1, max_length=1)

    @classmethod
    def from_yaml(cls, path: Path) -> CsvMapping:
        document = read_yaml(path, ValueError, "mapping")
        return validate(cls, document, ValueError, data=require_mapping(document, ValueError, "a CSV mapping"))

    def columns(self) -> list[str]:
        named = [self.call_id, self.speaker, self.text, self.start, self.end, self.agent_id, self.started_at,
                 self.channel, *self.labels.values()]
        return [c for c in named if c]


@dataclass
class _Draft:
    first_line: int
    turns: list[tuple[int, dict]]  # (line, turn)
    fields: dict
    labels: dict
    errors: list[LineError]


def _number(value: str) -> float | int | str:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def _seconds(value: str, unit: str) -> float:
    seconds = float(value) / (1000 if unit == "ms" else 1)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("not a finite, non-negative time")
    return round(seconds, 3)


def read_csv_calls(path: Path, mapping: CsvMapping, schema: LabelSchema | None = None) -> tuple[list[Call], list[LineError]]:
    """The calls of a CSV file, and every problem as a :class:`LineError` (line 1 is the header); with a schema,
    labels are checked against it too."""
    path = Path(path)
    errors: list[LineError] = []
    with open(path, encoding=mapping.encoding, newline="") as handle:
        reader = csv.DictReader(handle, delimiter=mapping.delimiter)
        header = reader.fieldnames or []
        missing = [c for c in mapping.columns() if c not in header]
        if missing:
            return [], [LineError(str(path), 1, "header", f"no column {', '.join(map(repr, missing))} (columns: "
                                                     f"{', '.join(header)})")]
        drafts: dict[str, _Draft] = {}
        for row in reader:
            call_id = (row[mapping.call_id] or "").strip()
            if not call_id:
                errors.append(LineError(str(path), reader.line_num, mapping.call_id, "empty call id"))
                continue
            draft = drafts.setdefault(call_id, _Draft(reader.line_num, [], {}, {}, []))
            _add_row(draft, row, reader.line_num, mapping, str(path))
    calls = []
    for call_id, draft in drafts.items():
        call, problems = _finish(call_id, draft, mapping, schema, str(path))
        errors += problems
        if call is not None:
            calls.append(call)
    errors.sort(key=lambda e: e.line)
    return calls, errors


def _add_row(draft: _Draft, row: dict, line: int, mapping: CsvMapping, path: str) -> None:
    """One CSV row into its call's draft: a turn, and the call's fields and labels where this row has them."""
    speaker = (row[mapping.speaker] or "").strip()
    turn: dict = {"text": row[mapping.text] or ""}
    if speaker in mapping.agent_values:
        turn["speaker"] = "agent"
    elif speaker in mapping.customer_values:
        turn["speaker"] = "customer"
    else:
        draft.errors.append(LineError(path, line, mapping.speaker, f"{speaker!r} is neither an agent value "
                                      f"({', '.join(mapping.agent_values)}) nor a customer value "
                                      f"({', '.join(mapping.customer_values)})"))
    for field in ("start", "end"):
        column = getattr(mapping, field)
        if column and (row[column] or "").strip():
            try:
                turn[field] = _seconds(row[column].strip(), mapping.time_unit)
            except ValueError:
                draft.errors.append(LineError(path, line, column, f"{row[column]!r} is not a time in "
                                              f"{'milliseconds' if mapping.time_unit == 'ms' else 'seconds'}"))
    draft.turns.append((line, turn))
    for field in ("agent_id", "started_at", "channel"):
        column = getattr(mapping, field)
        if column and (row[column] or "").strip():
            draft.fields.setdefault(field, row[column].strip())
    for head, column in mapping.labels.items():
        if (row[column] or "").strip():
            draft.labels.setdefault(head, _number(row[column].strip()))


def _finish(call_id: str, draft: _Draft, mapping: CsvMapping, schema: LabelSchema | None,
            path: str) -> tuple[Call | None, list[LineError]]:
    """A draft as a call (turns in time order where every turn has a start), or the problems that stop it."""
    if draft.errors:
        return None, draft.errors
    turns = draft.turns
    if all("start" in t for _, t in turns):
        turns = sorted(turns, key=lambda lt: lt[1]["start"])  # stable: equal starts keep file order
    problems = schema.check_labels(draft.labels) if schema is not None else []
    if problems:
        column = {f"labels.{head}": c for head, c in mapping.labels.items()}
        return None, [LineError(path, draft.first_line, column.get(f, f), m) for f, m in problems]
    try:
        return Call.model_validate({"call_id": call_id, **draft.fields, "labels": draft.labels,
                                    "turns": [t for _, t in turns]}), []
    except ValidationError as err:
        errors = []
        for e in err.errors():
            loc = [str(p) for p in e["loc"]]
            line = draft.first_line
            if len(loc) >= 2 and loc[0] == "turns" and loc[1].isdigit():
                line = turns[int(loc[1])][0]
            errors.append(LineError(path, line, ".".join(loc), e["msg"]))
        return None, errors
