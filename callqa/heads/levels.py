"""Heads that pick one class: a softmax distribution over the classes, trained on one class or annotators' votes.

The ordinal, multiclass and call-category kinds share this; they differ in what the classes mean (a scale or not)
and so in their metrics, and in whether the month report counts calls per class.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from callqa.calls import Label, Votes
from callqa.measures import kappa
from callqa.scores import LevelScore

from .base import Head, HeadKind, LabelError, calibration, normalised_entropy, softmax


class LevelKind(HeadKind):
    """One class per call: the distribution over classes, the most likely class and its probability."""

    def activate(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits)

    def expected(self, head: Head, probs: np.ndarray) -> float | None:
        """The expected score on the head's scale; None for classes that are no scale."""
        return None

    def decode(self, head: Head, probs: np.ndarray, thresholds: list[float] | None = None) -> LevelScore:
        p = [float(x) for x in probs]
        best = int(np.argmax(probs))
        level = head.class_ids[best]
        return LevelScore(display=head.display, distribution=dict(zip(head.class_ids, p)),
                          expected=self.expected(head, probs), level=level, level_name=head.classes[level],
                          confidence=p[best])

    def predicted(self, head: Head, probs: np.ndarray, thresholds: np.ndarray | None = None) -> list:
        return [head.class_ids[int(i)] for i in np.asarray(probs).argmax(-1)]

    def uncertainty(self, probs: np.ndarray, thresholds: np.ndarray | None = None) -> tuple[float, float]:
        """Normalised entropy of the distribution, and the gap between the two most likely classes."""
        p = np.asarray(probs, dtype=np.float64)
        top = np.sort(p)[::-1]
        return normalised_entropy(p), float(top[0] - top[1])

    def uncertainty_of(self, score: LevelScore) -> tuple[float, float]:
        return self.uncertainty(np.array(list(score.distribution.values())))

    def columns(self, head: Head, score: LevelScore) -> dict[str, Any]:
        return {"level": score.level, "confidence": score.confidence, "expected": score.expected,
                "distribution": list(score.distribution.values())}

    def target(self, head: Head, label: Label) -> np.ndarray:
        out = np.zeros(head.size, dtype=np.float32)
        if isinstance(label, list):
            raise LabelError(f"head {head.name!r} is {head.kind}: give one class or votes, not a list")
        if isinstance(label, Votes):
            for class_id, count in label.votes.items():
                out[head.index(class_id)] += count
            return out / out.sum()
        out[head.index(label)] = 1.0
        return out

    def label_json_schema(self, head: Head) -> dict:
        ids = list(head.class_ids)
        numbers = [int(i) for i in ids if re.fullmatch(r"-?[1-9][0-9]{0,5}|0", i)]
        return {"enum": ids + numbers}  # numeric levels also as numbers, as the call format takes them

    def metrics(self, head: Head, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None = None) -> dict:
        gold, guess = q.argmax(-1), p.argmax(-1)
        labels = list(range(head.size))
        correct = (gold == guess).astype(float)
        out = {"accuracy": float(correct.mean()), **calibration(p.max(-1), correct),
               "confusion": confusion_matrix(gold, guess, labels=labels).tolist()}
        out.update(self.class_metrics(head, p, q, gold, guess))
        return out

    def class_metrics(self, head: Head, p: np.ndarray, q: np.ndarray, gold: np.ndarray, guess: np.ndarray) -> dict:
        """What this kind adds to accuracy, calibration and the confusion matrix: macro-F1 over the classes."""
        labels = list(range(head.size))
        return {"macro_f1": float(f1_score(gold, guess, labels=labels, average="macro", zero_division=0))}

    def call_errors(self, head: Head, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
        return 1.0 - p[np.arange(len(p)), q.argmax(-1)]

    def agreement(self, head: Head, pairs: list[tuple[Any, Any]]) -> dict:
        reviewer, model = [r for r, _ in pairs], [m for _, m in pairs]
        return {"n": len(pairs), "accuracy": float(np.mean([a == b for a, b in pairs])),
                "kappa": kappa(reviewer, model, head.class_ids, self.kappa_weights)}

    def agreement_detail(self, head: Head, pairs: list[tuple[Any, Any]]) -> dict:
        matrix = confusion_matrix([r for r, _ in pairs], [m for _, m in pairs], labels=head.class_ids)
        return {"confusion": matrix.tolist(), "per_label": None}
