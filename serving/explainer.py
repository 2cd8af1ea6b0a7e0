"""Evidence for the review UI (per-turn occlusion), computed so that it never stalls /score.

Occlusion costs a call's scoring once per turn; a stored call of 400 turns once ran for minutes on the model that
serves /score, after its client had left, while /score waited behind it (issue 30). Here evidence is:

- **bounded in turns**: a call longer than ``max_blocks`` turns is occluded in ``max_blocks`` blocks of neighbouring
  turns (:func:`callqa.evidence.occlusion_batch`), so it costs at most ``max_blocks + 1`` scorings;
- **bounded in time**: past ``seconds`` it stops and the route answers 503;
- **below /score**: it goes to the model a small chunk at a time, and only when /score's batcher has nothing waiting
  and a run free, so a /score request waits at most for one chunk on one core;
- **computed once per call**: requests for a call already being explained wait for that computation; the route
  caches the result per call and model;
- **cancelled when nobody waits**: each waiter polls its client; when the last one has gone, the computation stops
  before its next chunk.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from callqa.calls import Call
from callqa.evidence import CallEvidence, attributions, occlusion_batch
from callqa.schema import LabelSchema
from callqa.scorer import CallPrediction


class ClientGone(Exception):
    """Every client waiting for this evidence disconnected."""


class Explainer:
    def __init__(self, run: Callable[[list[Call]], Awaitable[Sequence[CallPrediction]]], busy: Callable[[], bool],
                 model: str, schema: LabelSchema, max_blocks: int, seconds: float, chunk: int = 4):
        """``run`` scores a chunk of calls on the model; ``busy()`` says /score has calls waiting or no run free."""
        self.run, self.busy, self.model, self.schema = run, busy, model, schema
        self.max_blocks, self.seconds, self.chunk = max_blocks, seconds, chunk
        self.computing: dict[str, asyncio.Task] = {}
        self.waiters: Counter[str] = Counter()
        self.chunks_run = 0  # chunks scored so far (tests read it)

    async def explain(self, call: Call, gone: Callable[[], Awaitable[bool]], poll: float = 0.25) -> CallEvidence:
        """The call's evidence; TimeoutError past ``seconds``, :class:`ClientGone` once ``gone()`` says so."""
        key = call.call_id
        task = self.computing.get(key)
        if task is None:
            task = asyncio.create_task(asyncio.wait_for(self._compute(call), self.seconds))
            self.computing[key] = task
            task.add_done_callback(lambda _: self.computing.pop(key, None))
        self.waiters[key] += 1
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=poll)
                if done:
                    return task.result()
                if await gone():
                    raise ClientGone(key)
        finally:
            self.waiters[key] -= 1
            if self.waiters[key] <= 0:
                del self.waiters[key]
                if not task.done():
                    task.cancel()  # nobody is waiting for it any more

    async def _compute(self, call: Call) -> CallEvidence:
        batch = occlusion_batch(call, self.max_blocks)
        predictions: list[CallPrediction] = []
        for start in range(0, len(batch), self.chunk):
            while self.busy():  # /score first
                await asyncio.sleep(0.005)
            predictions += await self.run(batch[start : start + self.chunk])
            self.chunks_run += 1
        return attributions(call, self.model, self.schema, predictions, self.max_blocks)


__all__ = ["ClientGone", "Explainer"]
