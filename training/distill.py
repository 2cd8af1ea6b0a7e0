"""Distillation: a smaller, faster student from a trained run (the teacher).

The student starts as the teacher with fewer encoder layers (every n-th, keeping the top one, or the lowest K) and the
teacher's heads, then trains with the one trainer on targets that mix the teacher's distributions with the gold labels
(``alpha``): :class:`DistillationTrainer`, the trainer with two hooks overridden. Cross-entropy is linear in its target, so training on the mix is training on alpha × the cross-entropy to
the teacher (its KL plus a constant) + (1 − alpha) × the gold loss. Calls without labels — call centers record
millions — learn the teacher's distributions alone. Validation, early stopping and the exported gate use gold labels.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Literal

from safetensors.torch import save_file
from tokenizers import Tokenizer
from torch import nn
from transformers import PreTrainedTokenizerFast

from callqa.schema import LabelSchema

from .config import DistillConfig, TrainConfig
from .data import Rows
from .model import CallScorer
from .run import RunDir, RunInfo
from .teacher import teacher_targets
from .trainer import Setup, Trainer, train_processes

# The teacher's heads in a student's starting folder, beside its encoder.
HEADS_FILE = "heads.safetensors"

Pick = Literal["every", "lower"]


def pick_layers(n_layers: int, keep: int, pick: Pick = "every") -> list[int]:
    """Which of the teacher's ``n_layers`` the student keeps: every n-th ending with the top layer (12 → 4: 2, 5, 8,
    11), or the lowest ``keep``."""
    if not 1 <= keep <= n_layers:
        raise ValueError(f"--layers {keep}: the teacher has {n_layers} layers; keep 1 to {n_layers}")
    if pick == "lower":
        return list(range(keep))
    return [round((i + 1) * n_layers / keep) - 1 for i in range(keep)]


def write_student(teacher_run: Path, layers: list[int], folder: Path) -> None:
    """The teacher's model with only ``layers`` of its encoder: a Hugging Face encoder folder with the teacher's
    tokenizer, heads and schema beside it (what training starts from)."""
    teacher = CallScorer.load(RunDir(teacher_run).model)
    encoder = teacher.encoder
    encoder.encoder.layer = nn.ModuleList([encoder.encoder.layer[i] for i in layers])
    encoder.config.num_hidden_layers = len(layers)
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in teacher.heads.state_dict().items()}, str(folder / HEADS_FILE))
    # The run's tokenizer as a Hugging Face tokenizer folder, so the student's folder loads like any encoder's.
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(RunDir(teacher_run).tokenizer))).save_pretrained(folder)


def student_config(teacher: RunInfo, teacher_run: Path, init: Path, layers: list[int], alpha: float) -> TrainConfig:
    """The teacher's recipe for the student: its encoder is ``init``; it freezes the same share of its layers; it
    trains for the teacher's compute, not its epochs: the steps the teacher ran × teacher layers / student layers (a
    4-layer student of a 12-layer teacher takes 3× the steps, each about a third as costly), and its learning-rate
    schedule ends there. The steps it ran, not the ones it planned: a teacher early-stopped at 144 of 324 planned steps
    otherwise gave its student a 972-step schedule whose 97-step warm-up ended in early stopping at the peak learning
    rate (docs/export.md); epochs are scaled alike only so the recipe reads right, as the step limit ends the run. No
    positive-class weights (they would inflate the teacher's small probabilities on every topic a call lacks). A
    multilabel head's loss is a mean over its labels; against soft targets that leaves each label a small gradient,
    so the head's weight is multiplied by its number of labels (the sum over labels)."""
    config = teacher.config
    depth = teacher_layers(teacher_run)
    freeze = config.optim.freeze_layers * len(layers) // depth
    scaled = {"epochs": math.ceil(config.optim.epochs * depth / len(layers)),
              "max_steps": math.ceil(teacher.steps * depth / len(layers))}
    weights = dict(config.loss.head_weights)
    for head in config.label_schema().all_heads:
        if head.spec.distillation_weight(head) != 1.0:
            weights[head.name] = weights.get(head.name, 1.0) * head.spec.distillation_weight(head)
    return config.model_copy(update={
        "encoder": str(init),
        "optim": config.optim.model_copy(update={"freeze_layers": freeze, **scaled}),
        "loss": config.loss.model_copy(update={"pos_weight": False, "head_weights": weights}),
        "distill": DistillConfig(teacher=str(teacher_run), alpha=alpha, layers=layers),
    })


def teacher_layers(teacher_run: Path) -> int:
    config = RunDir(teacher_run).encoder_config()
    return int(config["num_hidden_layers"])


class DistillationTrainer(Trainer):
    """The trainer, on a student recipe (its ``distill:`` section): it starts from the teacher's heads on the
    student's layers (``student-init/``, :func:`write_student`) and trains on the teacher's distributions mixed
    with the gold labels (training.teacher). Validation, early stopping and the gate use gold labels, as always."""

    distills = True

    def training_rows(self, rows: Rows, setup: Setup) -> Rows:
        config = self.config
        return teacher_targets(rows, config.distill, setup.schema, setup.pad_id, config.optim.batch_size * 2,
                               setup.dev, setup.work / "distill.arrow", setup.ranks, setup.log)

    def initial_model(self, encoder_path: Path, schema: LabelSchema) -> CallScorer:
        model = super().initial_model(encoder_path, schema)
        if (encoder_path / HEADS_FILE).exists():
            model.load_heads(encoder_path / HEADS_FILE)
        return model


def distill(teacher_run: Path, keep: int, data: list[Path], out: Path, validation: list[Path] | None = None,
            pick: Pick = "every", alpha: float = 0.7, max_steps: int | None = None, seed: int | None = None,
            nproc: int = 1, device: str | None = None, progress: bool = True, log=print,
            metric: str | None = None) -> RunInfo:
    """Train a ``keep``-layer student of ``teacher_run`` on ``data`` (labeled and unlabeled calls) into ``out``."""
    teacher = RunDir(teacher_run).info()
    layers = pick_layers(teacher_layers(teacher_run), keep, pick)
    init = RunDir(out).student_init  # a fixed place: a killed run resumes with the same config
    if not (init / "config.json").exists():
        write_student(teacher_run, layers, init)
    config = student_config(teacher, teacher_run, init, layers, alpha).overridden(max_steps, seed, metric)
    log(f"student: layers {layers} of the teacher's {teacher_layers(teacher_run)}, alpha {alpha}")
    info = train_processes(nproc, config, data, out, validation, device, progress, log, trainer=DistillationTrainer)
    shutil.rmtree(init)
    return info
