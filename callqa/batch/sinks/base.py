"""Where scored calls go: a sink takes each chunk's calls and results (and its bad lines). A sink is made from its
registry name and a target string (:func:`make_sink`), so every Ray actor can make its own."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from callqa.bundle import BundleInfo
from callqa.calls import Call
from callqa.jsonl import LineError
from callqa.pipeline import ScoredCall

from ..chunks import Chunk


class Sink(ABC):
    name: ClassVar[str]  # its registry name (sinks/__init__.py)

    def __init__(self, target: str):
        self.target = target

    def done(self, chunk: Chunk) -> bool:
        """The chunk was written by an earlier run (a rerun skips it)."""
        return False

    @abstractmethod
    def write(self, chunk: Chunk, calls: list[Call], scored: list[ScoredCall], info: BundleInfo) -> None:
        """Keep a chunk's scored calls (called once per chunk, after its rejects)."""

    @abstractmethod
    def reject(self, chunk: Chunk, errors: list[LineError]) -> None:
        """Keep a chunk's bad lines as file:line:field:message (never the line's text)."""

    def where(self) -> str:
        """Where the scores went, as the command's last line says it."""
        return self.target

    def summary(self) -> str:
        """What the sink adds to that line (", N new predictions stored"); "" for nothing."""
        return ""

    def rejects_where(self) -> str:
        """Where the bad lines went, for that line (" in FOLDER/rejects-*.jsonl"); "": :meth:`kept_rejects` holds
        them for the command to print."""
        return ""

    def kept_rejects(self) -> list[LineError]:
        """Bad lines the sink kept in memory for the command to print (a folder sink writes them to files)."""
        return []


def replace_atomically(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)  # the file exists only once complete: a rerun after a kill redoes only missing parts


class FolderSink(Sink):
    """A folder of parts, one per chunk, each complete or absent, with ``rejects-*.jsonl`` beside them."""

    suffix: ClassVar[str]

    def __init__(self, target: str):
        super().__init__(target)
        self.folder = Path(target)
        self.folder.mkdir(parents=True, exist_ok=True)

    def part(self, chunk: Chunk) -> Path:
        return self.folder / f"part-{chunk.name}{self.suffix}"

    def done(self, chunk: Chunk) -> bool:
        return self.part(chunk).exists()

    def rejects_where(self) -> str:
        return f" in {self.target}/rejects-*.jsonl"

    def write_part(self, chunk: Chunk, data: bytes) -> None:
        _write_atomic(self.part(chunk), data)

    def reject(self, chunk: Chunk, errors: list[LineError]) -> None:
        _write_atomic(self.folder / f"rejects-{chunk.name}.jsonl", "".join(
            json.dumps({"file": e.path, "line": e.line, "field": e.field, "message": e.message}, ensure_ascii=False)
            + "\n" for e in errors).encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    replace_atomically(tmp, path)
