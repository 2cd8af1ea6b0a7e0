"""Batch scoring: call files in, a Parquet dataset of flat score columns out (`callqa score`).

Every call goes through the one :class:`callqa.pipeline.ScoringPipeline`, so its numbers equal what /score answers.
Input files are read in chunks of ``chunk_size`` lines; chunk k of input file i becomes ``part-iiiii-kkkkk.parquet``,
written to a temporary name and renamed when complete, so a job killed midway and run again skips the finished parts
(resumable) and never leaves half a file. Bad lines go to ``rejects-iiiii-kkkkk.jsonl`` beside their part as
file:line:field:message (never the line's text), are counted, and never stop the job.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from callqa.calls import Call
from callqa.jsonl import LineError, parse_line
from callqa.pipeline import ScoredCall, ScoringPipeline
from callqa.schema import LabelSchema
from callqa.scorer import OnnxScorer
from callqa.scores import TopicsScore


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
    file_index: int
    index: int
    path: Path
    lines: list[tuple[int, bytes]]  # (line number, raw bytes)

    @property
    def name(self) -> str:
        return f"{self.file_index:05d}-{self.index:05d}"


def chunks(files: list[Path], chunk_size: int) -> Iterator[Chunk]:
    for i, path in enumerate(files):
        batch: list[tuple[int, bytes]] = []
        n = 0
        with open(path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                batch.append((line_no, raw))
                if len(batch) == chunk_size:
                    yield Chunk(i, n, path, batch)
                    batch, n = [], n + 1
        if batch:
            yield Chunk(i, n, path, batch)


def flat_row(call: Call, scored: ScoredCall, model: str, schema: LabelSchema) -> dict:
    """One output row: the call's ids and time, per head its level, confidence, expected score and distribution (or
    the topics over threshold), the scorecard's total, red line and per-item points, the model tag and card hash."""
    row: dict = {"call_id": call.call_id, "agent_id": call.agent_id,
                 "started_at": call.started_at.isoformat() if call.started_at else None, "model": model,
                 "n_tokens": scored.n_tokens, "truncated": scored.truncated}
    for head, score in scored.scores.items():
        if isinstance(score, TopicsScore):
            row[f"{head}.predicted"] = list(score.predicted)
            by_id = {label.id: label.probability for label in score.labels}
            row[f"{head}.probabilities"] = [by_id[c] for c in schema[head].class_ids]  # in the schema's class order
        else:
            row[f"{head}.level"] = score.level
            row[f"{head}.confidence"] = score.confidence
            row[f"{head}.expected"] = score.expected
            row[f"{head}.distribution"] = list(score.distribution.values())
    card = scored.scorecard
    row["scorecard.name"] = card.name if card else None
    row["scorecard.hash"] = card.hash if card else None
    row["scorecard.total"] = card.total if card else None
    row["scorecard.red_line"] = card.red_line if card else None
    if card:
        row.update({f"item.{i.id}": i.points for i in card.items().values()})
    return row


@dataclass
class BatchResult:
    calls: int = 0
    rejected_lines: int = 0
    parts_written: int = 0
    parts_skipped: int = 0


def score_files(files: list[Path], out: Path, scorer: OnnxScorer, pipeline: ScoringPipeline, chunk_size: int = 2000,
                batch_size: int = 64, advance: Callable[[int], None] = lambda n: None) -> BatchResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    result = BatchResult()
    tag = scorer.info.tag
    for chunk in chunks(files, chunk_size):
        part = out / f"part-{chunk.name}.parquet"
        if part.exists():
            result.parts_skipped += 1
            advance(len(chunk.lines))
            continue
        calls: list[Call] = []
        rejects: list[LineError] = []
        for line_no, raw in chunk.lines:
            parsed = parse_line(str(chunk.path), line_no, raw)
            if isinstance(parsed, list):
                rejects += parsed
            elif parsed is not None:
                calls.append(parsed)
        rows = []
        for start in range(0, len(calls), batch_size):
            batch = calls[start : start + batch_size]
            rows += [flat_row(c, s, tag, scorer.schema) for c, s in zip(batch, pipeline.score(scorer, batch), strict=True)]
            advance(len(batch))
        advance(len(chunk.lines) - len(calls))
        if rejects:
            _write_atomic(out / f"rejects-{chunk.name}.jsonl", "".join(
                json.dumps({"file": e.path, "line": e.line, "field": e.field, "message": e.message}, ensure_ascii=False) + "\n"
                for e in rejects).encode("utf-8"))
        table = pa.Table.from_pylist(rows) if rows else pa.table({"call_id": pa.array([], pa.string())})
        tmp = part.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, part)  # the part exists only once complete: a rerun after a kill redoes only missing parts
        result.calls += len(calls)
        result.rejected_lines += len({e.line for e in rejects})
        result.parts_written += 1
    return result


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_scores(out: Path):
    """The output dataset as one pyarrow Table (every finished part; not the rejects, not a killed job's .tmp)."""
    import pyarrow.dataset as ds

    return ds.dataset([str(p) for p in sorted(Path(out).glob("part-*.parquet"))], format="parquet").to_table()


__all__ = ["BatchResult", "flat_row", "input_files", "read_scores", "score_files"]
