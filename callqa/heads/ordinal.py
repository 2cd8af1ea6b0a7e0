"""An ordinal head: ordered levels (服务态度 1–5, 问题解决 未解决/部分/已解决), the listed order is the scale."""

from __future__ import annotations

import numpy as np

from callqa.measures import kappa, nmd, rsnod

from .base import Head
from .levels import LevelKind


class OrdinalKind(LevelKind):
    """Levels on a scale: an expected score, NMD/RSNOD against annotators' vote distributions, quadratic-weighted
    kappa, the MAE of the expected score; a scorecard may give points linearly along it."""

    name = "ordinal"
    scale = True
    gate_metric = "nmd"
    table_metrics = ("nmd", "rsnod", "qwk", "mae", "accuracy", "ece")
    agreement_metric = "QWK"
    kappa_weights = "quadratic"
    error_title = "该通话的 NMD"

    def expected(self, head: Head, probs: np.ndarray) -> float | None:
        return float(np.dot(probs, head.values))

    def class_metrics(self, head: Head, p: np.ndarray, q: np.ndarray, gold: np.ndarray, guess: np.ndarray) -> dict:
        values = head.values
        return {"nmd": float(nmd(p, q).mean()), "rsnod": float(rsnod(p, q).mean()),
                "qwk": kappa(gold, guess, list(range(head.size)), self.kappa_weights),
                "mae": float(np.abs(p @ values - q @ values).mean())}

    def call_errors(self, head: Head, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
        has = q.sum(-1) > 0
        return nmd(p, np.where(has[:, None], q, 1.0 / head.size))

    def measure(self, head: Head, probs: np.ndarray, target: int | None) -> tuple[str, float, int | None]:
        """Leaving a turn out moves the expected score: that move is the turn's weight."""
        return "expected", float(np.dot(probs, head.values)), None
