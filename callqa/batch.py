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
from callqa.scorer import OnnxScorer, ScoringThreads
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
    real_tokens: int = 0  # tokens of the calls' windows
    computed_tokens: int = 0  # tokens the model ran, padding included

    def add(self, other: BatchResult) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def padding_waste(self) -> float:
        return 1 - self.real_tokens / self.computed_tokens if self.computed_tokens else 0.0


COUNTS = ("calls", "rejected_lines", "parts_written", "parts_skipped", "real_tokens", "computed_tokens")


def part_path(out: Path, chunk: Chunk) -> Path:
    return Path(out) / f"part-{chunk.name}.parquet"


def score_chunk(chunk: Chunk, out: Path, threads: ScoringThreads, pipeline: ScoringPipeline, batch_size: int = 64,
                advance: Callable[[int], None] = lambda n: None) -> BatchResult:
    """Score one chunk into its part (and its rejects): the unit of work of every engine. Its batches of
    ``batch_size`` calls go through ``threads`` side by side."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = part_path(out, chunk)
    lines = chunk.lines()
    calls: list[Call] = []
    rejects: list[LineError] = []
    for line_no, raw in lines:
        parsed = parse_line(chunk.path, line_no, raw)
        if isinstance(parsed, list):
            rejects += parsed
        elif parsed is not None:
            calls.append(parsed)

    def score_batch(scorer: OnnxScorer, batch: list[Call]) -> tuple[list[dict], int, int]:
        rows = [flat_row(c, s, scorer.info.tag, scorer.schema)
                for c, s in zip(batch, pipeline.score(scorer, batch), strict=True)]
        return rows, *scorer.tokens.take()

    rows, real, computed = [], 0, 0
    batches = [calls[start : start + batch_size] for start in range(0, len(calls), batch_size)]
    for batch, (batch_rows, batch_real, batch_computed) in zip(batches, threads.map(score_batch, batches)):
        rows += batch_rows
        real, computed = real + batch_real, computed + batch_computed
        advance(len(batch))
    advance(len(lines) - len(calls))
    if rejects:
        _write_atomic(part.parent / f"rejects-{chunk.name}.jsonl", "".join(
            json.dumps({"file": e.path, "line": e.line, "field": e.field, "message": e.message}, ensure_ascii=False) + "\n"
            for e in rejects).encode("utf-8"))
    table = pa.Table.from_pylist(rows) if rows else pa.table({"call_id": pa.array([], pa.string())})
    tmp = part.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, part)  # the part exists only once complete: a rerun after a kill redoes only missing parts
    return BatchResult(calls=len(calls), rejected_lines=len({e.line for e in rejects}), parts_written=1,
                       real_tokens=real, computed_tokens=computed)


def score_files(files: list[Path], out: Path, scorer: OnnxScorer, pipeline: ScoringPipeline, chunk_size: int = 2000,
                batch_size: int = 64, advance: Callable[[int], None] = lambda n: None,
                workers: int | None = 1) -> BatchResult:
    """The local engine: chunk after chunk in this process, each chunk's batches on ``workers`` threads side by side
    (:class:`callqa.scorer.ScoringThreads`; None: one per core. `callqa score` gives it a one-thread session and a
    worker per core)."""
    out.mkdir(parents=True, exist_ok=True)
    result = BatchResult()
    with ScoringThreads(scorer, workers) as threads:
        for chunk in chunks(files, chunk_size):
            if part_path(out, chunk).exists():
                result.parts_skipped += 1
                advance(chunk.n_lines)
                continue
            result.add(score_chunk(chunk, out, threads, pipeline, batch_size, advance))
    return result


class _ChunkScorer:
    """A Ray actor: one bundle load, then chunk after chunk through :func:`score_chunk` (as the local engine)."""

    def __init__(self, bundle: str, scorecard: str | None, out: str, batch_size: int, threads: int):
        from callqa.scorecard import load_scorecard

        scorer = OnnxScorer.from_bundle(bundle, threads=threads)
        card = load_scorecard(scorecard, scorer.schema) if scorecard else None
        self.pipeline, self.threads = ScoringPipeline(scorer.info, card), ScoringThreads(scorer, 1)
        self.out, self.batch_size = Path(out), batch_size

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        fields = [f for f in Chunk.__dataclass_fields__]
        done = [score_chunk(Chunk(**{f: batch[f][i].item() if hasattr(batch[f][i], "item") else batch[f][i]
                                     for f in fields}), self.out, self.threads, self.pipeline, self.batch_size)
                for i in range(len(batch["path"]))]
        return {name: np.array([getattr(r, name) for r in done]) for name in COUNTS}


def score_files_ray(files: list[Path], out: Path, bundle: Path, scorecard: str | None, chunk_size: int = 2000,
                    batch_size: int = 64, address: str | None = None, workers: int | None = None) -> BatchResult:
    """The Ray engine: the missing parts as a Ray Dataset, mapped by a pool of actors that each load the bundle once
    and write their parts as the local engine would (so the outputs are the same files). ``address`` connects to an
    existing cluster (``auto`` or ``ray://host:10001``); without it a local Ray starts on this machine's cores. The
    inputs, the bundle and ``out`` must be paths every worker can reach."""
    import ray

    out.mkdir(parents=True, exist_ok=True)
    result = BatchResult()
    todo = []
    for chunk in chunks(files, chunk_size):
        if part_path(out, chunk).exists():
            result.parts_skipped += 1
        else:
            todo.append(chunk)
    if not todo:
        return result
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else (workers or os.cpu_count()),
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        pool = workers or max(1, int(ray.available_resources().get("CPU", 1)))
        dataset = ray.data.from_items([dict(c.__dict__) for c in todo], override_num_blocks=len(todo))
        counts = dataset.map_batches(
            _ChunkScorer, fn_constructor_kwargs={"bundle": str(bundle), "scorecard": scorecard, "out": str(out),
                                                 "batch_size": batch_size, "threads": 1},
            batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=min(pool, len(todo))),
            num_cpus=1).take_all()
    finally:
        if started_here:
            ray.shutdown()
    for row in counts:
        result.add(BatchResult(**{name: int(row[name]) for name in COUNTS}))
    return result


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_scores(out: Path):
    """The output dataset as one pyarrow Table (every finished part; not the rejects, not a killed job's .tmp)."""
    import pyarrow.dataset as ds

    return ds.dataset([str(p) for p in sorted(Path(out).glob("part-*.parquet"))], format="parquet").to_table()


__all__ = ["BatchResult", "flat_row", "input_files", "read_scores", "score_files", "score_files_ray"]
