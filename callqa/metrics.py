"""Metrics per head. Ordinal: NMD, RSNOD (STC-3's official distribution metrics), QWK, MAE of the expected score,
accuracy, confusion matrix. Multilabel: micro/macro F1 at per-label thresholds. ECE for every head. Turn heads:
STC-3's nugget metrics JSD and RNSS, averaged over a dialogue's turns, then over dialogues.

All take predicted distributions ``p`` [N, C] and target distributions ``q`` [N, C] (one-hot or vote shares).
Torch-free: evaluation (training) and model–reviewer agreement (serving) use the same functions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score, precision_score, recall_score

from callqa.heads import DEFAULT_THRESHOLD, LOWER_IS_BETTER
from callqa.schema import Head, LabelSchema


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


def head_metrics(head: Head, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None = None) -> dict:
    """All metrics of one head over the calls that carry it (rows of q that are all zero are left out)."""
    keep = q.sum(-1) > 0
    p, q = p[keep], q[keep]
    out: dict = {"n": int(keep.sum())}
    if not out["n"]:
        return out
    if head.spec.multilabel:
        t = thresholds if thresholds is not None else np.full(head.size, DEFAULT_THRESHOLD)
        y = q > 0.5
        pred = p >= t
        present = y.any(0) | pred.any(0)
        out.update(
            micro_f1=float(f1_score(y, pred, average="micro", zero_division=0)),
            macro_f1=float(f1_score(y[:, present], pred[:, present], average="macro", zero_division=0)) if present.any() else 0.0,
            per_label={c: {"precision": float(precision_score(y[:, j], pred[:, j], zero_division=0)),
                           "recall": float(recall_score(y[:, j], pred[:, j], zero_division=0)),
                           "f1": float(f1_score(y[:, j], pred[:, j], zero_division=0)),
                           "support": int(y[:, j].sum()), "threshold": float(t[j])}
                       for j, c in enumerate(head.class_ids)},
            ece=ece(p.ravel(), y.ravel().astype(float)),
            calibration=calibration_curve(p.ravel(), y.ravel().astype(float)),
        )
        return out
    gold, guess = q.argmax(-1), p.argmax(-1)
    labels = list(range(head.size))
    out.update(
        accuracy=float((gold == guess).mean()),
        ece=ece(p.max(-1), (gold == guess).astype(float)),
        calibration=calibration_curve(p.max(-1), (gold == guess).astype(float)),
        confusion=confusion_matrix(gold, guess, labels=labels).tolist(),
    )
    if head.spec.ordinal:
        values = head.values
        out.update(
            nmd=float(nmd(p, q).mean()),
            rsnod=float(rsnod(p, q).mean()),
            qwk=kappa(gold, guess, labels, head.spec.kappa_weights),
            mae=float(np.abs(p @ values - q @ values).mean()),
        )
    else:
        out["macro_f1"] = float(f1_score(gold, guess, labels=labels, average="macro", zero_division=0))
    return out


def turn_head_metrics(head: Head, p: np.ndarray, q: np.ndarray, dialogue: np.ndarray) -> dict:
    """A turn head's metrics over the turns that carry it and that the model reached: ``p``, ``q`` [T, C] per turn,
    ``dialogue`` [T] the call each turn belongs to. JSD and RNSS as STC-3 averages them, plus :func:`head_metrics`."""
    keep = (q.sum(-1) > 0) & np.isfinite(p).all(-1)
    out = head_metrics(head, p[keep], q[keep])
    if out["n"]:
        out.update(jsd=per_dialogue_mean(jsd(p[keep], q[keep]), dialogue[keep]),
                   rnss=per_dialogue_mean(rnss(p[keep], q[keep]), dialogue[keep]),
                   dialogues=int(len(np.unique(dialogue[keep]))))
    return out


def evaluate_heads(schema: LabelSchema, probs: dict[str, np.ndarray], targets: dict[str, np.ndarray],
                   thresholds: dict[str, np.ndarray] | None = None, dialogue: np.ndarray | None = None) -> dict[str, dict]:
    """Metrics of every head of ``schema``: call heads from ``probs``/``targets`` [N, C] (multilabel heads at their
    ``thresholds``), turn heads from [T, C] over all turns, ``dialogue`` [T] naming each turn's call (needed when the
    schema has turn heads)."""
    cuts = thresholds or {}
    out = {h.name: head_metrics(h, probs[h.name], targets[h.name], cuts.get(h.name)) for h in schema.heads}
    if schema.turn_heads:
        if dialogue is None:
            raise ValueError(f"schema {schema.name!r} has turn heads: give each turn's call (dialogue)")
        out.update({h.name: turn_head_metrics(h, probs[h.name], targets[h.name], dialogue) for h in schema.turn_heads})
    return out


def pick_metric(metrics: dict[str, dict], name: str, schema: LabelSchema | None = None) -> tuple[float, bool]:
    """(value, lower_is_better) of 'HEAD.METRIC' or 'mean.METRIC' (the mean over heads that have it); nan where
    the metric is undefined (a kappa with one class). 'mean.gate' (needs ``schema``): the mean over call heads of
    the metric export's gate compares for each head's kind, as a loss (NMD; 1 − macro-F1)."""
    head, _, metric = name.partition(".")
    if name == "mean.gate":
        if schema is None:
            raise ValueError("mean.gate needs the label schema")
        gates = [(metrics[h.name].get(h.spec.gate_metric), h.spec.gate_metric in LOWER_IS_BETTER)
                 for h in schema.heads if h.name in metrics]
        values = [v if lower else 1 - v for v, lower in gates if v is not None]
        return (float(np.mean(values)) if values else float("nan")), True
    if head == "mean":
        values = [m[metric] for m in metrics.values() if m.get(metric) is not None]
        value = float(np.mean(values)) if values else float("nan")
    else:
        found = metrics[head].get(metric)
        value = float("nan") if found is None else float(found)
    return value, metric in LOWER_IS_BETTER
