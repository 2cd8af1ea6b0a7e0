"""The sentence encoder semantic scorecard rules match turns with (callqa.semantic.OnnxSentenceEncoder): a pretrained
encoder's first ``layers`` transformer layers, mean-pooled over the tokens, exported to ONNX with its tokenizer.

Why a pretrained encoder and not the bundle's fine-tuned one: the fine-tuned encoder learned what the quality heads
need (a call's attitude, resolution), and its pooled vector of one turn says little about what the turn *says*; a
criterion's examples are matched by meaning. Why its first layer alone: docs/scorecard.md measures 1, 2, 4 and 12 of
its 12 layers on held-out turns — one does as well as four (and better than twelve) at a third of four's cost.

Why a graph of its own (:class:`TurnVector`) and not the pretrained model traced as it is: the encoder reads one text
per run, unpadded, so it needs no attention mask, and a turn is ~12 tokens — at that size a run's cost is mostly
the graph's node count, not its arithmetic. Traced through transformers, one layer is 231 nodes (the mask, the
shape bookkeeping of its attention); written for one unpadded text, with query / key / value as one projection, it
is 85, and the default card's semantic rules take 1.2–1.3 ms per sample call instead of 1.8–2.0
(docs/scorecard.md), for the same vectors. And why no ``query: `` prefix, which e5 asks for: it is three of a
turn's ~15 tokens, and the first layer matches criteria as well without it (measured likewise).

``encoder.json`` beside the graph says what it is (the base encoder, the layers kept, int8, the prefix): a semantic
rule's threshold means something only in the space it was tuned in, so a card names the depth and prefix it was
tuned with and a bundle that carries another is refused (callqa.scorecard.Scorecard.use_encoder).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from .gate import ExportError
from .quantize import OPSET, without_preprocessing_hint

RUN_ENCODER = "run"  # export_run's default: the encoder the run was fine-tuned from
LAYERS = 1  # the depth the default card's semantic thresholds are tuned on (docs/scorecard.md)
PREFIX = ""  # put before each text; the default card's thresholds are tuned without one


class TurnVector(nn.Module):
    """input_ids of one unpadded text [1, tokens] → the mean of its token vectors after the kept layers [1, hidden].
    The pretrained model's own embeddings and weights; each BERT-family layer (BERT, RoBERTa, XLM-R, ERNIE: query /
    key / value / output projections, two LayerNorms, a feed-forward block) computed without a mask. Its embeddings
    are summed here rather than by the family's module, which builds position and type ids for a batch (40 more
    nodes, 10–15 % of a turn's time)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.embeddings, self.layers = model.embeddings, transformer_layers(model)
        self.heads = model.config.num_attention_heads
        self.scale = (model.config.hidden_size // self.heads) ** -0.5  # a constant in the graph, not computed in it
        # RoBERTa and XLM-R number positions from after their padding id, BERT and ERNIE from 0.
        self.first_position = getattr(self.embeddings, "padding_idx", -1) + 1
        # Every token of one text has segment (and, for ERNIE, task) type 0: one constant vector.
        types = [self.embeddings.token_type_embeddings]
        if getattr(model.config, "use_task_id", False):
            types.append(self.embeddings.task_type_embeddings)
        self.register_buffer("type_vector", sum(t.weight[0].detach().clone() for t in types), persistent=False)
        self.qkv = nn.ModuleList(_query_key_value(layer.attention.self) for layer in self.layers)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeddings, tokens = self.embeddings, input_ids.shape[1]
        first = self.first_position
        hidden = embeddings.LayerNorm(embeddings.word_embeddings(input_ids[0])
                                      + embeddings.position_embeddings.weight[first : first + tokens]
                                      + self.type_vector)  # [tokens, width]
        for layer, qkv in zip(self.layers, self.qkv, strict=True):
            hidden = self._layer(layer, qkv, hidden)
        return hidden.mean(0, keepdim=True)

    def _layer(self, layer: nn.Module, qkv: nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
        tokens = hidden.shape[0]
        query, key, value = qkv(hidden).reshape(tokens, 3, self.heads, -1).permute(1, 2, 0, 3)  # [heads, tokens, w]
        weights = torch.softmax(query @ key.transpose(1, 2) * self.scale, dim=-1)
        mixed = (weights @ value).transpose(0, 1).reshape(tokens, -1)
        attention = layer.attention.output
        hidden = attention.LayerNorm(hidden + attention.dense(mixed))
        return layer.output.LayerNorm(hidden + layer.output.dense(layer.intermediate(hidden)))


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """A BERT-family model's layers (``encoder.layer``, each with the parts :class:`TurnVector` computes), or an
    :class:`ExportError` that names what the model lacks."""
    parts = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
             "attention.output.LayerNorm", "intermediate", "output.dense", "output.LayerNorm")
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    names = {name for name, _ in layers[0].named_modules()} if layers else set()
    missing = [part for part in parts if part not in names] if layers else ["encoder.layer"]
    if missing:
        raise ExportError(f"{type(model).__name__} is not a BERT-family encoder (it has no {', '.join(missing)}): "
                          f"the semantic rules' sentence encoder is cut from a BERT, RoBERTa, XLM-R or ERNIE model; "
                          f"name one with --sentence-encoder, or none")
    return layers


def _query_key_value(attention: nn.Module) -> nn.Linear:
    """An attention's query, key and value projections as one: one matrix product (and one int8 quantization of its
    input) instead of three."""
    parts = (attention.query, attention.key, attention.value)
    fused = nn.Linear(parts[0].in_features, sum(p.out_features for p in parts))
    with torch.no_grad():
        fused.weight.copy_(torch.cat([p.weight for p in parts]))
        fused.bias.copy_(torch.cat([p.bias for p in parts]))
    return fused


def write_graph(module: nn.Module, out: Path, int8: bool = True) -> Path:
    """Write ``out``/model.onnx: ``module`` (input_ids of one text → embedding) traced with a dynamic token axis, its
    weights quantized to int8 (dynamic) unless ``int8`` is False. Returns the graph's path."""
    out.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[0, 7, 8, 9, 10, 11, 12, 2]], dtype=torch.long)
    graph = out / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (ids,), str(graph), input_names=["input_ids"], output_names=["embedding"],
                          dynamic_axes={"input_ids": {1: "tokens"}}, opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(str(graph))
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = out / "model.fp32.onnx"
        graph.replace(fp32)
        with without_preprocessing_hint():
            quantize_dynamic(str(fp32), str(graph), weight_type=QuantType.QInt8)
        fp32.unlink()
    return graph


def export_sentence_encoder(encoder: str | Path, out: Path, layers: int | None = LAYERS, int8: bool = True,
                            prefix: str = PREFIX) -> Path:
    """Write ``out``/model.onnx, tokenizer.json and encoder.json: ``encoder`` (a folder or hub id) cut to its first
    ``layers`` layers (None: all), its weights quantized to int8 (dynamic; faster and a quarter of the size — the
    thresholds of the default card are tuned on the int8 graph, docs/scorecard.md); ``prefix`` is put before each
    text the bundle embeds. Returns ``out``."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(encoder), attn_implementation="eager").eval()
    available = len(transformer_layers(model))
    layers = None if layers is not None and layers >= available else layers  # a small encoder whole
    kept = layers or available
    if layers is not None:
        if layers < 1:
            raise ValueError(f"layers: 1 to {available} for this encoder, not {layers}")
        model.encoder.layer = model.encoder.layer[:layers]
        model.config.num_hidden_layers = layers
    write_graph(TurnVector(model), out, int8)
    source = Path(str(encoder)) / "tokenizer.json"
    if source.exists():
        shutil.copyfile(source, out / "tokenizer.json")
    else:
        AutoTokenizer.from_pretrained(str(encoder)).backend_tokenizer.save(str(out / "tokenizer.json"))
    about = {"base": Path(str(encoder)).name, "layers": kept, "int8": int8, "prefix": prefix}
    (out / "encoder.json").write_text(json.dumps(about, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
