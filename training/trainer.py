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
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from callqa import __version__
from callqa.encoders import resolve_encoder
from callqa.metrics import evaluate_heads, pick_metric
from callqa.render import CallEncoder
from callqa.schema import LabelSchema, load_schema
from callqa.split import split_keys

from .checkpoint import Checkpoint, new_state
from .config import TrainConfig
from .data import (
    Rows,
    bucketed_batches,
    build_dataset,
    call_lengths,
    call_table,
    column,
    iterate,
    row_mask,
    row_targets,
    row_turn_targets,
    turn_counts,
)
from .distributed import Ranks, join_from_env, leave, local_device, spawn
from .model import CallScorer, head_losses, load_encoder
from .predict import autocast_for, predict_rows
from .run import DataFile, EncoderRef, RunDir, RunInfo, Validation
from .teacher import teacher_targets


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


class LogProgress:
    """Training progress as plain lines, for a log or CI where no progress bar can redraw: a line every ``every``
    steps or ``seconds``, whichever comes first, with step/total, loss, elapsed time and the time left."""

    def __init__(self, total: int, log, done: int = 0, every: int = 50, seconds: float = 30.0):
        self.total, self.log, self.every, self.seconds = total, log, every, seconds
        self.start_step, self.started = done, time.monotonic()
        self.last_time, self.last_step = self.started, done

    def update(self, step: int, epoch: int, loss: float) -> None:
        now = time.monotonic()
        if step < self.total and step - self.last_step < self.every and now - self.last_time < self.seconds:
            return
        self.last_time, self.last_step = now, step
        elapsed = now - self.started
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        eta = f"{(self.total - step) / rate:.0f} s" if rate > 0 else "?"
        self.log(f"train step {step}/{self.total} (epoch {epoch}): loss {loss:.4f}, {elapsed:.0f} s elapsed, eta {eta}")


def evaluate_rows(probs: dict[str, np.ndarray], rows: list[dict], schema: LabelSchema,
                  thresholds: dict[str, list[float]] | None = None) -> dict[str, dict]:
    """Every head's metrics on prepared rows, through the one evaluation (callqa.metrics.evaluate_heads)."""
    targets = {h.name: row_targets(rows, h.name) for h in schema.heads}
    targets.update({h.name: row_turn_targets(rows, h.name) for h in schema.turn_heads})
    cuts = {name: np.array(t) for name, t in (thresholds or {}).items()}
    dialogue = np.repeat(np.arange(len(rows)), turn_counts(rows, schema)) if schema.turn_heads else None
    return evaluate_heads(schema, probs, targets, cuts, dialogue)


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
    train_rows = build_dataset(train_table, call_encoder, schema, cache_file=work / "train.arrow")
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


def positive_weights(rows: list[dict], schema: LabelSchema, dev: torch.device) -> dict[str, torch.Tensor]:
    """Positive-class weights of the heads whose kind has them (multilabel: negatives / positives per label)."""
    out = {}
    for head in schema.heads:
        weights = head.spec.positive_weights(row_targets(rows, head.name)[row_mask(rows, head.name)])
        if weights is not None:
            out[head.name] = torch.tensor(weights, device=dev)
    return out


def train(config: TrainConfig, data: list[Path], out: Path, validation: list[Path] | None = None,
          device: str | None = None, progress: bool = True, log=print) -> RunInfo:
    """Train, evaluate on validation data, keep the best model; writes the run folder and returns its run.json.
    Started by torchrun (WORLD_SIZE > 1 in the environment), each process trains its share (training.distributed)."""
    ranks = join_from_env(device)
    try:
        # The rendered training set lives here while training (TMPDIR chooses the disk; a run folder that a bad
        # file never got to start is never created).
        with tempfile.TemporaryDirectory(prefix="callqa-train-") as work:
            return _train(config, data, out, validation, device, progress, log if ranks.main else _silent, ranks,
                          Path(work))
    finally:
        leave()


def train_processes(nproc: int, config: TrainConfig, data: list[Path], out: Path, validation: list[Path] | None = None,
                    device: str | None = None, progress: bool = True, log=print) -> RunInfo:
    """``train`` on ``nproc`` processes of this machine (DDP), or in this one when ``nproc`` is 1 (with ``log``);
    returns the run.json rank 0 wrote."""
    if nproc <= 1:
        return train(config, data, out, validation, device, progress, log)
    spawn(nproc, _train_rank, config, data, out, validation, device, progress)
    return RunDir(out).info()


def _train_rank(config, data, out, validation, device, progress) -> None:
    from callqa.console import console

    train(config, data, out, validation, device, progress, log=console.print)


def _silent(*_) -> None:
    pass


def _train(config: TrainConfig, data: list[Path], out: Path, validation: list[Path] | None, device: str | None,
           progress: bool, log, ranks: Ranks, work: Path) -> RunInfo:
    started = time.time()
    schema = config.label_schema()
    encoder_path = resolve_encoder(config.encoder)
    tokenizer = load_tokenizer(encoder_path)
    call_encoder = CallEncoder(tokenizer, config.render)
    train_rows, val_rows, held_out_ids = load_training_data(config, data, validation, call_encoder, work)

    set_seed(config.seed)
    dev = pick_device(device or local_device())

    if config.distill:
        train_rows = teacher_targets(train_rows, config.distill, schema, call_encoder.pad_id, config.optim.batch_size * 2,
                                     dev, work / "distill.arrow", ranks, log)
    model = CallScorer(load_encoder(encoder_path), schema, dropout=config.optim.dropout)
    if (Path(encoder_path) / "heads.safetensors").exists():  # a student (callqa distill) starts from its teacher's
        model.load_heads(Path(encoder_path) / "heads.safetensors")
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
    loop.run(total_steps, eval_every=config.eval.every_steps or steps_per_epoch, progress=progress)
    loop_seconds = time.time() - loop_started
    if loop.best_weights is not None:
        model.load_state_dict(loop.best_weights)

    probs, val_loss = predict_rows(model, val_rows, schema, call_encoder.pad_id, o.batch_size * 2, dev, config.loss,
                                   ranks)
    thresholds = {}
    for h in schema.heads:  # the heads whose kind decides at thresholds, tuned on validation calls
        has = row_mask(val_rows, h.name)
        tuned = h.spec.tune_thresholds(probs[h.name][has], row_targets(val_rows, h.name)[has])
        if tuned is not None:
            thresholds[h.name] = tuned

    info = RunInfo(
        callqa_version=code_version(),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        encoder=encoder_ref,
        config=config.model_dump(mode="json", by_alias=True),
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


class TrainingLoop:
    """Optimizer steps over length-bucketed batches with gradient accumulation, evaluation every ``eval_every``
    steps, early stopping on the recipe's metric, keeping the best weights, and a checkpoint after each evaluation."""

    def __init__(self, model, optimizer, scheduler, config: TrainConfig, schema: LabelSchema, train_rows, val_rows,
                 pad_id: int, dev: torch.device, checkpoint: Checkpoint, state: dict, best_weights, log,
                 ranks: Ranks = Ranks()):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.ranks = ranks
        # Forward/backward through DDP (it averages the gradients over ranks); evaluation and saving use the model.
        self.trained = model
        if ranks.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.trained = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        self.config, self.schema, self.o = config, schema, config.optim
        self.train_rows, self.val_rows, self.pad_id, self.dev = train_rows, val_rows, pad_id, dev
        self.checkpoint, self.state, self.best_weights, self.log = checkpoint, state, best_weights, log
        self.pos_weights = positive_weights(train_rows, schema, dev) if config.loss.pos_weight else {}
        self.head_weight = {h.name: config.loss.head_weights.get(h.name, 1.0) for h in schema.all_heads}

    def evaluate(self) -> bool:
        """Evaluate, record, keep the best weights; True when early stopping says stop."""
        state, config = self.state, self.config
        probs, val_loss = predict_rows(self.model, self.val_rows, self.schema, self.pad_id, self.o.batch_size * 2,
                                       self.dev, config.loss, self.ranks)
        metrics = evaluate_rows(probs, self.val_rows, self.schema)
        metrics_flat = {f"{h}.{k}": v for h, m in metrics.items() for k, v in m.items() if isinstance(v, float)}
        value, lower = ((val_loss, True) if config.eval.metric == "loss"
                        else pick_metric(metrics, config.eval.metric, self.schema))
        state["history"].append({"step": state["step"], "epoch": state["epoch"], "val_loss": val_loss, **metrics_flat})
        best = state["best"]
        improved = best is None or math.isnan(best) or (value < best if lower else value > best)
        if improved:
            state.update(best=value, best_step=state["step"], bad_evals=0)
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        else:
            state["bad_evals"] += 1
        note = "(best)" if improved else f"(best {state['best']:.4f} at step {state['best_step']})"
        self.log(f"step {state['step']}: val loss {val_loss:.4f}, {config.eval.metric} {value:.4f} {note}")
        self.model.train()
        return state["bad_evals"] >= config.eval.patience

    def step(self, batch) -> float:
        """Forward and backward of one batch; returns its loss."""
        batch = batch.to(self.dev)
        with autocast_for(self.dev):
            logits = self.trained(**batch.model_inputs())
        per_head = head_losses({k: v.float() for k, v in logits.items()}, batch.targets, batch.masks, self.schema,
                               self.config.loss, self.pos_weights, self.ranks.label_counts(batch.masks))
        loss = sum(self.head_weight[h] * v for h, v in per_head.items())
        (loss / self.o.grad_accum).backward()
        return loss.item()

    def optimizer_step(self) -> None:
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.o.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state["step"] += 1

    def epoch_batches(self, lengths: list[int], epoch: int) -> list[list[int]]:
        """This rank's share of each global batch of the epoch. Every rank draws the same global batches (same
        seed); a final batch too small to give every rank a call is left out, as DDP needs all ranks in each step."""
        batches = bucketed_batches(lengths, self.o.batch_size, seed=self.config.seed + epoch)
        return [self.ranks.share(b) for b in batches if len(b) >= self.ranks.world]

    def run(self, total_steps: int, eval_every: int, progress: bool) -> None:
        state, o = self.state, self.o
        lengths = call_lengths(self.train_rows)
        columns = [TextColumn("[bold]train[/bold] epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
        self.model.train()
        stop = state["step"] >= total_steps
        # A bar where a person watches a terminal; plain lines where the output goes to a log or a pipe.
        bar_visible = progress and self.ranks.main and Console(stderr=True).is_terminal
        lines = LogProgress(total_steps, self.log, done=state["step"]) if progress and not bar_visible else None
        with Progress(*columns, disable=not bar_visible, transient=False) as bar:
            task = bar.add_task("train", total=total_steps, completed=state["step"], epoch=state["epoch"] + 1, info="")
            running = None
            while not stop:
                batches = self.epoch_batches(lengths, state["epoch"])
                for b_index, batch in enumerate(iterate(self.train_rows, batches, self.schema, self.pad_id)):
                    if b_index < state["batch_in_epoch"]:
                        continue  # resumed mid-epoch: these batches were already trained on
                    loss = self.ranks.mean(self.step(batch))
                    running = loss if running is None else 0.9 * running + 0.1 * loss
                    state["batch_in_epoch"] = b_index + 1
                    if state["batch_in_epoch"] % o.grad_accum and b_index + 1 < len(batches):
                        continue
                    self.optimizer_step()
                    bar.update(task, advance=1, epoch=state["epoch"] + 1, info=f"loss {running:.4f}")
                    if lines:
                        lines.update(state["step"], state["epoch"] + 1, running)
                    if state["step"] % eval_every == 0 or state["step"] >= total_steps:
                        stop = self.evaluate() or state["step"] >= total_steps
                        if self.ranks.main:
                            self.checkpoint.save(self.model, self.optimizer, self.scheduler, state, self.best_weights)
                        if stop:
                            break
                else:
                    state["epoch"] += 1
                    state["batch_in_epoch"] = 0
