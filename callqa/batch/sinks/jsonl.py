"""The JSONL sink: each call's result as /score answers it (``call_id``, head scores, the scorecard), one line per
call, one part per chunk (``part-iiiii-kkkkk.jsonl``), complete or absent like the Parquet parts."""

from __future__ import annotations

from callqa.bundle import BundleInfo
from callqa.calls import Call
from callqa.pipeline import ScoredCall

from ..chunks import Chunk
from .base import FolderSink


class JsonlSink(FolderSink):
    """``target``: the output folder."""

    name = "jsonl"

    suffix = ".jsonl"

    def write(self, chunk: Chunk, calls: list[Call], scored: list[ScoredCall], info: BundleInfo) -> None:
        lines = "".join(s.model_dump_json(exclude_none=True) + "\n" for s in scored)
        self.write_part(chunk, lines.encode("utf-8"))
