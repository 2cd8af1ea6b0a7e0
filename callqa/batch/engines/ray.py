"""The Ray engine: the chunks the sink lacks as a Ray Dataset, mapped by a pool of actors that each open the same
scoring session once and write through the same sink as the local engine would (so the outputs are the same)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from callqa.session import ScoringSession

from ..chunks import Chunk, chunks
from ..result import COUNTS, BatchResult
from ..sinks import Sink, make_sink
from .local import score_chunk


class _ChunkScorer:
    """A Ray actor: one session, then chunk after chunk through :func:`score_chunk` (as the local engine)."""

    def __init__(self, bundle: str, scorecard: str | None, precision: str | None, redact: bool, sink: str,
                 target: str, batch_size: int):
        self.session = ScoringSession(bundle, scorecard, precision, run_threads=1, runs=1, redact=redact)
        self.threads, self.sink = self.session.threads(), make_sink(sink, target)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        fields = [f for f in Chunk.__dataclass_fields__]
        done = [score_chunk(Chunk(**{f: batch[f][i].item() if hasattr(batch[f][i], "item") else batch[f][i]
                                     for f in fields}), self.sink, self.threads, self.session,
                            self.batch_size)
                for i in range(len(batch["path"]))]
        return {name: np.array([getattr(r, name) for r in done]) for name in COUNTS}


class RayEngine:
    """``address`` connects to an existing cluster (``auto`` or ``ray://host:10001``); without it a local Ray starts
    on this machine's cores. ``workers``: actors (default: one per CPU). The inputs, the bundle and the sink's target
    must be reachable from every worker."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.address, self.workers = address, workers

    def run(self, session: ScoringSession, files: list[Path], sink: Sink, chunk_size: int = 2000,
            batch_size: int = 64, advance: Callable[[int], None] = lambda n: None) -> BatchResult:
        import ray

        result = BatchResult()
        todo = []
        for chunk in chunks(files, chunk_size):
            if sink.done(chunk):
                result.parts_skipped += 1
            else:
                todo.append(chunk)
        if not todo:
            return result
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, num_cpus=None if self.address else (self.workers or os.cpu_count()),
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            import ray.data

            ray.data.DataContext.get_current().enable_progress_bars = False
            pool = self.workers or max(1, int(ray.available_resources().get("CPU", 1)))
            dataset = ray.data.from_items([dict(c.__dict__) for c in todo], override_num_blocks=len(todo))
            counts = dataset.map_batches(
                _ChunkScorer, fn_constructor_kwargs={
                    "bundle": str(session.bundle_dir), "scorecard": session.scorecard_name,
                    "precision": session.precision, "redact": session.redact, "sink": sink.name, "target": sink.target, "batch_size": batch_size},
                batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=min(pool, len(todo))),
                num_cpus=1).take_all()
        finally:
            if started_here:
                ray.shutdown()
        for row in counts:
            result.add(BatchResult(**{name: int(row[name]) for name in COUNTS}))
        return result
