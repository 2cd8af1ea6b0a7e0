"""Reading and writing call files (JSONL). Every bad line is reported as file:line:field; none is dropped silently."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from callqa.calls import Call
from callqa.schema import LabelSchema


@dataclass(frozen=True)
class LineError:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.field}: {self.message}"


@dataclass(frozen=True)
class CallLine:
    """A valid call with where it came from; ``raw`` is the line as read, so splits copy data byte for byte."""

    path: str
    line: int
    raw: str
    call: Call


@dataclass
class CallFile:
    path: str
    calls: list[CallLine] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class CallFileError(ValueError):
    """A call file with bad lines, raised by :func:`load_calls`; carries every error, not only the first."""

    def __init__(self, errors: list[LineError], shown: int = 20):
        self.errors = errors
        listed = "\n".join(f"  {e}" for e in errors[:shown])
        more = f"\n  … and {len(errors) - shown} more" if len(errors) > shown else ""
        super().__init__(f"{len(errors)} bad line(s):\n{listed}{more}\n(run `callqa data validate` for the full list)")


def _validation_errors(path: str, line: int, err: ValidationError) -> Iterator[LineError]:
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(line)"
        yield LineError(path, line, loc, e["msg"])


def parse_line(path: str, line_no: int, raw_bytes: bytes, schema: LabelSchema | None = None) -> Call | list[LineError] | None:
    """One line of a call file: the call, its errors (file:line:field), or None for a blank line. Duplicate ids are
    the caller's to find (they need the whole file)."""
    try:
        raw = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as err:
        return [LineError(path, line_no, "(line)", f"not valid UTF-8 at byte {err.start}")]
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        return [LineError(path, line_no, "(line)", f"not valid JSON: {err.msg} at column {err.colno}")]
    if not isinstance(data, dict):
        return [LineError(path, line_no, "(line)", f"a call is a JSON object, got {type(data).__name__}")]
    try:
        call = Call.model_validate(data)
    except ValidationError as err:
        return list(_validation_errors(path, line_no, err))
    problems = schema.check_labels(call.labels) + schema.check_turn_labels(call.turns) if schema else []
    return [LineError(path, line_no, f, m) for f, m in problems] if problems else call


def read_calls(path: str | Path, schema: LabelSchema | None = None) -> CallFile:
    """Parse a JSONL call file; with a schema, labels are checked against it too. Blank lines are skipped."""
    result = CallFile(str(path))
    result.calls.extend(iter_call_lines(path, schema, result.errors))
    return result


def iter_call_lines(path: str | Path, schema: LabelSchema | None, errors: list[LineError]) -> Iterator[CallLine]:
    """The valid calls of one file as they are read; bad lines and repeated ids go to ``errors``."""
    path_str = str(path)
    first_seen: dict[str, int] = {}
    with open(path, "rb") as handle:
        for line_no, raw_bytes in enumerate(handle, start=1):
            parsed = parse_line(path_str, line_no, raw_bytes, schema)
            if parsed is None:
                continue
            if isinstance(parsed, list):
                errors.extend(parsed)
                continue
            if parsed.call_id in first_seen:
                errors.append(LineError(path_str, line_no, "call_id",
                                        f"duplicate call_id (first at line {first_seen[parsed.call_id]})"))
                continue
            first_seen[parsed.call_id] = line_no
            yield CallLine(path_str, line_no, raw_bytes.decode("utf-8").rstrip("\r\n"), parsed)


def iter_calls(paths: Iterable[str | Path], schema: LabelSchema | None, errors: list[LineError]) -> Iterator[Call]:
    """The valid calls of several files, one at a time (a training set larger than memory streams through this);
    bad lines and ids repeated in or across files go to ``errors``."""
    seen: dict[str, str] = {}
    for path in paths:
        for item in iter_call_lines(path, schema, errors):
            if item.call.call_id in seen:
                errors.append(LineError(item.path, item.line, "call_id",
                                        f"duplicate call_id (also at {seen[item.call.call_id]})"))
                continue
            seen[item.call.call_id] = f"{item.path}:{item.line}"
            yield item.call


def load_calls(paths: str | Path | Iterable[str | Path], schema: LabelSchema | None = None) -> list[Call]:
    """All calls of one or more files, or :class:`CallFileError` listing every bad line of every file."""
    errors: list[LineError] = []
    calls = list(iter_calls([paths] if isinstance(paths, (str, Path)) else paths, schema, errors))
    if errors:
        raise CallFileError(errors)
    return calls


def dump_call(call: Call) -> str:
    """One JSON line, UTF-8 text kept readable (no \\u escapes), unset fields left out."""
    return json.dumps(call.model_dump(mode="json", exclude_none=True, exclude_defaults=True), ensure_ascii=False)


def write_calls(path: str | Path, calls: Iterable[Call]) -> int:
    """Write ``calls`` to ``path`` as JSONL, one call per line (UTF-8, Chinese as is); returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as handle:
        for call in calls:
            handle.write(dump_call(call) + "\n")
            n += 1
    return n
