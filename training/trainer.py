"""The training loop: bucketed dynamic-padded batches, AdamW with warmup and linear decay, gradient accumulation,
evaluation on a validation set, early stopping, best-checkpoint restore, and resumable checkpoints.

A run directory holds everything needed later: ``model/`` (encoder + heads + schema), ``tokenizer.json``,
``run.json`` (config, render spec, data hashes, thresholds, history, validation metrics), ``checkpoint/`` while
training is unfinished.
"""

from __future__ import annotations

import math
import random
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from callqa import __version__
from callqa.encoders import resolve_encoder
from callqa.render import CallEncoder
from callqa.schema import LabelSchema, load_schema
from callqa.split import split_keys

from .checkpoint import Checkpoint, new_state
from .config import TrainConfig
from .data import (
    Rows,
    build_dataset,
    call_table,
    column,
    row_mask,
    row_targets,
)
from .distributed import Ranks, join_from_env, leave, local_device, spawn
from .loop import TrainingLoop, evaluate_rows
from .model import CallScorer, load_encoder
from .predict import predict_rows
from .run import DataFile, EncoderRef, RunDir, RunInfo, Validation


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def code_version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip()
    except Exception:
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def pick_device(name: str | None = None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(encoder_path: str):
    """The encoder's fast tokenizer as a `tokenizers.Tokenizer` (what the core renders with)."""
    tok = AutoTokenizer.from_pretrained(encoder_path)
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"{encoder_path}: needs a fast tokenizer (tokenizer.json); this one is slow-only")
    return tok.backend_tokenizer


def load_training_data(config: TrainConfig, data: list[Path], validation: list[Path] | None,
                       call_encoder: CallEncoder, work: Path) -> tuple[Rows, list[dict], list[str]]:
    """(training rows, validation rows, held-out call ids): the training rows are streamed from the files into Arrow
    files under ``work`` and memory-mapped, so a training set need not fit in memory; the validation rows (the
    validation files, or a stratified held-out share of the data) are held in memory. Labels are checked against
    the whole schema, so a file may carry heads this config does not train."""
    checked, schema = load_schema(config.schema_), config.label_schema()
    stratify = None if validation else schema.heads[0].name
    table = call_table(data, checked, stratify, work / "calls.arrow")
    if validation:
        train_table, val_table = table, call_table(validation, checked, None, work / "validation.arrow")
    else:
        f = config.eval.validation_fraction
        parts = split_keys(list(zip(column(table, "agent_id"), column(table, "stratum"))), (1 - f, f, 0.0),
                           seed=config.seed)
        train_table, val_table = table.select(parts[0]), table.select(parts[1])
    if not len(train_table) or not len(val_table):
        raise ValueError(f"need training and validation calls, got {len(train_table)} and {len(val_table)}")
    train_rows = build_dataset(train_table, call_encoder, schema, cache_file=work / "train.arrow",
                               source_weights=config.loss.source_weights)
    return train_rows, build_dataset(val_table, call_encoder, schema).to_list(), column(val_table, "call_id")


def make_optimizer(model: CallScorer, o) -> torch.optim.Optimizer:
    """AdamW with the encoder at ``lr`` (no weight decay on biases and norms) and the heads at ``head_lr``."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    enc_params = [(n, p) for n, p in model.encoder.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in enc_params if not any(k in n for k in no_decay)], "lr": o.lr, "weight_decay": o.weight_decay},
        {"params": [p for n, p in enc_params if any(k in n for k in no_decay)], "lr": o.lr, "weight_decay": 0.0},
        {"params": list(model.heads.parameters()), "lr": o.head_lr, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]])


@dataclass
class Setup:
    """What a training run has set up by the time the hooks run: its processes, scratch folder and log, then the
    schema, the tokenizer's pad id and the device."""

    ranks: Ranks
    work: Path
    log: Callable[..., None]
    schema: LabelSchema | None = None
    pad_id: int = 0
    dev: torch.device | None = None


class Trainer:
    """Trains a run folder from a recipe: renders the calls, fine-tunes the encoder and one head per label with the
    training loop (training.loop), keeps the best model on validation, tunes thresholds, writes ``run.json``.

    Subclasses change what it trains on and where it starts — the hooks :meth:`training_rows` and
    :meth:`initial_model` — and nothing else (setfit's way): :class:`callqa.training.distill.DistillationTrainer`
    trains a student on its teacher's targets. Under torchrun (WORLD_SIZE > 1 in the environment) each process
    trains its share (training.distributed)."""

    # Whether this trainer reads a recipe's distill: section; a plain trainer refuses a student's recipe rather
    # than train it on gold labels alone.
    distills: ClassVar[bool] = False

    def __init__(self, config: TrainConfig, device: str | None = None, progress: bool = True, log=print):
        if config.distill is not None and not self.distills:
            raise ValueError("this recipe distils a teacher (its distill: section): train it with `callqa distill` "
                             "or callqa.training.distill.DistillationTrainer")
        self.config, self.device, self.progress, self.log = config, device, progress, log

    def train(self, data: list[Path], out: Path, validation: list[Path] | None = None) -> RunInfo:
        """Train on ``data`` (validating on ``validation``, or a held-out share) into the run folder ``out``."""
        ranks = join_from_env(self.device)
        try:
            # The rendered training set lives here while training (TMPDIR chooses the disk; a run folder that a bad
            # file never got to start is never created).
            with tempfile.TemporaryDirectory(prefix="callqa-train-") as work:
                setup = Setup(ranks=ranks, work=Path(work), log=self.log if ranks.main else _silent)
                return self._run(data, out, validation, setup)
        finally:
            leave()

    def training_rows(self, rows: Rows, setup: Setup) -> Rows:
        """The rows the model trains on (a hook: the gold labels' targets as rendered)."""
        return rows

    def initial_model(self, encoder_path: Path, schema: LabelSchema) -> CallScorer:
        """The model training starts from (a hook: the pretrained encoder with fresh heads)."""
        return CallScorer(load_encoder(encoder_path), schema, dropout=self.config.optim.dropout)

    def _run(self, data: list[Path], out: Path, validation: list[Path] | None, setup: Setup) -> RunInfo:
        config, log, ranks, started = self.config, setup.log, setup.ranks, time.time()
        schema = config.label_schema()
        encoder_path = resolve_encoder(config.encoder)
        tokenizer = load_tokenizer(encoder_path)
        call_encoder = CallEncoder(tokenizer, config.render)
        train_rows, val_rows, held_out_ids = load_training_data(config, data, validation, call_encoder, setup.work)

        set_seed(config.seed)
        dev = pick_device(self.device or local_device())
        setup.schema, setup.pad_id, setup.dev = schema, call_encoder.pad_id, dev
        train_rows = self.training_rows(train_rows, setup)
        model = self.initial_model(Path(encoder_path), schema)
        encoder_ref = EncoderRef.of(config.encoder or encoder_path, model.encoder)
        log(f"{len(train_rows)} training and {len(val_rows)} validation calls; encoder {encoder_ref}; device {dev}"
            + (f" × {ranks.world} processes" if ranks.distributed else ""))
        model.freeze_lower_layers(config.optim.freeze_layers)
        model.to(dev)

        o = config.optim
        optimizer = make_optimizer(model, o)
        batches_per_epoch = math.ceil(len(train_rows) / o.batch_size)
        steps_per_epoch = math.ceil(batches_per_epoch / o.grad_accum)
        total_steps = o.max_steps or math.ceil(o.epochs * steps_per_epoch)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(o.warmup_ratio * total_steps), total_steps)

        out.mkdir(parents=True, exist_ok=True)
        checkpoint = Checkpoint(out, config)
        state, best_weights = new_state(), None
        resumed = checkpoint.load(model, optimizer, scheduler)
        if resumed:
            state, best_weights = resumed
            log(f"resumed from {checkpoint.dir} at step {state['step']}")

        loop = TrainingLoop(model, optimizer, scheduler, config, schema, train_rows, val_rows, call_encoder.pad_id, dev,
                            checkpoint, state, best_weights, log, ranks)
        loop_started = time.time()
        loop.run(total_steps, eval_every=config.eval.every_steps or steps_per_epoch, progress=self.progress)
        loop_seconds = time.time() - loop_started
        if loop.best_weights is not None:
            model.load_state_dict(loop.best_weights)

        probs, val_loss = predict_rows(model, val_rows, schema, call_encoder.pad_id, o.batch_size * 2, dev, config.loss,
                                       ranks)
        thresholds = tuned_thresholds(probs, val_rows, schema)
        info = RunInfo(
            callqa_version=code_version(),
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            encoder=encoder_ref,
            config=config,
            label_schema=schema,
            render=config.render,
            data=[DataFile.of(p) for p in data],
            validation=Validation(files=[DataFile.of(p) for p in validation]) if validation else
            Validation(held_out_fraction=config.eval.validation_fraction, held_out_ids=held_out_ids),
            n_train=len(train_rows),
            n_validation=len(val_rows),
            steps=state["step"],
            best_step=state["best_step"],
            device=str(dev),
            processes=ranks.world,
            train_seconds=round(time.time() - started, 1),
            loop_seconds=round(loop_seconds, 1),
            thresholds=thresholds,
            validation_loss=val_loss,
            validation_metrics=evaluate_rows(probs, val_rows, schema, thresholds),
            history=state["history"],
        )
        if ranks.main:
            model.to("cpu").save(RunDir(out).model)
            tokenizer.save(str(RunDir(out).tokenizer))
            RunDir(out).write_info(info)
            checkpoint.remove()
        return info


def tuned_thresholds(probs: dict[str, np.ndarray], val_rows: list[dict], schema: LabelSchema) -> dict[str, list[float]]:
    """Cut-offs of the heads whose kind decides at thresholds, tuned on the validation calls that carry each."""
    thresholds = {}
    for h in schema.heads:
        has = row_mask(val_rows, h.name)
        tuned = h.spec.tune_thresholds(probs[h.name][has], row_targets(val_rows, h.name)[has])
        if tuned is not None:
            thresholds[h.name] = tuned
    return thresholds


def train(config: TrainConfig, data: list[Path], out: Path, validation: list[Path] | None = None,
          device: str | None = None, progress: bool = True, log=print) -> RunInfo:
    """Train, evaluate on validation data, keep the best model; writes the run folder and returns its run.json."""
    return Trainer(config, device, progress, log).train(data, out, validation)


def train_processes(nproc: int, config: TrainConfig, data: list[Path], out: Path, validation: list[Path] | None = None,
                    device: str | None = None, progress: bool = True, log=print,
                    trainer: type[Trainer] = Trainer) -> RunInfo:
    """``trainer`` on ``nproc`` processes of this machine (DDP), or in this one when ``nproc`` is 1 (with ``log``);
    returns the run.json rank 0 wrote."""
    if nproc <= 1:
        return trainer(config, device, progress, log).train(data, out, validation)
    spawn(nproc, _train_rank, trainer, config, data, out, validation, device, progress)
    return RunDir(out).info()


def _train_rank(trainer, config, data, out, validation, device, progress) -> None:
    from callqa.console import console

    trainer(config, device, progress, console.print).train(data, out, validation)


def _silent(*_) -> None:
    pass
