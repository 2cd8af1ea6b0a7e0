"""The review store as a sink of scored calls: `callqa score FILE --into store` and /score with ``"store": true``
both keep calls this way (and the queue, reports and exports read them back from the store)."""

from __future__ import annotations

from callqa.batch import Chunk, Sink
from callqa.bundle import BundleInfo
from callqa.calls import Call
from callqa.jsonl import LineError
from callqa.pipeline import ScoredCall

from .config import load_serving_config
from .store import ReviewStore


class StoreSink(Sink):
    """``target``: the store's database URL ("": the serving config's). A call scored again gets a new prediction and an identical repeat is not
    stored twice, so nothing is skipped on a rerun and nothing doubles. Bad lines are kept in :attr:`rejects` for
    the command to print (the store holds calls, not input errors)."""

    name = "store"

    def __init__(self, target: str, store: ReviewStore | None = None):
        super().__init__(target or load_serving_config().database)
        self.store = store or ReviewStore(self.target)
        self.added = 0
        self.rejects: list[LineError] = []

    @classmethod
    def of(cls, store: ReviewStore) -> StoreSink:
        """A sink over a store already open (the service's)."""
        return cls(str(store.engine.url), store)

    def keep(self, calls: list[Call], scored: list[ScoredCall], info: BundleInfo) -> int:
        """Store calls with their predictions in one transaction; how many new predictions were stored."""
        added = self.store.add_scored(calls, scored, info.tag, info.schema_)
        self.added += added
        return added

    def write(self, chunk: Chunk, calls: list[Call], scored: list[ScoredCall], info: BundleInfo) -> None:
        self.keep(calls, scored, info)

    def reject(self, chunk: Chunk, errors: list[LineError]) -> None:
        self.rejects += errors

    def where(self) -> str:
        return "the review store"

    def summary(self) -> str:
        return f", {self.added} new predictions stored"

    def kept_rejects(self) -> list[LineError]:
        return self.rejects
