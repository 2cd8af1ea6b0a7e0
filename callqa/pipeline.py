"""The one scoring pipeline: calls → the model's head scores and the scorecard, per call.

/score and `callqa score` (every engine and sink) all score through :class:`ScoringPipeline`, so a call gets the same
numbers wherever it is scored. The scoring service batches the model's work across requests, so it calls the two
halves separately: the batched model run's predictions, then :meth:`ScoringPipeline.assemble` per request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from callqa.bundle import BundleInfo
from callqa.calls import Call
from callqa.evidence import CallEvidence
from callqa.schema import Head, LabelSchema
from callqa.scorecard import Scorecard, ScorecardResult
from callqa.scorer import CallPrediction, OnnxScorer
from callqa.scores import CallScores, LevelScore, TopicsScore


class ScoredCall(CallScores):
    """A call's head scores and, unless skipped, its scorecard."""

    scorecard: ScorecardResult | None = Field(default=None, description="the QA scorecard: total, sections, items, "
                                              "deductions with evidence, red line; absent when not asked for")
    evidence: CallEvidence | None = Field(default=None, description="per head, each turn's attribution (occlusion); "
                                          "only when asked for")


def head_score(head: Head, probs: np.ndarray, thresholds: list[float] | None = None) -> LevelScore | TopicsScore:
    """One head's score as the API answers it, decoded by the head's kind."""
    return head.spec.decode(head, probs, thresholds)


def head_scores(schema: LabelSchema, probs: dict[str, np.ndarray],
                thresholds: dict[str, list[float]] | None = None) -> dict[str, LevelScore | TopicsScore]:
    """Every head's score from its probabilities (a multilabel head's thresholds applied)."""
    return {h.name: head_score(h, probs[h.name], (thresholds or {}).get(h.name)) for h in schema.heads}


class ScoringPipeline:
    def __init__(self, info: BundleInfo, scorecard: Scorecard | None = None):
        if scorecard is not None:
            # A card for another schema, or naming a head this model lacks, fails here, before any call is scored.
            scorecard.check_schema(info.schema_, info.tag)
        self.info, self.scorecard = info, scorecard

    def assemble(self, calls: Sequence[Call], predictions: Sequence[CallPrediction],
                 with_scorecard: bool = True) -> list[ScoredCall]:
        """Head scores from the model's probabilities (thresholds applied), then the scorecard over those scores."""
        schema, thresholds = self.info.schema_, self.info.thresholds
        out = []
        for call, p in zip(calls, predictions, strict=True):
            scored = ScoredCall(call_id=call.call_id, n_tokens=p.n_tokens, truncated=p.truncated,
                                scores=head_scores(schema, p.probs, thresholds),
                                turns={h.name: [None if t is None else head_score(h, t, thresholds.get(h.name))
                                                for t in p.turn_probs[h.name]] for h in schema.turn_heads})
            if with_scorecard and self.scorecard is not None:
                scored.scorecard = self.scorecard.score(call, scored)
            out.append(scored)
        return out

    def score(self, scorer: OnnxScorer, calls: Sequence[Call], with_scorecard: bool = True) -> list[ScoredCall]:
        return self.assemble(calls, scorer.predict(list(calls)), with_scorecard)
