"""Greedy batching of the model's work: the calls of every request that arrives while the model is busy go to it
together in a later run. No timer: a request that finds a run free is sent at once, so a lone request is never
delayed; under load, one model run serves many requests, and onnxruntime gets length-sorted chunks of many calls
instead of one call at a time.

Up to ``max_runs`` runs go at once (the service runs one per core, each on one onnxruntime thread). Each run takes
its share of the calls in the system, (waiting + running) / max_runs: taking every waiting call would leave the other
runs the stragglers of one call each, and a core idle (docs/serving.md).

BentoML's own adaptive batching waits before dispatch by the running mean of past waits, which kept single requests
slow long after a burst (docs/serving.md); this one never waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GreedyBatcher(Generic[Item, Result]):
    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]], max_items: int, max_runs: int = 1):
        self.run, self.max_items, self.max_runs = run, max_items, max_runs
        self.waiting: list[tuple[list[Item], asyncio.Future]] = []
        self.running = 0  # runs under way
        self.running_items = 0  # their items
        self.runs = 0  # model runs so far (tests and metrics read it)

    async def submit(self, items: list[Item]) -> list[Result]:
        """The results of ``items``, in order, from whichever model run they joined."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((items, future))
        if self.running < self.max_runs:
            self.running += 1
            asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, size = [], 0
                share = -(-(self.running_items + sum(len(items) for items, _ in self.waiting)) // self.max_runs)
                # Whole requests in arrival order, up to this run's share and max_items (a larger request goes alone).
                while self.waiting and (not batch or size + len(self.waiting[0][0]) <= min(share, self.max_items)):
                    items, future = self.waiting.pop(0)
                    batch.append((items, future))
                    size += len(items)
                self.runs += 1
                self.running_items += size
                try:
                    results = await self.run([item for items, _ in batch for item in items])
                except Exception as err:  # every request of the run gets the error (a 500 each)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                finally:
                    self.running_items -= size
                offset = 0
                for items, future in batch:
                    if not future.done():  # a client that went away cancelled its future
                        future.set_result(list(results[offset : offset + len(items)]))
                    offset += len(items)
        finally:
            self.running -= 1
