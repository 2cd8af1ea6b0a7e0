"""A multiclass head: one of several classes that are no scale."""

from __future__ import annotations

from .levels import LevelKind


class MulticlassKind(LevelKind):
    """Classes without order: accuracy and macro-F1, Cohen's kappa for agreement."""

    name = "multiclass"
    gate_metric = "macro_f1"
    table_metrics = ("accuracy", "macro_f1", "ece")
    error_title = "1 − p(多数标注)"
