"""A narrower sentence encoder for the semantic rules, distilled from the shipped one — measured before it is built
(issue 34's cost point). Not taken: the shipped encoder's own graph, written for one turn and read without e5's
``query: `` prefix (training/export/sentence.py), met the 15 % on 2026-12-06 with no second model. The results in
benchmarks/results/semantic-narrow*.json were measured against the encoder shipped before that: its ``e5-1-int8``
(prefix, traced graph) is now the ``e5-1-int8-query`` of benchmarks/semantic_rules.py, with the one-turn graph.

The shipped encoder then (e5-small's first layer, int8) cost ~1.8 ms per sample call on one core, +21 % of the 4-layer
student's scoring; the issue asks for at most 15 %. Static token vectors are cheap but lose the layer's attention and
flag a fifth of real STC-3 dialogues (benchmarks/semantic_static.py). This tries the middle: one transformer layer
at a third of the width (hidden 128, 2 heads), its word and position embeddings initialised from a PCA of e5-small's,
a linear map back to 384 dimensions, trained to reproduce the shipped encoder's vectors (cosine loss) — so it lives
in the shipped encoder's space, and the card's thresholds can be tried as they are.

Trained on texts no measurement uses: STC-3's training-split turns (whole, and cut at sentence ends), the sample
calls' turns and the card's example lists; never datasets/semantic (held out) nor STC-3's validation or test split.
Measured as benchmarks/semantic_rules.py measures the shipped encoder (held-out agent turns, thresholds tuned on the
dev half; STC-3 nuggets), then the default card — with its shipped thresholds, and with thresholds tuned for the
narrow encoder — on the share of the sample calls and STC-3 dialogues each semantic rule flags, and its ms per
sample call on one core against the shipped encoder's, in the same run.

    python benchmarks/semantic_narrow.py [--texts repo]   # ~12 min on 2 cores (training ~8; on repo texts ~1)
    # trained once into data/sentence-encoders/e5-narrow-128[-repo]; delete it to train again

Results: benchmarks/results/semantic-narrow.json (semantic-narrow-repo.json with --texts repo).
"""

from __future__ import annotations

import json
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scorecard import hit_rates
from semantic_rules import (
    CARD_RULES,
    ENCODER,
    PHRASES,
    agent_turns,
    default_card_with,
    stc3_nuggets,
    stc3_parts,
)
from torch import nn

from callqa import OnnxSentenceEncoder, load_calls, load_scorecard
from callqa.render import pad_windows
from callqa.scorecard import load_phrases
from callqa.stc3 import read_stc3

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "sentence-encoders" / "e5-1-int8-query"  # the encoder shipped then, as a one-turn graph
OUT = ROOT / "data" / "sentence-encoders" / "e5-narrow-128"
WIDTH, MAX_TOKENS = 128, 64


def training_texts(stc3: bool = True) -> list[str]:
    """The texts the narrow encoder learns the shipped one's vectors on: STC-3's training split (unless ``stc3`` is
    False: then only what every checkout has — the sample calls and the card's lists), the sample calls' turns and
    the card's example lists."""
    texts = set()
    for call in stc3_parts()["train"] if stc3 else ():
        for turn in call.turns:
            texts.add(turn.text)
            texts.update(s for s in re.split(r"(?<=[。！？!?；;，,])", turn.text) if len(s) >= 4)
    for call in load_calls(ROOT / "datasets" / "sample" / "calls.jsonl"):
        texts.update(t.text for t in call.turns)
    for name, items in load_phrases(PHRASES).items():
        if name.endswith("examples"):
            texts.update(items)
    return sorted(t for t in texts if t.strip())


class Narrow(nn.Module):
    """input_ids, attention_mask → a 384-d vector: one narrow BERT layer, mean-pooled, mapped up."""

    def __init__(self, teacher_config: dict):
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(vocab_size=teacher_config["vocab_size"], hidden_size=WIDTH, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=4 * WIDTH, max_position_embeddings=MAX_TOKENS + 2,
                            pad_token_id=teacher_config["pad_token_id"], hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.up = nn.Linear(WIDTH, teacher_config["hidden_size"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask  # one text: none
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return self.up((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))


def init_from_teacher(model: Narrow) -> None:
    """Word and position embeddings: the teacher's, projected on their first WIDTH principal components."""
    from safetensors.torch import load_file
    from sklearn.decomposition import PCA

    weights = load_file(str(ENCODER / "model.safetensors"))
    words = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight")).numpy()
    positions = next(v for k, v in weights.items() if k.endswith("position_embeddings.weight")).numpy()
    pca = PCA(WIDTH, random_state=0).fit(words)
    with torch.no_grad():
        embeddings = model.bert.embeddings
        embeddings.word_embeddings.weight.copy_(torch.from_numpy(pca.transform(words)).float())
        embeddings.position_embeddings.weight.copy_(torch.from_numpy(
            (positions[: MAX_TOKENS + 2] - pca.mean_) @ pca.components_.T).float())


def batches(ids: list[list[int]], targets: np.ndarray, size: int, rng: np.random.Generator):
    order = rng.permutation(len(ids))
    for start in range(0, len(order), size):
        chosen = order[start : start + size]
        x, mask = (torch.from_numpy(a) for a in pad_windows([ids[i] for i in chosen], 0))  # padding is masked
        yield x, mask, torch.from_numpy(targets[chosen])


def train(texts: list[str], epochs: int = 12) -> Narrow:
    from tokenizers import Tokenizer

    teacher = OnnxSentenceEncoder(SHIPPED, remember=0)
    targets = teacher.encode(texts)
    tokenizer = Tokenizer.from_file(str(ENCODER / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    ids = [e.ids for e in tokenizer.encode_batch([teacher.prefix + t for t in texts])]
    torch.manual_seed(0)
    model = Narrow(json.loads((ENCODER / "config.json").read_text()))
    init_from_teacher(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    steps = epochs * (len(ids) // 64 + 1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        losses = []
        for x, mask, y in batches(ids, targets, 64, rng):
            loss = 1 - nn.functional.cosine_similarity(model(x, mask), y).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        print(f"epoch {epoch + 1}/{epochs}: 1 - cosine to the shipped encoder {np.mean(losses):.4f}", flush=True)
    return model.eval()


def export(model: Narrow, out: Path) -> None:
    """The graph as a bundle's sentence encoder is written (int8), beside e5-small's tokenizer."""
    from callqa.training.export.sentence import write_graph

    write_graph(model, out)
    (out / "tokenizer.json").write_bytes((ENCODER / "tokenizer.json").read_bytes())


def ms_per_call(encoder, calls) -> float:
    agent = [[t.text for t in c.turns if t.speaker == "agent"] for c in calls]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for texts in agent:
            encoder.encode(texts)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / len(agent)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", choices=("stc3", "repo"), default="stc3", help="train on STC-3's training split "
                        "too (default), or only on the texts every checkout has (the sample calls, the card's lists)")
    parser.add_argument("--epochs", type=int, default=None, help="default: 12 on stc3, 40 on repo (600 texts)")
    args = parser.parse_args()
    texts = training_texts(stc3=args.texts == "stc3")
    print(f"{len(texts)} training texts", flush=True)
    out = OUT if args.texts == "stc3" else OUT.with_name(OUT.name + "-repo")
    if not (out / "model.onnx").exists():  # trained once, then measured from the saved graph
        export(train(texts, args.epochs or (12 if args.texts == "stc3" else 40)), out)
    narrow = OnnxSentenceEncoder(out, max_length=MAX_TOKENS, remember=0, threads=1)
    shipped = OnnxSentenceEncoder(SHIPPED, remember=0, threads=1)
    turns = agent_turns({"narrow": narrow, "shipped": shipped})
    result = {"machine": platform.machine(), "texts": args.texts, "training_texts": len(texts), "agent_turns": turns,
              "stc3": stc3_nuggets({"narrow": narrow}, 0), "flagged": {}}
    sets = {"sample": load_calls(ROOT / "datasets" / "sample" / "calls.jsonl"),
            "stc3": list(read_stc3(ROOT.parent / "shared" / "data" / "stc3" / "train_cn.json"))}
    with tempfile.TemporaryDirectory() as tmp:
        tuned = {c: turns[c]["narrow"]["threshold"] for c in CARD_RULES.values()}
        for way, thresholds in (("shipped thresholds", None), ("tuned thresholds", tuned)):
            card = load_scorecard(default_card_with(thresholds, Path(tmp)), encoder=narrow)
            result["flagged"][way] = {name: {rule: hit_rates(card, calls)[rule]["share"] for rule in CARD_RULES}
                                      for name, calls in sets.items()}
    result["ms_per_sample_call"] = {"narrow": ms_per_call(narrow, sets["sample"][:120]),
                                    "shipped": ms_per_call(shipped, sets["sample"][:120])}
    for criterion, r in turns.items():
        for key in ("narrow", "shipped"):
            m = r[key]
            print(f"{criterion:10s} {key:8s} AUC {m['auc']:.3f}  P {m['precision']:.2f}  R {m['recall']:.2f}  "
                  f"F1 {m['f1']:.2f}  threshold {m['threshold']:.3f}")
    print("calls flagged:", json.dumps(result["flagged"]))
    print("ms per sample call:", json.dumps(result["ms_per_sample_call"]))
    path = ROOT / "benchmarks" / "results" / f"semantic-narrow{'' if args.texts == 'stc3' else '-repo'}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
