"""Greedy batching of the model's work: the calls of every request that arrives while the model is busy go to it
together in a later run. No timer: a request that finds a run free is sent at once, so a lone request is never
delayed; under load, one model run serves many requests, and onnxruntime gets length-sorted chunks of many calls
instead of one call at a time.

Up to ``max_runs`` runs go at once (the service runs one per core, each on one onnxruntime thread). Each run takes
its share of the calls in the system, (waiting + running) / max_runs, in arrival order, splitting a request where its
share ends: taking every waiting call would leave the other runs the stragglers of one call each and a core idle, and
a lone request of many calls would run on one core while the others idle (docs/serving.md).

BentoML's own adaptive batching waits before dispatch by the running mean of past waits, which kept single requests
slow long after a burst (docs/serving.md); this one never waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Request:
    """A submitted request: its items, the results filled in as the runs that took its parts end, and its future."""

    items: list
    future: asyncio.Future
    results: list = field(init=False)
    sent: int = 0  # items handed to runs so far
    left: int = field(init=False)  # items without a result yet

    def __post_init__(self) -> None:
        self.results, self.left = [None] * len(self.items), len(self.items)


class GreedyBatcher(Generic[Item, Result]):
    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]], max_items: int, max_runs: int = 1):
        self.run, self.max_items, self.max_runs = run, max_items, max_runs
        self.waiting: list[_Request] = []  # requests with items not yet handed to a run, in arrival order
        self.running = 0  # runs under way
        self.running_items = 0  # their items
        self.runs = 0  # model runs so far (tests and metrics read it)

    async def submit(self, items: list[Item]) -> list[Result]:
        """The results of ``items``, in order, from whichever model runs they joined."""
        if not items:
            return []
        request = _Request(list(items), asyncio.get_running_loop().create_future())
        self.waiting.append(request)
        self._start_run()
        return await request.future

    def _start_run(self) -> None:
        if self.waiting and self.running < self.max_runs:
            self.running += 1
            asyncio.create_task(self._drain())

    def _take(self) -> list[tuple[_Request, int, int]]:
        """This run's share of the waiting items, in arrival order: (request, start, end) parts."""
        waiting = sum(len(r.items) - r.sent for r in self.waiting)
        share = min(self.max_items, -(-(self.running_items + waiting) // self.max_runs))
        parts, size = [], 0
        while self.waiting and size < share:
            request = self.waiting[0]
            if request.future.done():  # failed in another run, or its client went away: nothing left to do for it
                self.waiting.pop(0)
                continue
            end = min(len(request.items), request.sent + share - size)
            parts.append((request, request.sent, end))
            size += end - request.sent
            request.sent = end
            if end == len(request.items):
                self.waiting.pop(0)
        return parts

    async def _drain(self) -> None:
        try:
            while self.waiting:
                parts = self._take()
                if not parts:
                    break
                size = sum(end - start for _, start, end in parts)
                self.runs += 1
                self.running_items += size
                self._start_run()  # what this run left goes to a free run at once
                try:
                    results: Sequence[Any] = await self.run([i for r, start, end in parts for i in r.items[start:end]])
                except Exception as err:  # every request with a part in the run gets the error (a 500 each)
                    for request, _, _ in parts:
                        if not request.future.done():
                            request.future.set_exception(err)
                    continue
                finally:
                    self.running_items -= size
                offset = 0
                for request, start, end in parts:
                    request.results[start:end] = results[offset : offset + end - start]
                    offset += end - start
                    request.left -= end - start
                    if request.left == 0 and not request.future.done():  # a client gone away cancelled its future
                        request.future.set_result(request.results)
        finally:
            self.running -= 1
