"""The inputs of a batch job: call files found by name, glob or folder, cut into chunks of lines (the unit of work
an engine hands out, a sink writes and a rerun skips)."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def input_files(inputs: list[str]) -> list[Path]:
    """JSONL files named, matched by a glob, or found in a folder (``*.jsonl``), in a stable order."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(path.rglob("*.jsonl"))
        elif any(ch in item for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(item, recursive=True))
            if not matched:
                raise FileNotFoundError(f"{item}: no files match")
            found += matched
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{item}: no such file, folder or matching files")
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Chunk:
    """Lines ``first_line``… of one input file, as a byte range: an engine's worker reads its own chunk."""

    file_index: int
    index: int
    path: str
    offset: int
    size: int
    first_line: int
    n_lines: int

    @property
    def name(self) -> str:
        return f"{self.file_index:05d}-{self.index:05d}"

    def lines(self) -> list[tuple[int, bytes]]:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.size)
        return list(enumerate(data.splitlines(keepends=True), start=self.first_line))


def chunks(files: list[Path], chunk_size: int) -> Iterator[Chunk]:
    """Every ``chunk_size`` lines of every file, in order (one pass over the bytes; no line is parsed here)."""
    for i, path in enumerate(files):
        n, offset, start, first, count = 0, 0, 0, 1, 0
        with open(path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                offset += len(raw)
                count += 1
                if count == chunk_size:
                    yield Chunk(i, n, str(path), start, offset - start, first, count)
                    n, start, first, count = n + 1, offset, line_no + 1, 0
        if count:
            yield Chunk(i, n, str(path), start, offset - start, first, count)
