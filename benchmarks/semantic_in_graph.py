"""The cheap route to semantic rules' turn vectors, measured before it is built (issue 34's cost point): instead of
embedding each turn alone with the bundle's sentence encoder, pool the first 4 layers' token states of the model's own
pass over the call's windows per turn — the tokens of each turn are known to the graph (turn heads use them), and the
demo run's first 4 layers are the pretrained encoder's (its recipe freezes 6), so those states cost nothing extra.

What changes is context: a turn's tokens are read inside the call's window, not alone. This script compares, on the
STC-3 nugget criteria of benchmarks/semantic_rules.py (the same examples, drawn the same way from the training split;
thresholds tuned on validation; test split reported): turns embedded alone (what ships) against turns pooled in
context, with the examples embedded the same way as the turns they are matched against.

    python benchmarks/semantic_in_graph.py [--run runs/demo]    # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch
from semantic_rules import ENCODER, NUGGETS, measured, nugget_refs, pick_examples, stc3_parts, tuned

from callqa import CallEncoder, ExampleMatcher, RunDir
from callqa.render import aggregate_turns, pad_windows

ROOT = Path(__file__).resolve().parents[1]


def first_layers(layers: int = 4, folder: Path = ENCODER):
    """The encoder in ``folder`` (default: the pretrained e5-small) cut to its first ``layers`` layers, in PyTorch."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    model.encoder.layer = model.encoder.layer[:layers]
    return model


def in_context(model, encoder: CallEncoder, call) -> np.ndarray:
    """[turns, hidden]: each turn's tokens' mean state over the windows that hold them (NaN: a turn not reached)."""
    encoded = encoder.encode(call)
    ids, mask = (torch.from_numpy(a) for a in pad_windows(encoded.windows, encoder.pad_id))
    with torch.inference_mode():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    return aggregate_turns(list(hidden), encoded.turn_ids, len(call.turns))


def alone(model, encoder: CallEncoder, texts: list[str]) -> np.ndarray:
    tokenizer = encoder.tokenizer
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = torch.tensor([tokenizer.encode("query: " + text).ids])
            out.append(model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0].mean(0).numpy())
    return np.stack(out)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "demo", help="whose render spec (windows) to use")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    info = RunDir(args.run).info()
    encoder = CallEncoder.from_file(ENCODER / "tokenizer.json", info.render)
    model = first_layers(4)
    parts = stc3_parts()
    cache: dict[tuple[str, int], np.ndarray] = {}

    def context_vectors(part: str, refs) -> np.ndarray:
        rows = []
        for c, t, _, _ in refs:
            if (part, c) not in cache:
                cache[(part, c)] = in_context(model, encoder, parts[part][c])
            rows.append(cache[(part, c)][t])
        return unit(np.nan_to_num(np.stack(rows)))

    rng = np.random.default_rng(args.seed)
    result = {"machine": platform.machine(), "render": info.render.model_dump(), "criteria": {}}
    for name, (speaker, head, label) in NUGGETS.items():
        train = nugget_refs(parts["train"], speaker, head, label)
        chosen, against = pick_examples([r[2] for r in train], np.array([r[3] for r in train]), rng)
        examples, counter = [train[i] for i in chosen], [train[i] for i in against]
        validation = nugget_refs(parts["validation"], speaker, head, label)
        test = nugget_refs(parts["test"], speaker, head, label)
        v_gold, t_gold = np.array([r[3] > 0.5 for r in validation]), np.array([r[3] > 0.5 for r in test])
        out = {}
        for way in ("alone", "in_context"):
            if way == "alone":
                embed = {k: unit(alone(model, encoder, [r[2] for r in refs])) for k, refs in
                         (("examples", examples), ("counter", counter), ("validation", validation), ("test", test))}
            else:
                embed = {"examples": context_vectors("train", examples), "counter": context_vectors("train", counter),
                         "validation": context_vectors("validation", validation),
                         "test": context_vectors("test", test)}
            matcher = ExampleMatcher(embed["examples"], embed["counter"])
            v = np.array([m.score for m in matcher.match(embed["validation"])])
            t = np.array([m.score for m in matcher.match(embed["test"])])
            cut = tuned(v, v_gold)
            out[way] = {**measured(t_gold, t >= cut, t), "threshold": cut}
            print(f"{name:9s} {way:10s} AUC {out[way].get('auc', float('nan')):.3f}  F1 {out[way]['f1']:.2f}", flush=True)
        result["criteria"][name] = out
    path = ROOT / "benchmarks" / "results" / "semantic-in-graph.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
