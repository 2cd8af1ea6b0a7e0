"""The training loop proper: bucketed dynamic-padded batches, gradient accumulation, AdamW steps under the
scheduler, evaluation every so many steps with early stopping and the best weights kept, resumable checkpoints, and
progress as a bar or as plain lines."""

from __future__ import annotations

import math
import time

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

from callqa.metrics import evaluate_heads, pick_metric
from callqa.schema import LabelSchema

from .checkpoint import Checkpoint
from .config import TrainConfig
from .data import (
    bucketed_batches,
    call_lengths,
    iterate,
    row_mask,
    row_targets,
    row_turn_targets,
    turn_counts,
)
from .distributed import Ranks
from .model import head_losses
from .predict import autocast_for, predict_rows


def evaluate_rows(probs: dict[str, np.ndarray], rows: list[dict], schema: LabelSchema,
                  thresholds: dict[str, list[float]] | None = None) -> dict[str, dict]:
    """Every head's metrics on prepared rows, through the one evaluation (callqa.metrics.evaluate_heads)."""
    targets = {h.name: row_targets(rows, h.name) for h in schema.heads}
    targets.update({h.name: row_turn_targets(rows, h.name) for h in schema.turn_heads})
    cuts = {name: np.array(t) for name, t in (thresholds or {}).items()}
    dialogue = np.repeat(np.arange(len(rows)), turn_counts(rows, schema)) if schema.turn_heads else None
    return evaluate_heads(schema, probs, targets, cuts, dialogue)


def positive_weights(rows: list[dict], schema: LabelSchema, dev: torch.device) -> dict[str, torch.Tensor]:
    """Positive-class weights of the heads whose kind has them (multilabel: negatives / positives per label)."""
    out = {}
    for head in schema.heads:
        weights = head.spec.positive_weights(row_targets(rows, head.name)[row_mask(rows, head.name)])
        if weights is not None:
            out[head.name] = torch.tensor(weights, device=dev)
    return out


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
