"""Turn vectors from a model's own pass, measured on the default card's criteria *in calls* (issue 34's cost point).

The semantic rules cost ~+21 % of a call's scoring with the shipped student (docs/scorecard.md) because the bundle's
sentence encoder embeds every agent turn in a run of its own. The way to no extra cost is to pool the turn's tokens
from a lower layer of the pass the model already makes over the call's windows. Two things change then: the turn is
read **in its call's context** (the windows), and the space is **the model's own layers** — the pretrained ones for
a teacher that froze them (the demo recipe freezes 6), but not for a student, whose lower layers are other
pretrained layers (the teacher's every third) and, above the frozen ones, trained.

This script measures both on the held-out turns of datasets/semantic/agent_turns.jsonl, each put into a call: the
turn replaces one agent turn (drawn at random) of a sample call (drawn at random), so it is read with a real call's
words around it. For each criterion the card's examples and counter-examples are embedded the way the in-graph route
would embed them (each as a call of one agent turn, through the same layers); the threshold is tuned on the dev half
and the test half reported, as benchmarks/semantic_rules.py does for turns alone. Compared:

- ``alone``: the shipped sentence encoder (e5-small's first layer, int8) on the turn's text — what ships;
- ``in call, <model> L``: the turn's tokens' mean state after layer L of <model> over the call's windows (PyTorch
  fp32): the pretrained e5-small (= the demo teacher's frozen layers), and a student run (``--student``); the
  examples each as a call of one turn (what a lead writes), or — to tell context from asymmetry — put into sample
  calls as the turns are (layer 1).

    python benchmarks/semantic_in_calls.py [--student runs/demo-k4]    # ~3 min on 2 cores

Results: benchmarks/results/semantic-in-calls.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
from semantic_in_graph import first_layers, in_context, unit
from semantic_rules import ENCODER, PHRASES, TURNS, measured, tuned

from callqa import Call, CallEncoder, ExampleMatcher, OnnxSentenceEncoder, RunDir, load_calls
from callqa.scorecard import load_phrases

ROOT = Path(__file__).resolve().parents[1]
CRITERIA = ("deflection", "evasive", "soothing")
HOSTS = ROOT / "datasets" / "sample" / "calls.jsonl"


def placed(rows: list[dict], hosts: list[Call], rng: np.random.Generator) -> list[tuple[Call, int]]:
    """Each labeled turn put into a sample call in place of one of its agent turns: (the call, that turn's index)."""
    out = []
    for row in rows:
        host = hosts[rng.integers(len(hosts))]
        agent = [i for i, t in enumerate(host.turns) if t.speaker == "agent"]
        at = int(agent[rng.integers(len(agent))])
        turns = [t.model_copy(update={"text": row["text"]}) if i == at else t for i, t in enumerate(host.turns)]
        out.append((host.model_copy(update={"turns": turns}), at))
    return out


def one_turn(text: str) -> Call:
    return Call.model_validate({"call_id": "example", "turns": [{"speaker": "agent", "text": text}]})


def scored(embed, examples: list[str], counter: list[str], dev, test, dev_gold, test_gold) -> dict:
    matcher = ExampleMatcher(embed(examples, None), embed(counter, None))
    v = np.array([m.score for m in matcher.match(embed(None, dev))])
    t = np.array([m.score for m in matcher.match(embed(None, test))])
    cut = tuned(v, dev_gold)
    return {**measured(test_gold, t >= cut, t), "threshold": cut}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", type=Path, default=ROOT / "runs" / "demo-k4", help="a distilled run")
    parser.add_argument("--sentence", type=Path, default=ROOT / "data" / "sentence-encoders" / "e5-1-int8",
                        help="the shipped sentence encoder's folder (benchmarks/semantic_rules.py writes it)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    student = RunDir(args.student)
    render = student.info().render
    rows = [json.loads(line) for line in TURNS.read_text(encoding="utf-8").splitlines()]
    lists = load_phrases(PHRASES)
    hosts = load_calls(HOSTS)
    sentence = OnnxSentenceEncoder(args.sentence, remember=0)
    models = {f"in call, e5-small {n}": (first_layers(n), CallEncoder.from_file(ENCODER / "tokenizer.json", render))
              for n in (1, 2, 4)}
    student_tokenizer = CallEncoder.from_file(student.tokenizer, render)
    models.update({f"in call, student {args.student.name} {n}": (first_layers(n, student.encoder_config_file.parent),
                                                               student_tokenizer) for n in (1, 2)})
    result = {"machine": platform.machine(), "seed": args.seed, "hosts": str(HOSTS.relative_to(ROOT)), "criteria": {}}
    for criterion in CRITERIA:
        rng = np.random.default_rng(args.seed)
        mine = [r for r in rows if r["criterion"] in (criterion, "generic")]
        dev_rows, test_rows = ([r for r in mine if r["split"] == s] for s in ("dev", "test"))
        dev, test = placed(dev_rows, hosts, rng), placed(test_rows, hosts, rng)
        dev_gold, test_gold = (np.array([r["label"] for r in part]) for part in (dev_rows, test_rows))
        examples = lists[f"{criterion}_examples"]
        counter = lists.get(f"{criterion}_counter_examples", [])
        out = {"alone, shipped sentence encoder": scored(
            lambda texts, calls: sentence.encode(texts if texts is not None else [c.turns[i].text for c, i in calls]),
            examples, counter, dev, test, dev_gold, test_gold)}
        for name, (model, encoder) in models.items():
            for where in ("alone", "in calls"):
                if where == "in calls" and not name.endswith(" 1"):
                    continue

                def embed(texts, calls, model=model, encoder=encoder, where=where):
                    if texts is not None:  # the examples: as a call of one turn each, or put into calls as the turns are
                        calls = [(one_turn(t), 0) for t in texts] if where == "alone" else \
                            placed([{"text": t} for t in texts], hosts, np.random.default_rng(args.seed + 1))
                    return unit(np.nan_to_num(np.stack([in_context(model, encoder, c)[i] for c, i in calls])))
                out[f"{name}, examples {where}"] = scored(embed, examples, counter, dev, test, dev_gold, test_gold)
        for name, m in out.items():
            print(f"{criterion:10s} {name:52s} AUC {m.get('auc', float('nan')):.3f}  P {m['precision']:.2f}  "
                  f"R {m['recall']:.2f}  F1 {m['f1']:.2f}  threshold {m['threshold']:.3f}", flush=True)
        result["criteria"][criterion] = out
    path = ROOT / "benchmarks" / "results" / "semantic-in-calls.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
