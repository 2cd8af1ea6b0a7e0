"""The sentence encoder semantic scorecard rules match turns with (callqa.semantic.OnnxSentenceEncoder): a pretrained
encoder's first ``layers`` transformer layers, mean-pooled over the tokens, exported to ONNX with its tokenizer.

Why a pretrained encoder and not the bundle's fine-tuned one: the fine-tuned encoder learned what the quality heads
need (a call's attitude, resolution), and its pooled vector of one turn says little about what the turn *says*; a
criterion's examples are matched by meaning. Why its first layer alone: docs/scorecard.md measures 1, 2, 4 and 12 of
its 12 layers on held-out turns — one does as well as four (and better than twelve) at a third of four's cost.

``encoder.json`` beside the graph says what it is (the base encoder, the layers kept, int8): a semantic rule's
threshold means something only in the space it was tuned in, so a card names the depth it was tuned on and a
bundle that carries another is refused (callqa.scorecard.Scorecard.use_encoder).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from .quantize import OPSET, without_preprocessing_hint

RUN_ENCODER = "run"  # export_run's default: the encoder the run was fine-tuned from
LAYERS = 1  # the depth the default card's semantic thresholds are tuned on (docs/scorecard.md)


class MeanPooled(nn.Module):
    """input_ids, attention_mask → the mean of the last kept layer's token vectors."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def write_graph(module: nn.Module, out: Path, int8: bool = True) -> Path:
    """Write ``out``/model.onnx: ``module`` (input_ids, attention_mask → embedding) traced with dynamic text and
    token axes, its weights quantized to int8 (dynamic) unless ``int8`` is False. Returns the graph's path."""
    out.mkdir(parents=True, exist_ok=True)
    ids = torch.full((2, 12), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    axes = {"input_ids": {0: "texts", 1: "tokens"}, "attention_mask": {0: "texts", 1: "tokens"},
            "embedding": {0: "texts"}}
    graph = out / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (ids, mask), str(graph), input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(str(graph))
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = out / "model.fp32.onnx"
        graph.replace(fp32)
        with without_preprocessing_hint():
            quantize_dynamic(str(fp32), str(graph), weight_type=QuantType.QInt8)
        fp32.unlink()
    return graph


def export_sentence_encoder(encoder: str | Path, out: Path, layers: int | None = LAYERS, int8: bool = True) -> Path:
    """Write ``out``/model.onnx, tokenizer.json and encoder.json: ``encoder`` (a folder or hub id) cut to its first
    ``layers`` layers (None: all), its weights quantized to int8 (dynamic; faster and a quarter of the size — the
    thresholds of the default card are tuned on the int8 graph, docs/scorecard.md). Returns ``out``."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(encoder), attn_implementation="eager").eval()
    layers = None if layers is not None and layers >= len(model.encoder.layer) else layers  # a small encoder whole
    kept = layers or len(model.encoder.layer)
    if layers is not None:
        if layers < 1:
            raise ValueError(f"layers: 1 to {len(model.encoder.layer)} for this encoder, not {layers}")
        model.encoder.layer = model.encoder.layer[:layers]
        model.config.num_hidden_layers = layers
    write_graph(MeanPooled(model), out, int8)
    source = Path(str(encoder)) / "tokenizer.json"
    if source.exists():
        shutil.copyfile(source, out / "tokenizer.json")
    else:
        AutoTokenizer.from_pretrained(str(encoder)).backend_tokenizer.save(str(out / "tokenizer.json"))
    about = {"base": Path(str(encoder)).name, "layers": kept, "int8": int8}
    (out / "encoder.json").write_text(json.dumps(about, indent=1) + "\n", encoding="utf-8")
    return out
