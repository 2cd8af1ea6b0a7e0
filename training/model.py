"""Encoder → mean-pooled vector per window → one linear head per schema head; call logits = weighted window mean.

Turn heads pool each turn's token states (over every window that holds the turn) and apply their linear layer to
the mean: the same numbers as averaging the head's per-token logits (what the exported graph returns and
callqa.render.aggregate_turns averages), because the head is linear.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel

from callqa.heads import LevelKind, MultilabelKind, OrdinalKind, registered
from callqa.schema import LabelSchema

from .config import LossConfig


def load_encoder(name_or_path: str) -> nn.Module:
    """The encoder in float32, whatever its files store: heads, optimizer and export all work in float32, and a
    float16 file (a pulled e5 stores half precision) would otherwise load as half under float32 heads. On a GPU,
    training runs under bf16 autocast on top of these float32 weights."""
    # BERT-family checkpoints may carry a pooler the model never uses (we mean-pool); skip building it.
    try:
        return AutoModel.from_pretrained(name_or_path, add_pooling_layer=False, dtype=torch.float32)
    except TypeError:
        return AutoModel.from_pretrained(name_or_path, dtype=torch.float32)


def aggregate_windows_torch(window_logits: torch.Tensor, call_index: torch.Tensor, weights: torch.Tensor,
                            n_calls: int) -> torch.Tensor:
    """Call-level logits [B, C] from window logits [W, C]: the same weighted mean as callqa.render.aggregate_windows."""
    w = weights.to(window_logits.dtype)
    total = torch.zeros(n_calls, dtype=w.dtype, device=w.device).index_add_(0, call_index, w)
    summed = torch.zeros(n_calls, window_logits.shape[-1], dtype=window_logits.dtype, device=window_logits.device)
    summed.index_add_(0, call_index, window_logits * w[:, None])
    return summed / total[:, None]


def pool_turns(hidden: torch.Tensor, turn_index: torch.Tensor, n_turns: int) -> torch.Tensor:
    """Turn vectors [n_turns, H]: the mean of each turn's token states [W, T, H] (turn_index [W, T], −1 = none)."""
    flat, index = hidden.reshape(-1, hidden.shape[-1]), turn_index.reshape(-1)
    keep = index >= 0
    sums = torch.zeros(n_turns, hidden.shape[-1], dtype=hidden.dtype, device=hidden.device)
    sums.index_add_(0, index[keep], flat[keep])
    counts = torch.zeros(n_turns, dtype=hidden.dtype, device=hidden.device).index_add_(0, index[keep], torch.ones_like(index[keep], dtype=hidden.dtype))
    return sums / counts.clamp(min=1.0)[:, None]


class CallScorer(nn.Module):
    def __init__(self, encoder: nn.Module, schema: LabelSchema, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.schema = schema
        self.dropout = nn.Dropout(dropout)
        hidden = encoder.config.hidden_size
        # Call and turn heads in one dict (their names are unique): one heads.safetensors, one optimizer group.
        self.heads = nn.ModuleDict({h.name: nn.Linear(hidden, h.size) for h in schema.all_heads})

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    @staticmethod
    def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the last hidden states over real tokens: one vector per window (how e5 was trained)."""
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.mean_pool(self.hidden_states(input_ids, attention_mask), attention_mask)

    def window_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pooled = self.pool(input_ids, attention_mask)
        dropped = self.dropout(pooled)
        return pooled, {h.name: self.heads[h.name](dropped) for h in self.schema.heads}

    def forward(self, input_ids, attention_mask, call_index, weights, n_calls: int, turn_index=None,
                n_turns: int = 0) -> dict[str, torch.Tensor]:
        """Call heads' logits [n_calls, C]; with ``turn_index``, also the turn heads' logits [n_turns, C]."""
        hidden = self.hidden_states(input_ids, attention_mask)
        dropped = self.dropout(self.mean_pool(hidden, attention_mask))
        out = {h.name: aggregate_windows_torch(self.heads[h.name](dropped), call_index, weights, n_calls)
               for h in self.schema.heads}
        if turn_index is not None and self.schema.turn_heads:
            turns = self.dropout(pool_turns(hidden, turn_index, n_turns))
            out.update({h.name: self.heads[h.name](turns) for h in self.schema.turn_heads})
        return out

    def freeze_lower_layers(self, n: int) -> None:
        """Freeze the embeddings and the lowest ``n`` layers: less compute for backward, and less overfitting."""
        if n <= 0:
            return
        for p in self.encoder.embeddings.parameters():
            p.requires_grad = False
        for layer in self.encoder.encoder.layer[:n]:
            for p in layer.parameters():
                p.requires_grad = False

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(directory / "encoder")
        save_file({k: v.contiguous() for k, v in self.heads.state_dict().items()}, str(directory / "heads.safetensors"))
        (directory / "schema.json").write_text(self.schema.model_dump_json(indent=2), encoding="utf-8")

    def load_heads(self, path: Path) -> None:
        """Start from trained heads (a distilled student starts from its teacher's); heads not in the file stay new."""
        saved = load_file(str(path))
        self.heads.load_state_dict({k: v for k, v in saved.items() if k.split(".")[0] in self.heads}, strict=False)

    @classmethod
    def load(cls, directory: Path) -> CallScorer:
        schema = LabelSchema.model_validate(json.loads((directory / "schema.json").read_text(encoding="utf-8")))
        model = cls(load_encoder(str(directory / "encoder")), schema)
        model.heads.load_state_dict(load_file(str(directory / "heads.safetensors")))
        return model.eval()

    @classmethod
    def from_config_only(cls, directory: Path, schema: LabelSchema) -> CallScorer:
        """A randomly initialised twin (same architecture), for tests that need no weights."""
        return cls(AutoModel.from_config(AutoConfig.from_pretrained(directory), dtype=torch.float32), schema)


def _distribution_loss(z: torch.Tensor, t: torch.Tensor, loss: LossConfig, pos_weight=None) -> torch.Tensor:
    return -(t * F.log_softmax(z, dim=-1)).sum(-1)  # cross-entropy against the vote distribution


def _ordinal_loss(z: torch.Tensor, t: torch.Tensor, loss: LossConfig, pos_weight=None) -> torch.Tensor:
    log_p = F.log_softmax(z, dim=-1)
    per_call = -(t * log_p).sum(-1)
    if loss.ordinal == "ce+emd":
        # Squared earth mover's distance between the CDFs: mass one level off costs less than two levels off.
        cdf_gap = torch.cumsum(log_p.exp(), -1) - torch.cumsum(t, -1)
        per_call = per_call + loss.emd_weight * cdf_gap.pow(2).sum(-1)
    return per_call


def _multilabel_loss(z: torch.Tensor, t: torch.Tensor, loss: LossConfig, pos_weight=None) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(z, t, pos_weight=pos_weight, reduction="none").mean(-1)


# Per call, the loss of each head kind: the one part of a kind that needs torch. Registered by kind class; a kind
# without its own entry takes its nearest base's (callqa.heads.registered): the call category is a level head.
LOSSES = {OrdinalKind: _ordinal_loss, LevelKind: _distribution_loss, MultilabelKind: _multilabel_loss}


def head_losses(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                schema: LabelSchema, loss: LossConfig, pos_weights: dict[str, torch.Tensor] | None = None,
                counts: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Per-head loss, averaged over the calls (turns, for a turn head) that carry the head (masked); 0 for a head no
    call in the batch has. ``counts`` replaces the per-head number of labeled calls that the sum is divided by
    (under DDP: the whole batch's count over the ranks, so that the averaged gradients are the whole batch's)."""
    out: dict[str, torch.Tensor] = {}
    for head in schema.all_heads:
        if head.name not in logits:
            continue
        z, t, m = logits[head.name], targets[head.name], masks[head.name]
        per_call = registered(LOSSES, head.spec)(z, t, loss, (pos_weights or {}).get(head.name))
        count = m.sum() if counts is None else counts[head.name]
        out[head.name] = (per_call * m).sum() / count.clamp(min=1.0)
    return out
