"""One YAML loader for every file a user writes: training configs, label schemas, scorecards, CSV mappings, the
serving config and agent directories. Each reader loads through :func:`read_yaml` and validates through
:func:`validate`, so every problem reads the same way, one per line:

    configs/schemas/mine.yaml:14: heads.empathy.kind: unknown head kind 'ordinl' (kinds: ordinal, …)

— the file, the line of the key at fault (found in the YAML's node tree), the key's dotted path as the user wrote
it, and what is wrong. A missing file and a YAML syntax error read the same way (the parser's line).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Path_ = tuple[str, ...]


@dataclass
class YamlDocument:
    """A loaded YAML file: its data and the line each key (by its dotted path) was written on."""

    path: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, where: Sequence[str]) -> int:
        """The line of the deepest key of ``where`` that the file spells out (1 when none is: a missing key)."""
        key = tuple(str(p) for p in where)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return 1

    def problem(self, where: Sequence[str], message: str) -> str:
        """``file:line: key: problem`` for a problem at the dotted path ``where``."""
        dotted = ".".join(str(p) for p in where) or "(top level)"
        return f"{self.path}:{self.line_of(where)}: {dotted}: {message}"


def _positions(node: yaml.Node, prefix: Path_, out: dict[Path_, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            out[path] = key.start_mark.line + 1
            _positions(value, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            path = (*prefix, str(i))
            out[path] = value.start_mark.line + 1
            _positions(value, path, out)


def read_yaml(path: str | Path, error: type[Exception] = ValueError, what: str = "YAML") -> YamlDocument:
    """Load ``path`` (raising ``error`` with ``file:line: problem`` for a missing file or bad YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}:1: (file): no such {what} file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path}:1: (file): cannot be read: {err}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(err, "problem", None) or str(err)
        raise error(f"{path}:{line}: (syntax): not valid YAML: {problem}") from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _positions(node, (), lines)
    return YamlDocument(path=path, data=data, lines=lines)


def validate(model: type[M], document: YamlDocument, error: type[Exception] = ValueError, data: Any = None,
             rename: Callable[[list[str]], list[str]] | None = None) -> M:
    """``model`` from the document's data (or ``data``, the document's data reshaped), every validation problem
    named by ``file:line: key: problem`` on a line of its own. ``rename`` maps pydantic's location (list positions
    of reshaped data) back to the keys the user wrote."""
    try:
        return model.model_validate(document.data if data is None else data)
    except ValidationError as err:
        raise error(describe(err, document, rename)) from None


def describe(err: ValidationError, document: YamlDocument,
             rename: Callable[[list[str]], list[str]] | None = None) -> str:
    problems = []
    for e in err.errors():
        where = [str(p) for p in e["loc"]]
        if rename is not None:
            where = rename(where)
        problems.append(document.problem(where, e["msg"].removeprefix("Value error, ")))
    return "\n".join(problems)


def require_mapping(document: YamlDocument, error: type[Exception], what: str) -> dict:
    """The document's top level as a mapping (an empty file is an empty mapping)."""
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise error(document.problem([], f"{what} is a mapping, got {type(data).__name__}"))
    return data
