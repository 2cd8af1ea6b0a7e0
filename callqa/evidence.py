"""Which turns made a score: per-turn attributions by occlusion.

For a call of N turns the model scores N + 1 calls in one batch — the call, and the call with each turn removed —
and a turn's attribution is how much the score drops without it (positive: the turn pushed the score up; negative:
it pulled it down). Per head the score is the expected level (ordinal), the probability of the predicted class
(multiclass), or the probability of the most likely topic (multilabel). It runs on the ONNX model, like scoring, so
serving never needs torch; the cost is N + 1 calls' scoring (docs/scorecard.md → Evidence).

A long call is bounded: with ``max_blocks`` its turns are removed in at most that many runs of neighbouring turns
(blocks), and each turn gets its block's attribution, so the cost is at most ``max_blocks`` + 1 scorings whatever
the length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from callqa.calls import Call
from callqa.schema import Head, LabelSchema
from callqa.scorer import CallPrediction


class HeadEvidence(BaseModel):
    measure: str = Field(description="what is compared: 'expected' score, or 'p(ID)' — the probability of class ID")
    score: float = Field(description="the measure on the whole call")
    turns: list[float] = Field(description="per turn: score of the call − score without that turn")


class CallEvidence(BaseModel):
    call_id: str
    model: str
    heads: dict[str, HeadEvidence]
    block: int = Field(default=1, description="turns removed together: 1, or for a long call the size of the blocks "
                       "of neighbouring turns it was occluded in (each turn then carries its block's attribution)")


def blocks(n_turns: int, max_blocks: int | None = None) -> list[range]:
    """The runs of turns removed together: one turn each, or at most ``max_blocks`` equal runs."""
    size = 1 if max_blocks is None or n_turns <= max_blocks else -(-n_turns // max_blocks)
    return [range(start, min(start + size, n_turns)) for start in range(0, n_turns, size)]


def without_each_turn(call: Call, max_blocks: int | None = None) -> list[Call]:
    """The call with each turn (or block of turns) removed in turn (none for a one-turn call: a call needs a turn)."""
    if len(call.turns) < 2:
        return []
    return [call.model_copy(update={"turns": call.turns[: b.start] + call.turns[b.stop :]})
            for b in blocks(len(call.turns), max_blocks)]


def occlusion_batch(call: Call, max_blocks: int | None = None) -> list[Call]:
    """What to score for one call's evidence: the call itself first, then it without each turn (or block)."""
    return [call, *without_each_turn(call, max_blocks)]


def _measure(head: Head, probs: np.ndarray, target: int | None) -> tuple[str, float, int | None]:
    return head.spec.measure(head, probs, target)


def attributions(call: Call, model: str, schema: LabelSchema, predictions: Sequence[CallPrediction],
                 max_blocks: int | None = None) -> CallEvidence:
    """Evidence from the predictions of :func:`occlusion_batch` (same order, same ``max_blocks``)."""
    whole, rest = predictions[0], predictions[1:]
    runs = blocks(len(call.turns), max_blocks) if rest else []
    heads = {}
    for head in schema.heads:
        measure, score, target = _measure(head, whole.probs[head.name], None)
        deltas = [score - _measure(head, p.probs[head.name], target)[1] for p in rest]
        per_turn = [round(d, 6) for d, run in zip(deltas, runs) for _ in run]
        heads[head.name] = HeadEvidence(measure=measure, score=score, turns=per_turn or [0.0] * len(call.turns))
    return CallEvidence(call_id=call.call_id, model=model, heads=heads, block=len(runs[0]) if runs else 1)
