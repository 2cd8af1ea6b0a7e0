"""How long `callqa report` takes on a big store: N scored calls spread over 6 months, 1 % of them reviewed.

    python benchmarks/report_scale.py --calls 1000000 [--db URL | --postgres] [--out benchmarks/results/report-scale-latest.json]

The store is filled by bulk SQL inserts (the ReviewStore's own tables), each call's prediction and scorecard copied
from one of 200 sample calls scored on the default card with seeded random head scores, so rows look like real
ones (the stored prediction JSON included). Times the month report of the last month (its 6-month trend reads every
call) and writing HTML + XLSX + CSV. Reviewed calls go through ReviewStore.submit, as reviewers' saves would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from callqa import ScoredCall, head_scores, load_calls, load_schema, load_scorecard
from callqa.serving.report import ReportBuilder, write_report
from callqa.serving.store import Reviewer, ReviewStore, ScorecardReview, queue_keys, sample_key
from callqa.serving.store.calls import (
    CallRow,
    PredictionRow,
    PredictionTopicRow,
    ScorecardItemRow,
    ScorecardRow,
)

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample" / "calls.jsonl"
START = datetime(2026, 1, 1, tzinfo=UTC)


def templates(n: int = 200):
    schema = load_schema("callcenter")
    card = load_scorecard("default", schema)
    rng = np.random.default_rng(0)
    out = []
    for call in load_calls(SAMPLE)[:n]:
        probs = {h.name: h.spec.activate(rng.normal(size=h.size) * 2) for h in schema.heads}
        scored = ScoredCall(call_id=call.call_id, n_tokens=300, truncated=False, scores=head_scores(schema, probs))
        scored.scorecard = card.score(call, scored)
        out.append((call.model_dump(mode="json", exclude={"labels"}), scored, queue_keys(scored, schema)))
    return schema, out


def fill(store: ReviewStore, n: int, chunk: int = 20_000) -> float:
    schema, tpl = templates()
    rng = np.random.default_rng(1)
    seconds = 182 * 24 * 3600  # January to June
    started = time.perf_counter()
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        for first in range(0, n, chunk):
            calls, predictions, cards, items, topics = [], [], [], [], []
            for i in range(first, min(first + chunk, n)):
                call, scored, (entropy, margin, low) = tpl[i % len(tpl)]
                card = scored.scorecard
                call_id = f"c{i:08d}"
                pid = i + 1
                at = START + timedelta(seconds=int(rng.integers(seconds)))
                calls.append({"call_id": call_id, "agent_id": f"a-{i % 300:03d}", "started_at": at, "turns": len(call["turns"]),
                              "added": now, "model": "callqa-scorer:bench", "prediction_id": pid, "total": card.total,
                              "max_total": card.max_total, "red_line": card.red_line, "entropy": entropy, "margin": margin,
                              "low_score": low, "sample_key": sample_key(call_id), "revision": 0,
                              "call": {**call, "call_id": call_id}})
                predictions.append({"id": pid, "call_id": call_id, "model": "callqa-scorer:bench", "created": now,
                                    "scores": scored.model_dump(mode="json") | {"call_id": call_id}})
                topics += [{"prediction_id": pid, "head": "topics", "topic": t} for t in scored.scores["topics"].predicted]
                cards.append({"prediction_id": pid, "call_id": call_id, "name": card.name, "hash": card.hash,
                              "total": card.total, "max_total": card.max_total, "red_line": card.red_line})
                items += [{"prediction_id": pid, "item": it.id, "section": s.id, "points": it.points,
                           "max_points": it.max_points, "deductions": len(it.deductions), "applicable": it.applicable,
                           "red_line": it.red_line} for s in card.sections for it in s.items]
            conn.execute(insert(CallRow), calls)
            conn.execute(insert(PredictionRow), predictions)
            conn.execute(insert(ScorecardRow), cards)
            conn.execute(insert(ScorecardItemRow), items)
            if topics:
                conn.execute(insert(PredictionTopicRow), topics)
            print(f"  {min(first + chunk, n):,} calls stored", flush=True)
    return time.perf_counter() - started


def review(store: ReviewStore, n: int, share: float) -> int:
    """Reviews of ``share`` of the calls, through the store as the review API saves them (points set by hand)."""
    schema = load_schema("callcenter")
    step = max(1, int(1 / share))
    count = 0
    for i in range(0, n, step):
        view = store.view(f"c{i:08d}")
        item = next(iter(view.scores.scorecard.items().values()))
        store.submit(view.call.call_id, Reviewer("bench", "Bench"), view.revision, {"attitude": 4}, schema,
                     scorecard=ScorecardReview(points={item.id: item.max_points}))
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--reviewed", type=float, default=0.01, help="share of calls reviewed")
    parser.add_argument("--db", help="database URL (default: a SQLite file in --store)")
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL cluster (Debian's postgresql, "
                        "as the tests start it)")
    parser.add_argument("--store", type=Path, help="folder of the SQLite store: filled once, reused by later runs "
                        "(default: a fresh temporary folder)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/report-scale-latest.json"))
    args = parser.parse_args()
    directory = args.store or Path(tempfile.mkdtemp(prefix="callqa-report-"))
    directory.mkdir(parents=True, exist_ok=True)
    postgres = None
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from servers import Postgres

        postgres = Postgres()
        args.db = postgres.new_database()
    url = args.db or f"sqlite:///{directory}/reviews.db"
    try:
        run(args, url, directory)
    finally:
        if postgres is not None:
            postgres.stop()


def run(args, url: str, directory: Path) -> None:
    store = ReviewStore(url)
    filled = store.counts()
    if filled["calls"] == args.calls:
        print(f"reusing the store of {args.calls:,} calls ({filled['reviewed']:,} reviewed)")
        fill_s, reviewed = None, filled["reviewed"]
    else:
        print(f"filling {url.split(':')[0]} with {args.calls:,} calls")
        fill_s = fill(store, args.calls)
        reviewed = review(store, args.calls, args.reviewed)
    builder = ReportBuilder(store, load_schema("callcenter"))
    timings = []
    for _ in range(2):  # the first run reads a cold cache; both are reported
        started = time.perf_counter()
        report = builder.build("2026-06")
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        write_report(report, directory / "report")
        timings.append({"build_s": build_s, "write_s": time.perf_counter() - started})
    overview = dict(report.table("overview").rows)
    result = {
        "what": "callqa report --period 2026-06 on a store of N calls over 2026-01..06; benchmarks/report_scale.py",
        "calls": args.calls, "reviewed": reviewed, "database": store.engine.dialect.name,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "fill_s": fill_s, "runs": timings, "period_calls": overview["质检通话数"],
        "database_bytes": (directory / "reviews.db").stat().st_size if url.startswith("sqlite") else None,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
