"""The one way a benchmark writes its table into the docs: between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``,
so the documented numbers are always the script's output."""

from __future__ import annotations

from pathlib import Path


def write_docs(path: Path, block: str, table: str) -> None:
    START, END = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no {START} … {END} block to write the table into")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")
