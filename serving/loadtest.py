"""`callqa bench-serve`: load on a running scoring API, one call per request as a call-center system sends them.

At each concurrency level, that many clients post calls back to back, each over a keep-alive connection of its own
(as a scoring service's connection pool does); throughput is calls/s over the whole run and latency is per request.
The clients are coroutines on one aiohttp session, so the load generator costs little CPU beside the server it
measures (benchmarks/serve_load.py runs both on one machine).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import numpy as np

from callqa.jsonl import load_calls


async def _client(session: aiohttp.ClientSession, url: str, bodies: list[bytes], headers: dict,
                  results: list[tuple[int, float]]) -> None:
    for body in bodies:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
        results.append((response.status, time.perf_counter() - started))


async def _level(url: str, jobs: list[bytes], clients: int, headers: dict) -> tuple[list[tuple[int, float]], float]:
    results: list[tuple[int, float]] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        await _client(session, url, jobs[:1], headers, [])  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(_client(session, url, jobs[i::clients], headers, results) for i in range(clients)))
        return results, time.perf_counter() - started


def load_test(base_url: str, data: Path, key: str | None = None, levels: tuple[int, ...] = (1, 8, 32),
              requests_per_level: int = 96, log=print) -> dict:
    calls = load_calls(data)
    bodies = [json.dumps({"calls": [c.model_dump(mode="json", exclude={"labels"})]}, ensure_ascii=False).encode()
              for c in calls]
    url = base_url.rstrip("/") + "/score"
    headers = {"content-type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    out = {"url": base_url, "calls_in_pool": len(calls), "levels": {}}
    for level in levels:
        n = max(requests_per_level, level)
        jobs = [bodies[i % len(bodies)] for i in range(n)]
        log(f"load: concurrency {level}, {n} requests …")
        results, elapsed = asyncio.run(_level(url, jobs, level, headers))
        latencies = np.array([t for _, t in results])
        ok = sum(1 for s, _ in results if s == 200)
        statuses = sorted({s for s, _ in results if s != 200})
        out["levels"][str(level)] = {
            "requests": n, "errors": n - ok, "error_statuses": statuses, "calls_per_s": ok / elapsed,
            "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        }
    return out
