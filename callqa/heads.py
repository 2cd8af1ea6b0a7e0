"""Head kinds: what differs between an ordinal, a multiclass and a multilabel head, in one place.

Every part of callqa that treats heads differently asks the head's kind (``KINDS[head.kind]``) instead of comparing
kind names: activation, the label's shape, whether there is a scale (expected score, NMD, QWK), the metric the int8
gate compares, the columns of metric tables, and how uncertain a prediction is for the review queue. Training keeps
the one thing that needs torch, the loss per kind (``callqa.training.model.LOSSES``). A new kind is one entry here
plus its loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Where a multilabel head has no tuned threshold (a run without validation labels for it), a label counts as
# predicted at this probability. The one default: scoring, metrics and the review UI all use it.
DEFAULT_THRESHOLD = 0.5

LOWER_IS_BETTER = frozenset({"loss", "nmd", "rsnod", "mae", "ece", "jsd", "rnss"})


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class HeadKind:
    name: str
    min_classes: int
    multilabel: bool  # independent yes/no per class (sigmoid); the label is a list of class ids
    ordinal: bool  # the classes are a scale: expected score, NMD/RSNOD, quadratic-weighted kappa
    gate_metric: str  # what export's int8 gate compares with fp32 (see LOWER_IS_BETTER for its direction)
    table_metrics: tuple[str, ...]  # metric columns of `callqa train/evaluate` tables, most important first
    agreement_metric: str  # what model–reviewer agreement reports: "QWK" or "kappa"
    # How a reviewer sees and sets the head (the review UI reads it from /api/model, never the kind):
    # "levels" — one of the classes, the model's distribution and confidence beside them; "labels" — any of them,
    # each with the model's probability against its threshold.
    widget: str = "levels"

    @property
    def kappa_weights(self) -> str | None:
        return "quadratic" if self.ordinal else None

    def activate(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities from logits [..., C]: a distribution over levels, or one probability per label."""
        return sigmoid(logits) if self.multilabel else softmax(logits)

    def uncertainty(self, probs: np.ndarray, thresholds: np.ndarray | None = None) -> tuple[float, float]:
        """(entropy, margin) of one prediction. Level heads: normalised entropy of the distribution and the gap
        between the two most likely levels. Multilabel: the most uncertain label's binary entropy and the smallest
        distance of a probability to its threshold."""
        p = np.asarray(probs, dtype=np.float64)
        if self.multilabel:
            cut = np.full(p.shape, DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds)
            q = p.clip(1e-9, 1 - 1e-9)
            binary = -(q * np.log(q) + (1 - q) * np.log(1 - q)) / math.log(2)
            return float(binary.max()), float(np.abs(p - cut).min())
        top = np.sort(p)[::-1]
        nz = p[p > 0]
        return float(-(nz * np.log(nz)).sum() / math.log(len(p))), float(top[0] - top[1])


KINDS: dict[str, HeadKind] = {
    "ordinal": HeadKind("ordinal", 2, multilabel=False, ordinal=True, gate_metric="nmd",
                        table_metrics=("nmd", "rsnod", "qwk", "mae", "accuracy", "ece"), agreement_metric="QWK"),
    "multiclass": HeadKind("multiclass", 2, multilabel=False, ordinal=False, gate_metric="macro_f1",
                           table_metrics=("accuracy", "macro_f1", "ece"), agreement_metric="kappa"),
    "multilabel": HeadKind("multilabel", 1, multilabel=True, ordinal=False, gate_metric="macro_f1",
                           table_metrics=("micro_f1", "macro_f1", "ece"), agreement_metric="kappa", widget="labels"),
}
