"""Review store timings on a database of N scored calls: bulk add, queue read, open (lease) and save.

    python benchmarks/review_store.py --calls 20000 [--db URL] [--out benchmarks/results/reviews-latest.json]

Synthetic scores (random distributions over the callcenter schema) on a fresh SQLite file unless --db is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from callqa import Call, ScoredCall, head_scores, load_schema
from callqa.serving.store import QueuePolicy, Reviewer, ReviewStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reviews-latest.json"))
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='callqa-bench-')}/reviews.db"
    schema = load_schema("callcenter")
    rng = np.random.default_rng(0)
    store = ReviewStore(url, QueuePolicy(sample_rate=0.05, agent_daily_quota=50))
    turns = [{"speaker": "agent" if i % 2 == 0 else "customer", "text": "您好，请问有什么可以帮您？" * 3} for i in range(20)]

    started = time.perf_counter()
    for start in range(0, args.calls, 500):
        ids = [f"c{i:07d}" for i in range(start, min(start + 500, args.calls))]
        calls = [Call(call_id=i, agent_id=f"a{int(i[1:]) % 200}", turns=turns) for i in ids]
        scores = [ScoredCall(call_id=i, n_tokens=300, truncated=False, scores=head_scores(schema, {
            h.name: h.spec.activate(rng.normal(size=h.size) * 2) for h in schema.heads}))
                  for i in ids]
        store.add_scored(calls, scores, "callqa-scorer:bench", schema)
    add_s = time.perf_counter() - started

    def timed(fn, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)

    result = {"calls": args.calls, "database": url.split(":")[0], "machine": platform.processor() or platform.machine(),
              "add_calls_per_s": args.calls / add_s}
    for order in ("least_confident", "lowest_score", "random"):
        store.policy = QueuePolicy(order=order, sample_rate=0.05, agent_daily_quota=50)
        result[f"queue_50_ms_{order}"] = timed(lambda: store.queue("r", 50), 10)
    reviewer = Reviewer("bench")
    # open = lease the queue's first call; released each time so the next round leases it again
    result["next_call_ms"] = timed(lambda: store.release(store.next_call(reviewer), reviewer), 20)
    views = iter([item.call_id for item in store.queue(reviewer.id, 20)[0]])
    result["submit_ms"] = timed(lambda: store.submit(next(views), reviewer, 0, {"attitude": "3", "topics": ["billing"]},
                                                     schema), 20)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
