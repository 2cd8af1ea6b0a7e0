"""Criteria written as examples, measured on turns no rule was written on (issue 34).

(a) **STC-3 nuggets**: two criteria — the customer states a problem (CNUG0), the helpdesk gives a solution (HNUG*) —
    each written as 10 example turns and 5 counter-examples drawn from the training split (ten of the 50 turns most of
    the 19 annotators gave the nugget, five none gave it), scored on the turns of the held-out test split against the majority of
    their votes: AUC, and precision / recall at the threshold tuned on the validation split. Next to: a phrase rule
    written from the same examples (their 2–4 character strings shared by two examples and no counter-example), and
    TF-IDF nearest-example similarity (character 1–3-grams).
(b) **Agent turns written for the default card's criteria** (datasets/semantic/agent_turns.jsonl: 推诿, 含糊其辞, 安抚,
    致歉, positives in other words and hard negatives, plus 64 everyday agent turns (40 full sentences, 24 short
    colloquial ones) negative for every criterion,
    written apart from the card's examples): precision / recall on
    the ``test`` half for the default card's phrase lists and for the semantic rules (threshold tuned on the ``dev``
    half), with the pretrained e5-small cut to 12, 4, 2 and 1 of its layers (the depth is the cost: docs/scorecard.md),
    nothing before a turn — and 12 and 1 with e5's ``query: `` prefix (1 with it: the encoder shipped until 2026-12-06)
    and TF-IDF.

    python benchmarks/semantic_rules.py --docs docs/scorecard.md   # ~5 min on 2 cores

Results: benchmarks/results/semantic-rules.json and the tables between ``<!-- semantic-rules:start/end -->``.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import numpy as np
from docs_block import write_docs
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from callqa import ExampleMatcher, OnnxSentenceEncoder, Votes, split_calls
from callqa.scorecard import load_phrases
from callqa.stc3 import read_stc3

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ENCODER = SHARED / "models" / "multilingual-e5-small-zh"
TURNS = ROOT / "datasets" / "semantic" / "agent_turns.jsonl"
PHRASES = ROOT / "configs" / "scorecards" / "phrases.yaml"
# Criterion of (b) → the default card's phrase list that stands for it, and the phrase file's example lists.
CARD_LISTS = {"deflection": "deflection", "evasive": "evasive", "soothing": "soothing", "apology": "soothing"}
# The exceptions the replaced phrase rules had (the card's evasive rule).
EXCEPTIONS = {"evasive": ("不清楚的地方您可以随时问我", "不清楚的话我帮您查")}
# The default card's semantic rules → the criterion of (b) each stands for.
CARD_RULES = {"deflection": "deflection", "evasive": "evasive", "no_soothing": "soothing"}
NUGGETS = {"problem": ("customer", "customer_nugget", "CNUG0"), "solution": ("agent", "helpdesk_nugget", "HNUG*")}


class Tfidf:
    """TF-IDF character n-grams as a 'sentence encoder': the nearest-example baseline."""

    name = "tfidf"

    def __init__(self, corpus: list[str]):
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3)).fit(corpus)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.vectorizer.transform(texts).toarray().astype(np.float32)  # rows are L2-normalised already


def tuned(scores: np.ndarray, gold: np.ndarray) -> float:
    """The threshold with the best F1 on a tuning split."""
    grid = np.unique(np.round(scores, 4))
    return float(grid[int(np.argmax([f1_score(gold, scores >= t, zero_division=0) for t in grid]))])


def measured(gold: np.ndarray, hit: np.ndarray, scores: np.ndarray | None = None) -> dict:
    out = {"n": int(len(gold)), "positives": int(gold.sum()), "precision": float(precision_score(gold, hit, zero_division=0)),
           "recall": float(recall_score(gold, hit, zero_division=0)), "f1": float(f1_score(gold, hit, zero_division=0))}
    if scores is not None and 0 < gold.sum() < len(gold):
        out["auc"] = float(roc_auc_score(gold, scores))
    return out


def semantic(encoder, examples, counter, tune_texts, tune_gold, test_texts, test_gold) -> dict:
    matcher = ExampleMatcher.of(encoder, examples, counter)
    began = time.perf_counter()
    tune = np.array([m.score for m in matcher.match(encoder.encode(tune_texts))])
    test = np.array([m.score for m in matcher.match(encoder.encode(test_texts))])
    seconds = time.perf_counter() - began
    cut = tuned(tune, tune_gold)
    return {**measured(test_gold, test >= cut, test), "threshold": cut,
            "ms_per_turn": 1000 * seconds / max(1, len(tune_texts) + len(test_texts))}


def phrase_hits(phrases: list[str], texts: list[str], exceptions: tuple[str, ...] = ()) -> np.ndarray:
    """Turns a phrase list matches (the card's phrase rules: a match inside one of ``exceptions`` does not count)."""
    from callqa.rules import Matcher, PhraseSet

    matcher = Matcher.of(PhraseSet(phrases=tuple(phrases), exceptions=exceptions), {}, "benchmark")
    return np.array([matcher.matches(t) for t in texts])


def phrases_from(examples: list[str], counter: list[str]) -> list[str]:
    """A phrase rule written from the examples as a lead would: strings of 2–4 characters that two examples share
    and no counter-example has (the longest kept when one contains another)."""
    grams: dict[str, int] = {}
    for text in examples:
        for g in {text[i:i + n] for n in (2, 3, 4) for i in range(len(text) - n + 1)}:
            grams[g] = grams.get(g, 0) + 1
    kept = [g for g, n in grams.items() if n >= 2 and not any(g in c for c in counter) and re.search(r"\w{2}", g)]
    return [g for g in kept if not any(g != k and g in k for k in kept)]


def default_card_with(thresholds: dict[str, float] | None, folder: Path) -> Path:
    """The default card written to ``folder`` with its semantic rules' thresholds replaced (per criterion of (b); None:
    as shipped), naming no encoder depth or prefix (the encoder measured with it is another): the YAML's path."""
    import yaml

    source = ROOT / "configs" / "scorecards"
    data = yaml.safe_load((source / "default.yaml").read_text(encoding="utf-8"))
    data.pop("sentence_layers", None)
    data.pop("sentence_prefix", None)
    data["phrases"] = str(source / data["phrases"])
    for rule, criterion in CARD_RULES.items() if thresholds else ():
        data["rules"][rule]["threshold"] = thresholds[criterion]
    (folder / "card.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return folder / "card.yaml"


def stc3_parts() -> dict[str, list]:
    """STC-3's dialogues on the Makefile's split (80/10/10, seed 13): train, validation, test."""
    calls = list(read_stc3(SHARED / "data" / "stc3" / "train_cn.json"))
    parts = split_calls(calls, (0.8, 0.1, 0.1), seed=13, stratify="A")
    return dict(zip(("train", "validation", "test"), ([calls[i] for i in idx] for idx in parts), strict=True))


def nugget_refs(calls, speaker: str, head: str, label: str) -> list[tuple[int, int, str, float]]:
    """(call index, turn index, text, share of votes for the label) of every voted turn by ``speaker``."""
    out = []
    for c, call in enumerate(calls):
        for t, turn in enumerate(call.turns):
            votes = turn.labels.get(head)
            if turn.speaker == speaker and isinstance(votes, Votes):
                out.append((c, t, turn.text, votes.votes.get(label, 0) / sum(votes.votes.values())))
    return out


def nugget_turns(calls, speaker: str, head: str, label: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, share of votes for the label, majority) of the calls' turns by ``speaker``."""
    refs = nugget_refs(calls, speaker, head, label)
    share = np.array([r[3] for r in refs])
    return [r[2] for r in refs], share, share > 0.5


def pick_examples(texts: list[str], share: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a criterion's 10 examples — ten of the 50 turns most annotators gave the nugget (a lead picks clear
    cases), of a readable length — and 5 counter-examples no annotator gave it."""
    sure = [i for i in np.argsort(-share, kind="stable") if share[i] > 0.5 and 6 <= len(texts[i]) <= 80][:50]
    never = [i for i in range(len(texts)) if share[i] == 0 and 6 <= len(texts[i]) <= 80]
    return rng.choice(sure, 10, replace=False), rng.choice(never, 5, replace=False)


def stc3_nuggets(encoders: dict, seed: int) -> dict:
    parts = stc3_parts()
    train, validation, test = parts["train"], parts["validation"], parts["test"]
    rng = np.random.default_rng(seed)
    out = {}
    for name, (speaker, head, label) in NUGGETS.items():
        texts, share, _ = nugget_turns(train, speaker, head, label)
        chosen, against = pick_examples(texts, share, rng)
        examples, counter = [texts[i] for i in chosen], [texts[i] for i in against]
        v_texts, _, v_gold = nugget_turns(validation, speaker, head, label)
        t_texts, _, t_gold = nugget_turns(test, speaker, head, label)
        phrases = phrases_from(examples, counter)
        result = {"examples": examples, "counter_examples": counter, "phrases": phrases,
                  "phrase": measured(t_gold, phrase_hits(phrases, t_texts))}
        for key, encoder in encoders.items():
            enc = Tfidf(texts) if key == "tfidf" else encoder
            result[key] = semantic(enc, examples, counter, v_texts, v_gold, t_texts, t_gold)
        out[name] = result
    return out


def agent_turns(encoders: dict) -> dict:
    rows = [json.loads(line) for line in TURNS.read_text(encoding="utf-8").splitlines()]
    lists = load_phrases(PHRASES)
    out = {}
    for criterion, card_list in CARD_LISTS.items():
        examples, counter = lists[f"{criterion}_examples"], lists.get(f"{criterion}_counter_examples", [])
        overlap = {r["text"] for r in rows} & set(examples + counter)
        assert not overlap, f"held-out turns among the card's examples: {overlap}"
        # The criterion's own turns, and the everyday agent turns (greetings, checks, closings) every criterion
        # must leave alone: a call is mostly those.
        mine = [r for r in rows if r["criterion"] in (criterion, "generic")]
        dev = [r for r in mine if r["split"] == "dev"]
        test = [r for r in mine if r["split"] == "test"]
        gold = np.array([r["label"] for r in test])
        texts = [r["text"] for r in test]
        result = {"phrase": measured(gold, phrase_hits(lists[card_list], texts, EXCEPTIONS.get(criterion, ())))}
        for key, encoder in encoders.items():
            enc = Tfidf([r["text"] for r in dev] + examples) if key == "tfidf" else encoder
            result[key] = semantic(enc, examples, counter, [r["text"] for r in dev], np.array([r["label"] for r in dev]),
                                   texts, gold)
        out[criterion] = result
    return out


TITLES = {"deflection": "推诿", "evasive": "含糊其辞", "soothing": "安抚", "apology": "致歉",
          "problem": "客户说明问题 (CNUG0)", "solution": "客服给出方案 (HNUG*)"}
SYSTEMS = {"phrase": "phrase rule", "e5-12-query": "semantic, e5-small 12 layers, “query: ” before each turn",
           "e5-12": "semantic, e5-small 12 layers", "e5-4": "semantic, e5-small 4 layers",
           "e5-4-int8": "semantic, e5-small 4 layers int8", "e5-2-int8": "semantic, e5-small 2 layers int8",
           "e5-1-int8-query": "semantic, e5-small 1 layer int8, “query: ” before each turn (shipped until 2026-12-06)",
           "e5-1-int8": "semantic, e5-small 1 layer int8 (shipped)", "tfidf": "TF-IDF nearest example"}


def table(result: dict) -> str:
    lines = ["(a) STC-3 nuggets, held-out test turns (threshold tuned on the validation split):", "",
             "| criterion | turns (positive) | system | AUC | precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    for name, r in result["stc3"].items():
        for key, label in SYSTEMS.items():
            if key not in r:
                continue
            m = r[key]
            lines.append(f"| {TITLES[name]} | {m['n']} ({m['positives']}) | {label} | "
                         f"{m['auc']:.3f} | " if "auc" in m else f"| {TITLES[name]} | {m['n']} ({m['positives']}) | {label} | — | ")
            lines[-1] += f"{m['precision']:.2f} | {m['recall']:.2f} | {m['f1']:.2f} |"
    lines += ["", "(b) Agent turns for the default card's criteria (datasets/semantic/agent_turns.jsonl, test half; "
              "threshold tuned on the dev half):", "",
              "| criterion | turns (positive) | system | AUC | precision | recall | F1 | ms / turn |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in result["agent_turns"].items():
        for key, label in SYSTEMS.items():
            if key not in r:
                continue
            m = r[key]
            auc = f"{m['auc']:.3f}" if "auc" in m else "—"
            ms = f"{m['ms_per_turn']:.1f}" if "ms_per_turn" in m else "—"
            lines.append(f"| {TITLES[name]} | {m['n']} ({m['positives']}) | {label} | {auc} | {m['precision']:.2f} | "
                         f"{m['recall']:.2f} | {m['f1']:.2f} | {ms} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="which STC-3 training turns become the examples")
    parser.add_argument("--docs", type=Path, default=None, help="write the tables into this markdown file")
    parser.add_argument("--run", type=Path, default=None, help="also a fine-tuned run's encoder, first 4 layers (does "
                        "fine-tuning for call quality keep what a turn says?)")
    args = parser.parse_args()
    from callqa import RunDir
    from callqa.training.export.sentence import export_sentence_encoder

    cache = ROOT / "data" / "sentence-encoders"
    encoders: dict = {}
    for key, layers, int8, prefix in (("e5-12-query", None, False, "query: "), ("e5-12", None, False, ""),
                                      ("e5-4", 4, False, ""), ("e5-4-int8", 4, True, ""), ("e5-2-int8", 2, True, ""),
                                      ("e5-1-int8-query", 1, True, "query: "), ("e5-1-int8", 1, True, "")):
        folder = cache / key
        if not (folder / "encoder.json").exists():
            export_sentence_encoder(ENCODER, folder, layers, int8=int8, prefix=prefix)
        # remember=0: every text embedded, so ms / turn is the encoder's own cost.
        encoders[key] = OnnxSentenceEncoder(folder, remember=0)
    if args.run is not None:
        folder = cache / f"{args.run.name}-4"
        if not (folder / "model.onnx").exists():
            run = RunDir(args.run)
            export_sentence_encoder(run.encoder_config_file.parent, folder, 4, int8=True)
            (folder / "tokenizer.json").write_bytes(run.tokenizer.read_bytes())
        encoders["run-4"] = OnnxSentenceEncoder(folder, remember=0)
        SYSTEMS["run-4"] = f"semantic, run {args.run.name}'s fine-tuned encoder, 4 layers int8"
    encoders["tfidf"] = None  # fitted per criterion on its own texts
    result = {"machine": platform.machine(), "seed": args.seed, "agent_turns": agent_turns(encoders),
              "stc3": stc3_nuggets(encoders, args.seed)}
    out = ROOT / "benchmarks" / "results" / f"semantic-rules{'-' + args.run.name if args.run else ''}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(table(result))
    if args.docs:
        write_docs(args.docs, "semantic-rules", table(result))


if __name__ == "__main__":
    main()
