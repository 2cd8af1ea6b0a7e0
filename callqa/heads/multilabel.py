"""A multilabel head (投诉主题): any number of labels per call, each a yes/no at its own threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

from callqa.calls import Label, Votes
from callqa.measures import DEFAULT_THRESHOLD, tune_thresholds
from callqa.scores import LabelScore, LevelScore, TopicsScore

from .base import Head, HeadKind, LabelError, binary_kappa, calibration, sigmoid


def _cuts(head: Head, thresholds: Any) -> np.ndarray:
    return np.full(head.size, DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds, dtype=np.float64)


class MultilabelKind(HeadKind):
    """Sigmoid per label; thresholds tuned per label on validation data; micro/macro F1; counted by the report."""

    name = "multilabel"
    min_classes = 1
    multiple = True
    gate_metric = "macro_f1"
    table_metrics = ("micro_f1", "macro_f1", "ece")
    widget = "labels"
    counted = True
    error_title = "判错的标签数"

    def activate(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits)

    def decode(self, head: Head, probs: np.ndarray, thresholds: list[float] | None = None) -> TopicsScore:
        p = [float(x) for x in probs]
        cut = thresholds or [DEFAULT_THRESHOLD] * head.size
        labels = [LabelScore(id=c, name=head.classes[c], probability=p[i], threshold=float(cut[i]), predicted=p[i] >= cut[i])
                  for i, c in enumerate(head.class_ids)]
        labels.sort(key=lambda s: -s.probability)
        return TopicsScore(display=head.display, labels=labels, predicted=[s.id for s in labels if s.predicted])

    def predicted(self, head: Head, probs: np.ndarray, thresholds: np.ndarray | None = None) -> list:
        cut = _cuts(head, thresholds)
        return [[c for j, c in enumerate(head.class_ids) if row[j] >= cut[j]] for row in np.asarray(probs)]

    def gold(self, head: Head, q: np.ndarray) -> list:
        return [[c for j, c in enumerate(head.class_ids) if row[j] > 0.5] for row in np.asarray(q)]

    def uncertainty(self, probs: np.ndarray, thresholds: np.ndarray | None = None) -> tuple[float, float]:
        """The most uncertain label's binary entropy, and the smallest distance of a probability to its threshold."""
        p = np.asarray(probs, dtype=np.float64)
        cut = np.full(p.shape, DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds)
        q = p.clip(1e-9, 1 - 1e-9)
        binary = -(q * np.log(q) + (1 - q) * np.log(1 - q)) / np.log(2)
        return float(binary.max()), float(np.abs(p - cut).min())

    def uncertainty_of(self, score: TopicsScore) -> tuple[float, float]:
        probs = np.array([label.probability for label in score.labels])
        return self.uncertainty(probs, np.array([label.threshold for label in score.labels]))

    def columns(self, head: Head, score: TopicsScore) -> dict[str, Any]:
        by_id = {label.id: label.probability for label in score.labels}
        return {"predicted": list(score.predicted),
                "probabilities": [by_id[c] for c in head.class_ids]}  # in the schema's class order

    def counted_labels(self, head: Head, score: LevelScore | TopicsScore | dict, meta: dict | None = None) -> list[str]:
        predicted = score.get("predicted") if isinstance(score, dict) else getattr(score, "predicted", None)
        return list(predicted) if isinstance(predicted, list) else []

    def counted_label(self, head: Head, label: Label) -> list[str]:
        return [str(t) for t in label] if isinstance(label, list) else []

    def target(self, head: Head, label: Label) -> np.ndarray:
        if isinstance(label, Votes):
            raise LabelError(f"head {head.name!r} is multilabel: give a list of classes, not votes")
        if not isinstance(label, list):
            raise LabelError(f"head {head.name!r} is multilabel: give a list of classes, got {label!r}")
        out = np.zeros(head.size, dtype=np.float32)
        for class_id in label:
            out[head.index(class_id)] = 1.0
        return out

    def label_json_schema(self, head: Head) -> dict:
        return {"type": "array", "items": {"enum": list(head.class_ids)}, "maxItems": 1000}

    def metrics(self, head: Head, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None = None) -> dict:
        t = _cuts(head, thresholds)
        y, pred = q > 0.5, p >= t
        present = y.any(0) | pred.any(0)
        return {
            "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y[:, present], pred[:, present], average="macro", zero_division=0)) if present.any() else 0.0,
            "per_label": {c: {"precision": float(precision_score(y[:, j], pred[:, j], zero_division=0)),
                              "recall": float(recall_score(y[:, j], pred[:, j], zero_division=0)),
                              "f1": float(f1_score(y[:, j], pred[:, j], zero_division=0)),
                              "support": int(y[:, j].sum()), "threshold": float(t[j])}
                          for j, c in enumerate(head.class_ids)},
            **calibration(p.ravel(), y.ravel().astype(float)),
        }

    def call_errors(self, head: Head, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
        return ((p >= _cuts(head, thresholds)) != (q > 0.5)).sum(-1).astype(float)

    def tune_thresholds(self, p: np.ndarray, q: np.ndarray) -> list[float] | None:
        return tune_thresholds(p, q > 0.5).tolist()

    def positive_weights(self, q: np.ndarray) -> np.ndarray | None:
        """(negatives / positives) per label, clipped to 1..20."""
        pos = q.sum(0)
        return ((len(q) - pos) / np.clip(pos, 1, None)).clip(1, 20)

    def distillation_weight(self, head: Head) -> float:
        """A mean over labels leaves each label a small gradient against soft targets: weigh by the label count."""
        return float(head.size)

    def agreement(self, head: Head, pairs: list[tuple[Any, Any]]) -> dict:
        reviewer = [int(c in r) for r, _ in pairs for c in head.class_ids]
        model = [int(c in m) for _, m in pairs for c in head.class_ids]
        return {"n": len(pairs), "accuracy": float(np.mean(np.array(reviewer) == np.array(model))),
                "kappa": binary_kappa(reviewer, model)}

    def agreement_detail(self, head: Head, pairs: list[tuple[Any, Any]]) -> dict:
        per_label = {head.classes[c]: {"model": sum(c in m for _, m in pairs), "reviewer": sum(c in r for r, _ in pairs),
                                       "both": sum(c in r and c in m for r, m in pairs)} for c in head.class_ids}
        return {"confusion": None, "per_label": per_label}
