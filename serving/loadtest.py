"""`callqa bench-serve`: load on a running scoring API, one call per request as a call-center system sends them.

At each concurrency level, that many clients post calls back to back; throughput is calls/s over the whole run and
latency is per request. The result is compared with raw onnxruntime batch throughput on the same calls (from
`callqa bench`), which is the ceiling a server on the same CPU can approach.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from callqa.jsonl import load_calls


def _post(url: str, body: bytes, key: str | None) -> tuple[int, float]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    return status, time.perf_counter() - started


def load_test(base_url: str, data: Path, key: str | None = None, levels: tuple[int, ...] = (1, 8, 32),
              requests_per_level: int = 96, log=print) -> dict:
    calls = load_calls(data)
    bodies = [json.dumps({"calls": [c.model_dump(mode="json", exclude={"labels"})]}, ensure_ascii=False).encode()
              for c in calls]
    url = base_url.rstrip("/") + "/score"
    _post(url, bodies[0], key)  # warm-up
    out = {"url": base_url, "calls_in_pool": len(calls), "levels": {}}
    for level in levels:
        n = max(requests_per_level, level)
        jobs = [bodies[i % len(bodies)] for i in range(n)]
        log(f"load: concurrency {level}, {n} requests …")
        started = time.perf_counter()
        with ThreadPoolExecutor(level) as pool:
            results = list(pool.map(lambda b: _post(url, b, key), jobs))
        elapsed = time.perf_counter() - started
        latencies = np.array([t for _, t in results])
        ok = sum(1 for s, _ in results if s == 200)
        statuses = sorted({s for s, _ in results if s != 200})
        out["levels"][str(level)] = {
            "requests": n, "errors": n - ok, "error_statuses": statuses, "calls_per_s": ok / elapsed,
            "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        }
    return out
