"""The local engine: chunk after chunk in this process, each chunk's batches on the session's model runs side by side
(:class:`callqa.scorer.ScoringThreads`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from callqa.calls import Call
from callqa.jsonl import LineError, parse_line
from callqa.pipeline import ScoredCall
from callqa.scorer import OnnxScorer, ScoringThreads
from callqa.session import ScoringSession

from ..chunks import Chunk, chunks
from ..result import BatchResult
from ..sinks import Sink


def score_chunk(chunk: Chunk, sink: Sink, threads: ScoringThreads, session: ScoringSession, batch_size: int = 64,
                advance: Callable[[int], None] = lambda n: None) -> BatchResult:
    """Score one chunk into the sink (its bad lines first): the unit of work of every engine. Its batches of
    ``batch_size`` calls go through ``threads`` (the session's runs) side by side."""
    lines = chunk.lines()
    calls: list[Call] = []
    rejects: list[LineError] = []
    for line_no, raw in lines:
        parsed = parse_line(chunk.path, line_no, raw)
        if isinstance(parsed, list):
            rejects += parsed
        elif parsed is not None:
            calls.append(parsed)
    calls, pipeline = session.prepare(calls), session.pipeline

    def score_batch(scorer: OnnxScorer, batch: list[Call]) -> tuple[list[ScoredCall], int, int]:
        return pipeline.score(scorer, batch), *scorer.tokens.take()

    scored, real, computed = [], 0, 0
    batches = [calls[start : start + batch_size] for start in range(0, len(calls), batch_size)]
    for batch, (batch_scored, batch_real, batch_computed) in zip(batches, threads.map(score_batch, batches)):
        scored += batch_scored
        real, computed = real + batch_real, computed + batch_computed
        advance(len(batch))
    advance(len(lines) - len(calls))
    if rejects:
        sink.reject(chunk, rejects)
    sink.write(chunk, calls, scored, pipeline.info)
    return BatchResult(calls=len(calls), rejected_lines=len({e.line for e in rejects}), parts_written=1,
                       real_tokens=real, computed_tokens=computed)


class LocalEngine:
    def run(self, session: ScoringSession, files: list[Path], sink: Sink, chunk_size: int = 2000,
            batch_size: int = 64, advance: Callable[[int], None] = lambda n: None) -> BatchResult:
        """Every chunk the sink does not have yet, in order; ``advance`` is told of every line done."""
        result = BatchResult()
        with session.threads() as threads:
            for chunk in chunks(files, chunk_size):
                if sink.done(chunk):
                    result.parts_skipped += 1
                    advance(chunk.n_lines)
                    continue
                result.add(score_chunk(chunk, sink, threads, session, batch_size, advance))
        return result
