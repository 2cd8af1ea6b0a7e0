"""The window graph exported to ONNX (the encoder and every head on one window), and PyTorch–ONNX parity on it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from callqa.render import pad_windows
from callqa.schema import LabelSchema

from ..model import CallScorer
from .quantize import OPSET


class WindowGraph(nn.Module):
    """What model.onnx computes: one window batch → the pooled vector, each call head's window logits and each turn
    head's per-token logits (averaged per turn outside the graph, by callqa.render.aggregate_turns)."""

    def __init__(self, scorer: CallScorer):
        super().__init__()
        self.scorer = scorer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.scorer.hidden_states(input_ids, attention_mask)
        pooled = self.scorer.mean_pool(hidden, attention_mask)
        heads, schema = self.scorer.heads, self.scorer.schema
        return (pooled, *(heads[h.name](pooled) for h in schema.heads), *(heads[h.name](hidden) for h in schema.turn_heads))


def output_names(schema: LabelSchema) -> list[str]:
    return ["pooled", *(f"logits.{h.name}" for h in schema.heads), *(f"token_logits.{h.name}" for h in schema.turn_heads)]


def export_onnx(model: CallScorer, path: Path) -> None:
    """Trace the window graph with dynamic batch and sequence axes (eager attention: a graph ORT's fusions know)."""
    model = model.eval().to("cpu")
    model.encoder.config._attn_implementation = "eager"
    names = output_names(model.schema)
    ids = torch.full((2, 16), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    axes = {"input_ids": {0: "windows", 1: "tokens"}, "attention_mask": {0: "windows", 1: "tokens"}}
    axes.update({name: {0: "windows", 1: "tokens"} if name.startswith("token_") else {0: "windows"} for name in names})
    # The tracer warns about Python-side branches in transformers' mask code; parity is what proves the graph.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*aten::index.*")
        torch.onnx.export(WindowGraph(model), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=names, dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(str(path))



def window_parity(model: CallScorer, session, windows: list[list[int]], pad_id: int,
                  batch: int = 16) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Max |PyTorch − ONNX| per output over the given windows (real tokens only, for per-token outputs), batch by
    batch, and PyTorch's logits per head (so the PyTorch call-level scores need no second forward pass): [W, C] per
    call head, a list of [tokens, C] per window for a turn head. With no session, PyTorch's logits alone."""
    names = output_names(model.schema)
    worst = dict.fromkeys(names, 0.0) if session else {}
    heads = [h.name for h in model.schema.all_heads]
    torch_logits: dict[str, list[np.ndarray]] = {h: [] for h in heads}
    graph = WindowGraph(model.eval())
    for start in range(0, len(windows), batch):
        chunk = windows[start : start + batch]
        ids, mask = pad_windows(chunk, pad_id)
        with torch.no_grad():
            expected = [t.numpy() for t in graph(torch.from_numpy(ids), torch.from_numpy(mask))]
        got = session.run(names, {"input_ids": ids, "attention_mask": mask}) if session else []
        for name, e, g in zip(names, expected, got):
            gap = np.abs(e - g) * (mask[..., None] if e.ndim == 3 else 1)
            worst[name] = max(worst[name], float(gap.max()))
        for head, e in zip(heads, expected[1:]):
            torch_logits[head].extend([e] if e.ndim == 2 else [e[i, : len(w)] for i, w in enumerate(chunk)])
    turn = {h.name for h in model.schema.turn_heads}
    return worst, {head: parts if head in turn else np.concatenate(parts) for head, parts in torch_logits.items()}
