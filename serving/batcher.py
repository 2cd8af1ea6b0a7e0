"""Greedy batching of the model's work: the calls of every request that arrives while the model is busy go to it
together in its next run. No timer: a request that finds the model idle is sent at once, so a lone request is never
delayed; under load, one model run serves many requests, and onnxruntime gets
length-sorted chunks of many calls instead of one call at a time.

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
    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]], max_items: int):
        self.run, self.max_items = run, max_items
        self.waiting: list[tuple[list[Item], asyncio.Future]] = []
        self.busy = False
        self.runs = 0  # model runs so far (tests and metrics read it)

    async def submit(self, items: list[Item]) -> list[Result]:
        """The results of ``items``, in order, from whichever model run they joined."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((items, future))
        if not self.busy:
            self.busy = True
            asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, size = [], 0
                # Whole requests in arrival order, up to max_items (a larger request goes alone).
                while self.waiting and (not batch or size + len(self.waiting[0][0]) <= self.max_items):
                    items, future = self.waiting.pop(0)
                    batch.append((items, future))
                    size += len(items)
                self.runs += 1
                try:
                    results = await self.run([item for items, _ in batch for item in items])
                except Exception as err:  # every request of the run gets the error (a 500 each)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                offset = 0
                for items, future in batch:
                    if not future.done():  # a client that went away cancelled its future
                        future.set_result(list(results[offset : offset + len(items)]))
                    offset += len(items)
        finally:
            self.busy = False
