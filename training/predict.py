"""A model's predictions over prepared rows: per head probabilities (call heads per call, turn heads per turn) and
the mean masked loss, the same however the rows are batched or split over processes. Training's validation, `callqa
evaluate`, distillation's teacher and the parity tests all predict here."""

from __future__ import annotations

import numpy as np
import torch

from callqa.schema import LabelSchema

from .data import Rows, bucketed_batches, call_lengths, iterate, subset, turn_counts
from .distributed import Ranks
from .model import CallScorer, head_losses


def predict_rows(model: CallScorer, rows: Rows, schema: LabelSchema, pad_id: int, batch_size: int,
                 device: torch.device, loss_config=None, ranks: Ranks = Ranks()) -> tuple[dict[str, np.ndarray], float]:
    """Probabilities per head (softmax, or sigmoid for multilabel) and the mean masked loss: call heads [N, C];
    turn heads [all turns of all rows, call after call, C], NaN for a turn no window reached. Under several
    processes each predicts its block of ``rows`` and every rank gets the whole result."""
    block = ranks.block(len(rows))
    parts = ranks.gather(_predict_block(model, subset(rows, block), schema, pad_id, batch_size, device, loss_config))
    probs = {h.name: np.concatenate([p[h.name] for p, _ in parts]) for h in schema.all_heads}
    if loss_config is None:
        return probs, float("nan")
    # Each head's loss averaged over every labeled call (or turn) of ``rows``, summed over heads: what the training
    # loss is per batch, and the same number however the rows are batched or split over processes.
    sums = np.sum([s for _, s in parts], axis=0)
    return probs, float(sum(total / count for total, count in sums if count))


@torch.no_grad()
def _predict_block(model: CallScorer, rows: Rows, schema: LabelSchema, pad_id: int, batch_size: int,
                   device: torch.device, loss_config) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(probabilities, per head [summed loss, labeled calls or turns]) of ``rows``."""
    model.eval()
    batches = bucketed_batches(call_lengths(rows), batch_size, seed=0, shuffle=False)
    offsets = np.cumsum([0, *turn_counts(rows, schema)])
    probs: dict[str, np.ndarray] = {h.name: np.zeros((len(rows), h.size), np.float32) for h in schema.heads}
    probs.update({h.name: np.full((offsets[-1], h.size), np.nan, np.float32) for h in schema.turn_heads})
    sums = np.zeros((len(schema.all_heads), 2))
    for indices, batch in zip(batches, iterate(rows, batches, schema, pad_id)):
        batch = batch.to(device)
        with autocast_for(device):
            logits = model(**batch.model_inputs())
        logits = {k: v.float() for k, v in logits.items()}
        if loss_config is not None:
            per_head = head_losses(logits, batch.targets, batch.masks, schema, loss_config)
            for i, head in enumerate(schema.all_heads):
                count = float(batch.masks[head.name].sum())
                sums[i] += (float(per_head[head.name]) * count, count)
        for head in schema.heads:
            probs[head.name][indices] = head.spec.activate(logits[head.name].cpu().numpy())
        if schema.turn_heads:
            reached = np.zeros(batch.n_turns, bool)
            ids = batch.turn_index.cpu().numpy()
            reached[ids[ids >= 0]] = True
            rows_turns = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in indices])
            for head in schema.turn_heads:
                p = head.spec.activate(logits[head.name].cpu().numpy())
                p[~reached] = np.nan
                probs[head.name][rows_turns] = p
    return probs, sums


def autocast_for(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)
