"""The one evaluation: :func:`evaluate_heads` computes every head's metrics, call and turn scope; the trainer,
`callqa evaluate`, the export gate, `callqa bench` and the notebooks call it. Which metrics a head has is its kind's
(:meth:`callqa.heads.HeadKind.metrics`: ordinal NMD/RSNOD/QWK/MAE, multiclass accuracy/macro-F1, multilabel micro/
macro F1 at per-label thresholds, ECE for all); turn heads add STC-3's nugget metrics JSD and RNSS, averaged over a
dialogue's turns, then over dialogues. The measures themselves are :mod:`callqa.measures`.
"""

from __future__ import annotations

import numpy as np

from callqa.measures import (  # noqa: F401  (the measures, re-exported: callqa.metrics is where users look)
    LOWER_IS_BETTER,
    calibration_curve,
    ece,
    jsd,
    kappa,
    nmd,
    per_dialogue_mean,
    rnss,
    rsnod,
    tune_thresholds,
)
from callqa.schema import Head, LabelSchema


def head_metrics(head: Head, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None = None) -> dict:
    """All metrics of one head over the calls that carry it (rows of q that are all zero are left out)."""
    keep = q.sum(-1) > 0
    p, q = p[keep], q[keep]
    out: dict = {"n": int(keep.sum())}
    if not out["n"]:
        return out
    out.update(head.spec.metrics(head, p, q, thresholds))
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
