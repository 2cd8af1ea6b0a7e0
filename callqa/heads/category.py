"""A call-category head (来电类型: 咨询 / 办理 / 投诉 / 查询 / 其他): what kind of call this is, one per call.

Trained and measured like a multiclass head. What it adds: the month report's 分类统计 counts calls per category, and
the queue can be searched by it. A call's own metadata wins where it has one (the IVR menu or the CRM already filed
the call: ``meta.<head name>`` as a class id or its Chinese name); the model's category fills in for the rest, and a
reviewer's correction for the calls they reviewed.
"""

from __future__ import annotations

from callqa.calls import Label
from callqa.scores import LevelScore, TopicsScore

from .base import Head
from .multiclass import MulticlassKind


class CategoryKind(MulticlassKind):
    name = "category"
    counted = True

    def counted_labels(self, head: Head, score: LevelScore | TopicsScore | dict, meta: dict | None = None) -> list[str]:
        filed = (meta or {}).get(head.name)
        by_name = {name: class_id for class_id, name in head.classes.items()}
        if isinstance(filed, str | int) and not isinstance(filed, bool):
            found = str(filed) if str(filed) in head.classes else by_name.get(str(filed))
            if found is not None:
                return [found]
        level = score.get("level") if isinstance(score, dict) else getattr(score, "level", None)
        return [level] if level is not None else []

    def counted_label(self, head: Head, label: Label) -> list[str]:
        return [str(label)] if isinstance(label, str | int) and str(label) in head.classes else []
