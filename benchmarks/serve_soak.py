"""Does a served bundle recover after load, and does it stay bounded over many requests? (docs/serving.md)

    python benchmarks/serve_soak.py --bundle bundles/demo/current --data data/sample/test.jsonl \
        --out benchmarks/results/soak-latest.json

1. Latency at concurrency 1 (one call per request), fresh; then after 200 requests at concurrency 16; then after a
   64-wide burst; then after 20 idle seconds. A server that recovers shows the same p50 each time.
2. A soak of --requests requests (default 20,000) on 8 connections: half unauthenticated GETs to random paths (a
   scanner, or a client with broken ids), half authenticated GETs of random call ids and of /api/model, with a real
   /score every 100th. Measured: the API worker's RSS, the size and series count of /metrics, p50 before and after.

Everything goes to 127.0.0.1 only; the server is started here and stopped with all its workers at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import secrets
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import psutil

from callqa.serving.process import api_worker, start_serve, stop_tree
from callqa.serving.store import KeyStore


class Client:
    """One keep-alive connection (one per thread)."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, path: str, body: bytes | None = None, key: str | None = None) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"} if body is not None else {}
        if key:
            headers["authorization"] = f"Bearer {key}"
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def score_bodies(data: Path) -> list[bytes]:
    lines = [line for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.dumps({"calls": [json.loads(line)]}, ensure_ascii=False).encode() for line in lines]


def p50_at_concurrency_1(port: int, key: str, bodies: list[bytes], n: int = 30) -> float:
    client, times = Client(port), []
    for i in range(n):
        started = time.perf_counter()
        status, _ = client.request("POST", "/score", bodies[i % len(bodies)], key)
        assert status == 200, status
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 1)


def thread_client(port: int):
    """A function returning this thread's own Client (a connection is not safe to share between threads)."""
    local = threading.local()

    def client() -> Client:
        if not hasattr(local, "client"):
            local.client = Client(port)
        return local.client

    return client


def load(port: int, key: str, bodies: list[bytes], requests: int, concurrency: int) -> None:
    client = thread_client(port)

    def one(i: int) -> int:
        return client().request("POST", "/score", bodies[i % len(bodies)], key)[0]

    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(one, range(requests)))
    assert all(s == 200 for s in statuses), {s: statuses.count(s) for s in set(statuses)}


def metrics(port: int, key: str) -> dict:
    status, body = Client(port).request("GET", "/metrics", key=key)
    assert status == 200, status
    series = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
    return {"bytes": len(body), "series": len(series)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path(f"benchmarks/results/soak-{date.today()}.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="callqa-soak-"))
    database = f"sqlite:///{tmp}/callqa.db"
    store = KeyStore(database)
    scorer, reviewer, scraper = (store.create(role, role)[0] for role in ("scorer", "reviewer", "metrics"))
    server, port = start_serve(args.bundle, tmp / "server.log", "--db", database)
    bodies = score_bodies(args.data)
    result: dict = {"date": str(date.today()), "cpu": platform.processor() or platform.machine(),
                    "cores": psutil.cpu_count(), "bundle": args.bundle, "calls": len(bodies)}
    try:
        load(port, scorer, bodies, 10, 1)  # warm-up
        recovery = {"fresh": p50_at_concurrency_1(port, scorer, bodies)}
        load(port, scorer, bodies, 200, 16)
        recovery["after 200 requests at concurrency 16"] = p50_at_concurrency_1(port, scorer, bodies)
        load(port, scorer, bodies, 64, 64)
        recovery["after a 64-wide burst"] = p50_at_concurrency_1(port, scorer, bodies)
        time.sleep(20)
        recovery["after 20 s idle"] = p50_at_concurrency_1(port, scorer, bodies)
        result["p50_ms_at_concurrency_1"] = recovery
        print("p50 at concurrency 1 (ms):", recovery, flush=True)

        worker = api_worker(server)
        before = {"rss_mb": round(worker.memory_info().rss / 2**20, 1), "metrics": metrics(port, scraper)}
        own_client = thread_client(port)

        def one(i: int) -> int:
            client = own_client()
            if i % 2 == 0:
                return client.request("GET", f"/api/reviews/calls/{secrets.token_hex(8)}")[0]
            if i % 100 == 1:
                return client.request("POST", "/score", bodies[i % len(bodies)], scorer)[0]
            if i % 4 == 1:
                return client.request("GET", "/api/model", key=reviewer)[0]
            return client.request("GET", f"/api/reviews/calls/{secrets.token_hex(8)}", key=reviewer)[0]

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(args.requests)))
        seconds = time.perf_counter() - started
        after = {"rss_mb": round(worker.memory_info().rss / 2**20, 1), "metrics": metrics(port, scraper)}
        result["soak"] = {
            "requests": args.requests, "seconds": round(seconds, 1), "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
            "before": before, "after": after,
            "rss_growth_kb_per_request": round(1024 * (after["rss_mb"] - before["rss_mb"]) / args.requests, 2),
            "p50_ms_at_concurrency_1_after": p50_at_concurrency_1(port, scorer, bodies),
        }
        print("soak:", json.dumps(result["soak"]), flush=True)
    finally:
        stop_tree(server)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
