"""The scorecard's and the evidence's cost and reach: rule throughput on one core, hit rates per rule, what grading
adds to scoring, and what per-turn evidence (occlusion) costs against plain scoring.

    python benchmarks/scorecard.py --data datasets/sample/calls.jsonl [--stc3 ../shared/data/stc3/train_cn.json]
        [--bundle bundles/demo/current [--serve]] --out benchmarks/results/scorecard-latest.json

- rules: calls/s of every rule of the card over the calls, in this one Python thread (rules are pure Python, so one
  core; semantic rules embed the turns with onnxruntime on the cores it takes), repeated until at least 3 s have
  passed — for the whole card and per rule kind;
- semantic rules: their milliseconds per call on one core (one embedding pass over the turns, then every semantic
  rule) against the model's on one core, the share of scoring they add — every turn embedded, and with the encoder
  remembering the texts it saw (from cold, one pass over the calls);
- hit rates: per rule, the share of calls with at least one hit, and hits per 100 calls;
- with --bundle: the pipeline's time per call for the model (onnxruntime) vs the scorecard on the same calls;
- with --serve: /score p50/p90 latency for one call per request, with and without the scorecard, alternating;
- with --bundle: evidence per call (the call and it without each turn, one batch) against scoring the call alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from callqa import Call, Scorecard, load_calls, load_scorecard
from callqa.training.bench import machine


def rule_throughput(card: Scorecard, calls: list[Call], seconds: float = 3.0, kind: str | None = None) -> dict:
    """Calls/s of the card's rules (of one ``kind``), a call's turns embedded once for its semantic rules."""
    passes, started = 0, time.perf_counter()
    while True:
        for call in calls:
            card.rule_hits(call, kind)
        passes += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
    return {"calls": len(calls), "passes": passes, "calls_per_s": passes * len(calls) / elapsed}


def repeated_agent_turns(calls: list[Call]) -> dict:
    """How many agent turns say word for word what an earlier one said: what the sentence encoder's memory can save."""
    seen: set[str] = set()
    turns = repeated = 0
    for call in calls:
        for turn in call.turns:
            if turn.speaker == "agent":
                turns += 1
                repeated += turn.text in seen
                seen.add(turn.text)
    return {"agent_turns": turns, "distinct": len(seen), "repeated_share": repeated / turns if turns else None}


def hit_rates(card: Scorecard, calls: list[Call]) -> dict:
    with_hits, hits, judged = Counter(), Counter(), Counter()
    for call in calls:
        for rule, found in card.rule_hits(call).items():
            if found is None:
                continue
            judged[rule] += 1
            hits[rule] += len(found)
            with_hits[rule] += bool(found)
    return {rule: {"title": card.rules[rule].spec.title, "applicable": judged[rule],
                   "calls_hit": with_hits[rule], "share": with_hits[rule] / judged[rule] if judged[rule] else None,
                   "hits_per_100_calls": 100 * hits[rule] / judged[rule] if judged[rule] else None}
            for rule in card.rules}


def pipeline_cost(bundle: Path, card: Scorecard, calls: list[Call], sentence: Path | None = None) -> dict:
    """Time per call on one core, as `callqa score` and the service spend it (one model run per core, the card's
    rules beside it): the model, the head scores, the card, and of the card the semantic rules — every turn embedded
    (``card``'s encoder remembers nothing), and again with an encoder that remembers the texts it saw, from cold,
    over these calls in order (``sentence``: that encoder's folder, by default the bundle's)."""
    from callqa import OnnxSentenceEncoder, ScoringSession

    session = ScoringSession(bundle, card, run_threads=1)
    scorer, pipeline = session.scorer, session.pipeline
    scorer.predict(calls[:4])  # warm-up
    model_s = min(_seconds(lambda: scorer.predict(calls)) for _ in range(2))
    predictions = scorer.predict(calls)
    timings = {with_card: min(_seconds(lambda w=with_card: pipeline.assemble(calls, predictions, with_scorecard=w))
                              for _ in range(3)) for with_card in (False, True)}
    out = {"calls": len(calls), "model_ms_per_call": 1000 * model_s / len(calls),
           "heads_ms_per_call": 1000 * timings[False] / len(calls),
           "scorecard_ms_per_call": 1000 * (timings[True] - timings[False]) / len(calls),
           "scorecard_share_of_scoring": (timings[True] - timings[False]) / (model_s + timings[True])}
    if card.semantic:
        semantic_s = len(calls) / rule_throughput(card, calls, 2.0, "semantic")["calls_per_s"]
        without = model_s + timings[True] - semantic_s
        remembering = load_scorecard(card.source)
        remembering.use_encoder(OnnxSentenceEncoder(sentence or bundle / "sentence", threads=1))
        remembered_s = _seconds(lambda: rule_throughput(remembering, calls, 0.0, "semantic"))
        out.update({"semantic_ms_per_call": 1000 * semantic_s / len(calls),
                    "semantic_added_to_scoring": semantic_s / without,
                    "semantic_remembered_ms_per_call": 1000 * remembered_s / len(calls),
                    "semantic_remembered_added_to_scoring": remembered_s / without})
    return out


def _seconds(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def evidence_cost(bundle: Path, calls: list[Call]) -> dict:
    from callqa import ScoringSession
    from callqa.evidence import attributions, occlusion_batch

    scorer = ScoringSession(bundle, None, run_threads=None).scorer
    scorer.predict(calls[:2])  # warm-up
    started = time.perf_counter()
    for call in calls:
        scorer.predict([call])
    plain = (time.perf_counter() - started) / len(calls)
    started = time.perf_counter()
    for call in calls:
        attributions(call, "bench", scorer.info.schema_, scorer.predict(occlusion_batch(call)))
    explained = (time.perf_counter() - started) / len(calls)
    turns = sum(len(c.turns) for c in calls) / len(calls)
    return {"calls": len(calls), "mean_turns": turns, "plain_ms_per_call": 1000 * plain,
            "evidence_ms_per_call": 1000 * explained, "ratio": explained / plain}


def served_latency(bundle: Path, calls: list[Call], rounds: int = 150) -> dict:
    from callqa.serving.process import start_serve, stop_tree

    with tempfile.TemporaryDirectory() as tmp:
        process, port = start_serve(bundle, Path(tmp) / "serve.log", "--no-auth", "--db", f"sqlite:///{tmp}/db.sqlite")
        try:
            times: dict[bool, list[float]] = {True: [], False: []}
            bodies = [json.loads(c.model_dump_json(exclude_none=True)) for c in calls]
            for i in range(rounds * 2 + 10):
                with_card = i % 2 == 0
                # Both modes score the same calls (request pairs), so call length is not mistaken for the cost.
                data = json.dumps({"calls": [bodies[(i // 2) % len(bodies)]], "scorecard": with_card}).encode()
                request = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=data,
                                                 headers={"Content-Type": "application/json"})
                started = time.perf_counter()
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
                if i >= 10:  # warm-up
                    times[with_card].append(1000 * (time.perf_counter() - started))
        finally:
            stop_tree(process)
    out = {}
    for with_card, values in times.items():
        q = statistics.quantiles(values, n=10)
        out["with_scorecard" if with_card else "without_scorecard"] = {
            "requests": len(values), "p50_ms": statistics.median(values), "p90_ms": q[8]}
    out["p50_increase"] = out["with_scorecard"]["p50_ms"] / out["without_scorecard"]["p50_ms"] - 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("datasets/sample/calls.jsonl"))
    parser.add_argument("--stc3", type=Path, help="STC-3 JSON (train_cn.json): rule speed and hit rates on real calls")
    parser.add_argument("--scorecard", default="default")
    parser.add_argument("--bundle", type=Path, help="a bundle folder: model vs scorecard time per call")
    parser.add_argument("--sentence-encoder", type=Path, help="the semantic rules' encoder folder (default: the "
                        "bundle's sentence/)")
    parser.add_argument("--serve", action="store_true", help="also serve the bundle and time /score with and without")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scorecard-latest.json"))
    args = parser.parse_args()

    card = load_scorecard(args.scorecard)
    if card.semantic:
        from callqa import OnnxSentenceEncoder

        folder = args.sentence_encoder or (args.bundle / "sentence" if args.bundle else None)
        if folder is None:
            parser.error("the card has semantic rules: give --bundle (with sentence/) or --sentence-encoder DIR")
        # One core, and every turn embedded (remember=0): the semantic rules' own cost, not the memory's.
        card.use_encoder(OnnxSentenceEncoder(folder, threads=1, remember=0))
    sets = {"sample": load_calls(args.data)}
    if args.stc3:
        from callqa.stc3 import read_stc3

        sets["stc3"] = list(read_stc3(args.stc3))
    cpu = {**machine(), "python": platform.python_version()}
    print(f"{cpu['cpu']}, {cpu['cores']} cores: {' '.join(cpu['flags'])}")
    result = {"machine": cpu,
              "scorecard": {"name": card.name, "hash": card.hash, "rules": len(card.rules)},
              "rules_throughput": {name: rule_throughput(card, calls) for name, calls in sets.items()},
              "rules_throughput_by_kind": {kind: rule_throughput(card, sets["sample"], 2.0, kind)
                                           for kind in sorted({r.kind for r in card.rules.values()})},
              "hit_rates": {name: hit_rates(card, calls) for name, calls in sets.items()},
              "repeated_agent_turns": {name: repeated_agent_turns(calls) for name, calls in sets.items()}}
    if args.bundle:
        result["pipeline"] = pipeline_cost(args.bundle, card, sets["sample"][:120], args.sentence_encoder)
        result["evidence"] = evidence_cost(args.bundle, sets["sample"][:30])
        if args.serve:
            result["served"] = served_latency(args.bundle, sets["sample"][:50])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    for name, t in result["rules_throughput"].items():
        print(f"rules on {name}: {t['calls_per_s']:,.0f} calls/s ({t['calls']} calls × {t['passes']} passes)")
    for kind, t in result["rules_throughput_by_kind"].items():
        print(f"  {kind} rules alone on sample: {t['calls_per_s']:,.0f} calls/s")
    names = list(sets)
    print("\n| rule | " + " | ".join(f"{n}: calls hit" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for rule in card.rules:
        cells = []
        for n in names:
            r = result["hit_rates"][n][rule]
            cells.append("n/a (no timestamps)" if r["share"] is None else f"{r['share']:.1%} ({r['calls_hit']})")
        print(f"| {rule} {card.rules[rule].spec.title} | " + " | ".join(cells) + " |")
    if "pipeline" in result:
        p = result["pipeline"]
        print(f"\nper call: model {p['model_ms_per_call']:.2f} ms, head scores {p['heads_ms_per_call']:.3f} ms, "
              f"scorecard {p['scorecard_ms_per_call']:.3f} ms ({p['scorecard_share_of_scoring']:.1%} of scoring), of "
              f"which semantic rules {p.get('semantic_ms_per_call', 0):.2f} ms "
              f"(+{p.get('semantic_added_to_scoring', 0):.1%} to scoring without them; remembering the texts it saw, "
              f"{p.get('semantic_remembered_ms_per_call', 0):.2f} ms, "
              f"+{p.get('semantic_remembered_added_to_scoring', 0):.1%})")
    if "evidence" in result:
        e = result["evidence"]
        print(f"evidence: {e['evidence_ms_per_call']:.0f} ms per call ({e['mean_turns']:.1f} turns) vs "
              f"{e['plain_ms_per_call']:.0f} ms to score it alone ({e['ratio']:.1f}×)")
    if "served" in result:
        s = result["served"]
        print(f"/score p50: {s['without_scorecard']['p50_ms']:.1f} ms without, {s['with_scorecard']['p50_ms']:.1f} ms "
              f"with the scorecard ({s['p50_increase']:+.1%})")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
