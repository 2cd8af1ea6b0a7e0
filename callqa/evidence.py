"""Which turns made a score: per-turn attributions by occlusion.

For a call of N turns the model scores N + 1 calls in one batch — the call, and the call with each turn removed —
and a turn's attribution is how much the score drops without it (positive: the turn pushed the score up; negative:
it pulled it down). Per head the score is the expected level (ordinal), the probability of the predicted class
(multiclass), or the probability of the most likely topic (multilabel). It runs on the ONNX model, like scoring, so
serving never needs torch; the cost is N + 1 calls' scoring (docs/scorecard.md → Evidence).
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


def without_each_turn(call: Call) -> list[Call]:
    """The call with each turn removed in turn (none for a one-turn call: a call needs a turn)."""
    if len(call.turns) < 2:
        return []
    return [call.model_copy(update={"turns": call.turns[:i] + call.turns[i + 1:]}) for i in range(len(call.turns))]


def occlusion_batch(call: Call) -> list[Call]:
    """What to score for one call's evidence: the call itself first, then it without each turn."""
    return [call, *without_each_turn(call)]


def _measure(head: Head, probs: np.ndarray, target: int | None) -> tuple[str, float, int | None]:
    if head.spec.ordinal:
        return "expected", float(np.dot(probs, head.values)), None
    target = int(np.argmax(probs)) if target is None else target
    return f"p({head.class_ids[target]})", float(probs[target]), target


def attributions(call: Call, model: str, schema: LabelSchema, predictions: Sequence[CallPrediction]) -> CallEvidence:
    """Evidence from the predictions of :func:`occlusion_batch` (same order)."""
    whole, rest = predictions[0], predictions[1:]
    heads = {}
    for head in schema.heads:
        measure, score, target = _measure(head, whole.probs[head.name], None)
        deltas = [score - _measure(head, p.probs[head.name], target)[1] for p in rest]
        heads[head.name] = HeadEvidence(measure=measure, score=score,
                                        turns=[round(d, 6) for d in deltas] or [0.0] * len(call.turns))
    return CallEvidence(call_id=call.call_id, model=model, heads=heads)
