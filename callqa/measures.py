"""Measures over predicted and target distributions, head-agnostic: NMD and RSNOD (STC-3's distribution metrics), JSD
and RNSS (its nugget metrics), Cohen's kappa, expected calibration error, per-label thresholds.

All take predicted distributions ``p`` [N, C] and target distributions ``q`` [N, C] (one-hot or vote shares).
Torch-free: evaluation (training), the head kinds (callqa.heads) and model–reviewer agreement (serving) use them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score

# Where a multilabel head has no tuned threshold (a run without validation labels for it), a label counts as
# predicted at this probability. The one default: scoring, metrics and the review UI all use it.
DEFAULT_THRESHOLD = 0.5

# Metrics where a smaller value is better (the rest: larger is better).
LOWER_IS_BETTER = frozenset({"loss", "nmd", "rsnod", "mae", "ece", "jsd", "rnss"})


def kappa(a: Sequence, b: Sequence, labels: Sequence, weights: str | None = None) -> float | None:
    """Cohen's kappa of two raters (``weights="quadratic"``: QWK); None where it is undefined — when a single class
    occurs in both, agreement beyond chance cannot be measured (0.0 would read as "no better than chance")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns and returns nan in that case
        value = cohen_kappa_score(a, b, labels=labels, weights=weights)
    return None if math.isnan(value) else float(value)


def nmd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Normalised match distance per call: Σ_i |cumsum(p)_i − cumsum(q)_i| / (L − 1)."""
    return np.abs(np.cumsum(p, -1) - np.cumsum(q, -1)).sum(-1) / (p.shape[-1] - 1)


def _order_aware_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """OD(p‖q) per call: mean over bins i with q_i > 0 of Σ_j |i − j| (p_j − q_j)²."""
    L = p.shape[-1]
    dist = np.abs(np.arange(L)[:, None] - np.arange(L)[None, :])  # |i − j|
    dw = ((p - q) ** 2) @ dist.T  # dw[n, i] = Σ_j |i − j| (p_j − q_j)²
    support = q > 0
    return (dw * support).sum(-1) / support.sum(-1).clip(min=1)


def rsnod(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Root symmetric normalised order-aware divergence per call."""
    return np.sqrt((_order_aware_divergence(p, q) + _order_aware_divergence(q, p)) / 2 / (p.shape[-1] - 1))


def jsd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence per row, in bits (0..1): (KL(p‖m) + KL(q‖m)) / 2 with m = (p + q) / 2."""
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(a / m), 0.0).sum(-1)

    return (kl(p) + kl(q)) / 2


def rnss(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Root normalised sum of squares per row (0..1): sqrt(Σ (p_i − q_i)² / 2)."""
    return np.sqrt(((p - q) ** 2).sum(-1) / 2)


def per_dialogue_mean(values: np.ndarray, dialogue: np.ndarray) -> float:
    """Mean over dialogues of the mean over each dialogue's turns (STC-3's averaging: long dialogues don't weigh more)."""
    _, which = np.unique(dialogue, return_inverse=True)
    sums = np.bincount(which, weights=values)
    return float((sums / np.bincount(which)).mean())


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |accuracy − confidence| averaged over equal-width confidence bins."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(total)


def calibration_curve(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict]:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    return [{"confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean()),
             "n": int((which == b).sum())} for b in range(bins) if (which == b).any()]


def tune_thresholds(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-label threshold maximising that label's F1 on validation data (the default threshold for a label never present)."""
    grid = np.linspace(0.05, 0.95, 19)
    out = np.full(p.shape[1], DEFAULT_THRESHOLD)
    for j in range(p.shape[1]):
        if y[:, j].sum() == 0:
            continue
        scores = [f1_score(y[:, j], p[:, j] >= t, zero_division=0) for t in grid]
        out[j] = grid[int(np.argmax(scores))]
    return out
