"""Which reviews teach the model fastest? The review loop simulated on STC-3's real votes.

Start from a seed of labeled dialogues (their 19-vote distributions), score the rest of the training split (the pool),
let a strategy pick the next batch through the real review queue (``ReviewStore.queue`` under a ``QueuePolicy``),
reveal for each picked dialogue what **one** reviewer would say (one annotator's vote per head, drawn at random),
retrain, and measure NMD on the fixed held-out test split every round. Strategies:

- ``random``: a random batch (抽检 only; drawn by the simulation's seed — the queue's own random key is a fixed hash
  of the call id, the same draw for every seed);
- ``least_confident``: the queue ordered by the smallest top-two margin (``confidence: margin``);
- ``disagreement``: by predicted disagreement, the normalised entropy of the most uncertain head (``confidence:
  entropy``);
- ``lowest_score``: the lowest expected score first (``order: lowest_score``);
- ``default``: the queue as shipped (entropy, with its 5 % random 抽检 first).

What is cut to fit an hour on 2 CPU cores: the model retrained each round is not a fine-tuned encoder but the shared
pretrained encoder (multilingual-e5-small-zh), frozen, with a softmax head per quality head trained on its mean-pooled
embeddings (soft cross-entropy; seconds per round). The curve compares strategies on one learner; a fine-tuned
student would sit lower, and is the GPU run to make.

Single votes (issue 35.3): a review is one person's label. ``--labels`` compares training on it as a one-hot target
(``onehot``), as a smoothed distribution (``smoothed``: ε of the mass spread over the neighbouring levels, ε tuned on
the validation split against the seed's vote distributions), and as a one-hot at half weight (``halfweight``).

    python benchmarks/review_loop.py                         # ~10 min on 2 cores; results/review-loop.json, a plot
    python benchmarks/review_loop.py --docs docs/training.md  # and the table between the markers there
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from docs_block import write_docs

from callqa import head_scores, load_schema, split_calls
from callqa.measures import nmd
from callqa.scores import CallScores
from callqa.serving.store import QueuePolicy, ReviewStore
from callqa.stc3 import read_stc3

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
STC3 = SHARED / "data" / "stc3" / "train_cn.json"
ENCODER = SHARED / "models" / "multilingual-e5-small-zh"
HEADS = ("A", "S", "E")
POLICIES = {"least_confident": QueuePolicy(order="least_confident", confidence="margin", sample_rate=0),
            "disagreement": QueuePolicy(order="least_confident", confidence="entropy", sample_rate=0),
            "lowest_score": QueuePolicy(order="lowest_score", sample_rate=0),
            "default": QueuePolicy()}
STRATEGIES = ("random", *POLICIES)


def embed(calls, cache: Path) -> np.ndarray:
    """Mean-pooled, normalised embeddings of each dialogue (speaker-tagged turns, 512 tokens), cached by call ids."""
    key = hashlib.sha256("\n".join(c.call_id for c in calls).encode()).hexdigest()[:16]
    path = cache / f"e5-{key}.npy"
    if path.exists():
        return np.load(path)
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(ENCODER), AutoModel.from_pretrained(ENCODER).eval()
    texts = ["query: " + "\n".join(f"{'客服' if t.speaker == 'agent' else '客户'}：{t.text}" for t in c.turns)
             for c in calls]
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 16):
            batch = tokenizer(texts[start:start + 16], truncation=True, max_length=512, padding=True, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
            print(f"\rembedding {min(start + 16, len(texts))}/{len(texts)}", end="", flush=True)
    print()
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, np.concatenate(out))
    return np.load(path)


def distributions(calls, schema) -> dict[str, np.ndarray]:
    """Head → (calls, levels) vote distributions: each head's training target of the call's votes."""
    return {name: np.stack([schema[name].target(call.labels[name]) for call in calls]) for name in HEADS}


def one_vote(dist: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One annotator's vote, drawn from a call's vote distribution, as a one-hot row."""
    levels = dist.shape[-1]
    return np.eye(levels)[rng.choice(levels, p=dist / dist.sum())]


def smooth(onehot: np.ndarray, epsilon: float) -> np.ndarray:
    """A single vote as a distribution: ε of its mass to the neighbouring levels (an ordinal scale's likely slips)."""
    kernel = np.zeros_like(onehot)
    kernel[:, 1:] += onehot[:, :-1]
    kernel[:, :-1] += onehot[:, 1:]
    kernel /= np.maximum(kernel.sum(1, keepdims=True), 1e-9)
    return (1 - epsilon) * onehot + epsilon * kernel


def fit(x: np.ndarray, targets: dict[str, np.ndarray], weights: np.ndarray, seed: int, decay: float = 1e-3):
    """A softmax head per quality head on frozen embeddings, trained on soft targets (per-example weights)."""
    torch.manual_seed(seed)
    xs, w = torch.tensor(x, dtype=torch.float32), torch.tensor(weights, dtype=torch.float32)
    layers = {h: torch.nn.Linear(x.shape[1], targets[h].shape[1]) for h in HEADS}
    params = [p for layer in layers.values() for p in layer.parameters()]
    optimizer = torch.optim.Adam(params, lr=0.05, weight_decay=decay)
    ys = {h: torch.tensor(targets[h], dtype=torch.float32) for h in HEADS}
    for _ in range(300):
        optimizer.zero_grad()
        loss = sum((-(ys[h] * torch.log_softmax(layers[h](xs), -1)).sum(-1) * w).sum() / w.sum() for h in HEADS)
        loss.backward()
        optimizer.step()

    def predict(features: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            f = torch.tensor(features, dtype=torch.float32)
            return {h: torch.softmax(layers[h](f), -1).numpy() for h in HEADS}

    return predict


def score_nmd(predict, x: np.ndarray, gold: dict[str, np.ndarray]) -> dict[str, float]:
    probs = predict(x)
    return {h: float(nmd(probs[h], gold[h]).mean()) for h in HEADS}


def pick(strategy: str, pool: list[int], calls, probs: dict[str, np.ndarray], schema, batch: int,
         rng: np.random.Generator, workdir: Path, round_no: int) -> list[int]:
    """The next batch to review: a random draw, or the first ``batch`` calls of the real queue under the policy."""
    if strategy == "random":
        return [int(i) for i in rng.choice(pool, size=min(batch, len(pool)), replace=False)]
    store = ReviewStore(f"sqlite:///{workdir / f'{strategy}-{round_no}-{rng.integers(1 << 30)}.db'}", POLICIES[strategy])
    scores = [CallScores(call_id=calls[i].call_id, n_tokens=0, truncated=False, scores=head_scores(schema, {h: probs[h][k] for h in HEADS}))
              for k, i in enumerate(pool)]
    store.add_scored([calls[i].model_copy(update={"labels": {}}) for i in pool], scores, f"round-{round_no}", schema)
    chosen, _ = store.queue("simulation", limit=batch)
    index = {calls[i].call_id: i for i in pool}
    store.engine.dispose()
    return [index[item.call_id] for item in chosen]


def run(strategy: str, seed: int, labels: str, epsilon: float, data: dict, args) -> dict:
    """One simulated loop: NMD on the test split after each round, and the seconds each round took."""
    rng = np.random.default_rng(seed)
    train, x, dist = data["train"], data["x"], data["dist"]
    order = rng.permutation(len(train))
    labeled = [int(i) for i in order[:args.seed_size]]
    pool = sorted(int(i) for i in order[args.seed_size:])
    # The seed: its dialogues' 19-vote distributions (an annotated set), or one vote each (a center's first labels
    # are one QA reviewer's scores too).
    targets = {h: dist["train"][h][labeled] if args.seed_labels == "votes"
               else np.stack([one_vote(dist["train"][h][i], rng) for i in labeled]) for h in HEADS}
    weights = np.ones(len(labeled))
    curve, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds + 1):
            began = time.perf_counter()
            predict = fit(x["train"][labeled], targets, weights, seed)
            curve.append({"reviews": round_no * args.batch, **score_nmd(predict, x["test"], dist["test"])})
            if round_no == args.rounds:
                break
            chosen = pick(strategy, pool, train, predict(x["train"][pool]), data["schema"], args.batch, rng,
                          Path(tmp), round_no)
            for h in HEADS:
                votes = np.stack([one_vote(dist["train"][h][i], rng) for i in chosen])
                votes = smooth(votes, epsilon) if labels == "smoothed" else votes
                targets[h] = np.concatenate([targets[h], votes])
            weights = np.concatenate([weights, np.full(len(chosen), 0.5 if labels == "halfweight" else 1.0)])
            labeled += chosen
            pool = sorted(set(pool) - set(chosen))
            seconds.append(time.perf_counter() - began)
    return {"strategy": strategy, "seed": seed, "labels": labels, "curve": curve, "round_seconds": seconds}


def tune_epsilon(data: dict, args) -> float:
    """ε for smoothed single votes: the one whose single-vote training set (one vote per seed-sized sample of the
    training split) gives the lowest NMD on the validation split."""
    rng = np.random.default_rng(0)
    chosen = rng.permutation(len(data["train"]))[:args.seed_size + args.batch * args.rounds // 2]
    results = {}
    for epsilon in (0.0, 0.1, 0.2, 0.3, 0.4):
        targets = {h: smooth(np.stack([one_vote(data["dist"]["train"][h][i], np.random.default_rng(int(i)))
                                       for i in chosen]), epsilon) for h in HEADS}
        predict = fit(data["x"]["train"][chosen], targets, np.ones(len(chosen)), 0)
        results[epsilon] = float(np.mean(list(score_nmd(predict, data["x"]["validation"],
                                                        data["dist"]["validation"]).values())))
    return min(results, key=results.get)


def mean_curve(runs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(reviews, NMD averaged over heads and seeds) of a strategy's runs."""
    reviews = np.array([p["reviews"] for p in runs[0]["curve"]])
    values = np.mean([[np.mean([p[h] for h in HEADS]) for p in r["curve"]] for r in runs], axis=0)
    return reviews, values


def reviews_to_reach(reviews: np.ndarray, values: np.ndarray, target: float) -> float | None:
    """Reviews needed to reach ``target`` NMD, interpolated between rounds (None: never reached)."""
    for k in range(len(values)):
        if values[k] <= target:
            if k == 0:
                return 0.0
            a, b = values[k - 1], values[k]
            return float(reviews[k - 1] + (reviews[k] - reviews[k - 1]) * (a - target) / max(a - b, 1e-12))
    return None


def summarize(runs: list[dict]) -> dict:
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(f"{r['strategy']}/{r['labels']}", []).append(r)
    _, random_values = mean_curve(groups["random/onehot"])
    target = float(random_values[-1])
    out = {}
    for name, group in groups.items():
        reviews, values = mean_curve(group)
        finals = {h: float(np.mean([r["curve"][-1][h] for r in group])) for h in HEADS}
        spread = float(np.std([np.mean([r["curve"][-1][h] for h in HEADS]) for r in group]))
        out[name] = {"seeds": len(group), "final": finals, "final_mean": float(values[-1]), "final_sd": spread,
                     "start_mean": float(values[0]), "reviews_to_random_final": reviews_to_reach(reviews, values, target),
                     "round_seconds": float(np.mean([s for r in group for s in r["round_seconds"]]))}
    return out


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for strategy in STRATEGIES:
        group = [r for r in runs if r["strategy"] == strategy and r["labels"] == "onehot"]
        if group:
            reviews, values = mean_curve(group)
            ax.plot(reviews, values, marker="o", label=strategy)
    ax.set_xlabel("reviews (one annotator's vote each)")
    ax.set_ylabel("NMD on the test split (mean of A/S/E; lower is better)")
    ax.set_title("STC-3 review loop: frozen e5-small + softmax heads")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def table(result: dict) -> str:
    s = result["settings"]
    seed = "their 19-vote distributions" if s.get("seed_labels", "votes") == "votes" else "one vote each"
    lines = [f"STC-3 review loop ({s['seed_size']} seed dialogues with {seed}, then {s['rounds']} rounds of "
             f"{s['batch']} reviews of one vote each; NMD on the {result['sizes']['test']} test dialogues, mean of "
             f"{len(s['seeds'])} seeds; frozen e5-small + softmax heads; {result['machine']}).", "",
             "| strategy | single votes as | NMD A | NMD S | NMD E | mean ± sd (seeds) | reviews to reach random's final | s / round |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in sorted(result["summary"].items(), key=lambda kv: kv[1]["final_mean"]):
        strategy, labels = name.split("/")
        reach = r["reviews_to_random_final"]
        lines.append(f"| {strategy} | {labels} | {r['final']['A']:.4f} | {r['final']['S']:.4f} | {r['final']['E']:.4f} | "
                     f"{r['final_mean']:.4f} ± {r['final_sd']:.4f} | {'—' if reach is None else f'{reach:.0f}'} | "
                     f"{r['round_seconds']:.1f} |")
    lines.append("")
    lines.append(f"Before any review (the seed alone): NMD {result['summary']['random/onehot']['start_mean']:.4f}; "
                 f"single votes smoothed with ε = {result['epsilon']} (tuned on the validation split).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stc3", type=Path, default=STC3)
    parser.add_argument("--seed-size", type=int, default=300)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed-labels", choices=["votes", "single"], default="votes",
                        help="the seed dialogues' labels: their vote distributions, or one vote each")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--labels", nargs="+", default=["onehot", "smoothed", "halfweight"],
                        help="single-vote treatments; the extra ones run on random and default only")
    parser.add_argument("--docs", type=Path, default=None, help="write the table into this markdown file")
    args = parser.parse_args()

    schema = load_schema("stc3")
    calls = list(read_stc3(args.stc3))
    parts = split_calls(calls, (0.8, 0.1, 0.1), seed=13, stratify="A")  # the Makefile's stc3 split
    by_part = {name: [calls[i] for i in idx] for name, idx in zip(("train", "validation", "test"), parts)}
    cache = ROOT / "data" / "review_loop"
    data = {"schema": schema, "train": by_part["train"],
            "x": {p: embed(by_part[p], cache) for p in by_part}, "dist": {p: distributions(by_part[p], schema) for p in by_part}}
    epsilon = tune_epsilon(data, args)
    print(f"single votes smoothed with ε = {epsilon} (validation)")
    runs = []
    for strategy in STRATEGIES:
        for labels in args.labels:
            if labels != "onehot" and strategy not in ("random", "default"):
                continue
            for seed in args.seeds:
                began = time.perf_counter()
                runs.append(run(strategy, seed, labels, epsilon, data, args))
                final = np.mean([runs[-1]["curve"][-1][h] for h in HEADS])
                print(f"{strategy:16s} {labels:10s} seed {seed}: NMD {final:.4f} ({time.perf_counter() - began:.0f} s)",
                      flush=True)
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "epsilon": epsilon,
              "sizes": {k: len(v) for k, v in by_part.items()},
              "settings": {"seed_size": args.seed_size, "seed_labels": args.seed_labels, "batch": args.batch,
                           "rounds": args.rounds, "seeds": args.seeds},
              "summary": summarize(runs), "runs": runs}
    out = ROOT / "benchmarks" / "results" / f"review-loop-seed-{args.seed_labels}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    plot(runs, ROOT / "docs" / "img" / f"review-loop-seed-{args.seed_labels}.png")
    print(table(result))
    if args.docs:
        write_docs(args.docs, f"review-loop-{args.seed_labels}", table(result))


if __name__ == "__main__":
    main()
