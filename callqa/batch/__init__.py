"""Batch scoring (`callqa score`): call files in, cut into chunks; a :class:`callqa.session.ScoringSession` scores
them on an engine (``engines/``: this process, or a Ray cluster) into a sink (``sinks/``: a Parquet dataset of flat
score columns, JSONL results as /score answers them, or the review store).

Every call goes through the session's one :class:`callqa.pipeline.ScoringPipeline`, so its numbers equal what /score
answers. Chunk k of input file i is the unit a sink writes and a rerun skips (a killed job, run again, redoes only
the missing parts). Bad lines go to the sink as file:line:field:message (never the line's text), are counted, and
never stop the job.
"""

from __future__ import annotations

from .chunks import Chunk, chunks, input_files
from .engines import ENGINES, LocalEngine, RayEngine, score_chunk
from .result import BatchResult
from .sinks import SINKS, Sink, make_sink
from .sinks.jsonl import JsonlSink
from .sinks.parquet import ParquetSink, flat_row, read_scores

__all__ = ["ENGINES", "SINKS", "BatchResult", "Chunk", "JsonlSink", "LocalEngine", "ParquetSink", "RayEngine", "Sink", "chunks",
           "flat_row", "input_files", "make_sink", "read_scores", "score_chunk"]
