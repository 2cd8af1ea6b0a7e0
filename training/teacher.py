"""Distillation's targets: the teacher's predictions on the training calls, mixed with the gold labels by ``alpha``
(the student's trainer reads them as it reads any targets)."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import torch

from callqa.schema import LabelSchema

from .config import DistillConfig
from .data import Rows, mask_column, target_column, turn_counts
from .distributed import Ranks
from .model import CallScorer
from .predict import predict_rows
from .run import RunDir


def teacher_targets(rows: Rows, distill: DistillConfig, schema: LabelSchema, pad_id: int, batch_size: int,
                    device: torch.device, cache_file: Path, ranks: Ranks, log) -> datasets.Dataset:
    """``rows`` with the targets replaced by the teacher's mix: every call for a call head; for a turn head only the
    turns that carry a gold label (the rows do not say which unlabeled turns a head applies to)."""
    teacher = CallScorer.load(RunDir(distill.teacher).model)
    missing = [h.name for h in schema.all_heads if h.name not in teacher.heads]
    if missing:
        raise ValueError(f"the teacher {distill.teacher} has no head {', '.join(missing)}")
    log(f"teacher {Path(distill.teacher).name}: predicting {len(rows)} training calls")
    probs, _ = predict_rows(teacher.to(device), rows, schema, pad_id, batch_size, device, ranks=ranks)
    del teacher
    offsets = np.cumsum([0, *turn_counts(rows, schema)])
    a = distill.alpha

    def mix(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {}
        for head in schema.heads:
            gold, has = np.array(batch[target_column(head.name)]), np.array(batch[mask_column(head.name)])
            teacher_p = probs[head.name][indices]
            out[target_column(head.name)] = np.where(has[:, None] > 0, a * teacher_p + (1 - a) * gold, teacher_p).tolist()
            out[mask_column(head.name)] = [1] * len(indices)
        for head in schema.turn_heads:
            targets = []
            for j, i in enumerate(indices):
                teacher_p = probs[head.name][offsets[i] : offsets[i + 1]]
                gold = np.array(batch[target_column(head.name)][j]).reshape(len(teacher_p), head.size)
                has = np.array(batch[mask_column(head.name)][j])[:, None] > 0  # labeled turns were all reached
                targets.append(np.where(has, a * np.nan_to_num(teacher_p) + (1 - a) * gold, gold).tolist())
            out[target_column(head.name)] = targets
        return out

    if not isinstance(rows, datasets.Dataset):
        rows = datasets.Dataset.from_list(rows)
    return rows.map(mix, with_indices=True, batched=True, desc="teacher targets", load_from_cache_file=False,
                    cache_file_name=str(cache_file))
