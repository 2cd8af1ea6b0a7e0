"""Static token embeddings as the semantic rules' encoder: the cheapest choice, measured before it is built (issue 34).

model2vec distills a sentence encoder into one vector per token (each token through the whole model, PCA to 256
dimensions, Zipf weighting); a text's vector is the mean of its tokens' — a lookup, ~10× cheaper than the shipped
one-layer encoder. This script distills e5-small that way and measures it as benchmarks/semantic_rules.py measures
the shipped encoder (held-out agent turns, thresholds tuned on the dev half; STC-3 nuggets), then the default card
with its thresholds so tuned: the share of the 360 sample calls and of the 2,955 STC-3 dialogues each semantic rule
flags (the shipped encoder: docs/scorecard.md), and its milliseconds per sample call on one core.

model2vec's distiller pins transformers < 5.4, older than the project's, so run it in a scratch copy of the venv:

    cp -a .venv /tmp/m2v && /tmp/m2v/bin/pip install "model2vec[distill]==0.10.0" && /tmp/m2v/bin/pip uninstall -y kernels
    /tmp/m2v/bin/python benchmarks/semantic_static.py      # ~5 min on 2 cores (3 of them distilling)

Results: benchmarks/results/semantic-static.json.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
from scorecard import hit_rates
from semantic_rules import CARD_RULES, ENCODER, agent_turns, default_card_with, stc3_nuggets

from callqa import load_calls, load_scorecard
from callqa.stc3 import read_stc3

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "data" / "sentence-encoders" / "e5-static-256"


class StaticEncoder:
    """model2vec's StaticModel as a callqa.semantic.SentenceEncoder (unit vectors)."""

    name = "e5-small static 256"

    def __init__(self, folder: Path):
        from model2vec import StaticModel

        self.model = StaticModel.from_pretrained(str(folder))

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts)) if texts else np.zeros((0, 256), np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def main() -> None:
    import tempfile

    from model2vec.distill import distill

    if not (CACHE / "model.safetensors").exists():
        distill(model_name=str(ENCODER), pca_dims=256).save_pretrained(str(CACHE))
    encoder = StaticEncoder(CACHE)
    turns = agent_turns({"static": encoder})
    result = {"machine": platform.machine(), "agent_turns": turns, "stc3": stc3_nuggets({"static": encoder}, 0)}
    with tempfile.TemporaryDirectory() as tmp:
        card = load_scorecard(default_card_with({c: turns[c]["static"]["threshold"] for c in CARD_RULES.values()}, Path(tmp)),
                              encoder=encoder)
        sets = {"sample": load_calls(ROOT / "datasets" / "sample" / "calls.jsonl"),
                "stc3": list(read_stc3(ROOT.parent / "shared" / "data" / "stc3" / "train_cn.json"))}
        result["flagged"] = {name: {rule: hit_rates(card, calls)[rule]["share"] for rule in CARD_RULES}
                             for name, calls in sets.items()}
    agent = [[t.text for t in c.turns if t.speaker == "agent"] for c in sets["sample"][:120]]
    started = time.perf_counter()
    for texts in agent:
        encoder.encode(texts)
    result["ms_per_sample_call"] = 1000 * (time.perf_counter() - started) / len(agent)
    for criterion, r in turns.items():
        m = r["static"]
        print(f"{criterion:10s} AUC {m['auc']:.3f}  P {m['precision']:.2f}  R {m['recall']:.2f}  F1 {m['f1']:.2f}  "
              f"threshold {m['threshold']:.3f}")
    print("calls flagged:", json.dumps(result["flagged"]), f"; {result['ms_per_sample_call']:.2f} ms per sample call")
    path = ROOT / "benchmarks" / "results" / "semantic-static.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
