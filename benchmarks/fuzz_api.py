"""Fuzz a served bundle's /score and review API: no 5xx, and every refusal names the field (docs/serving.md).

    python benchmarks/fuzz_api.py --bundle bundles/demo/current --bodies 5000 \
        --out benchmarks/results/fuzz-latest.json

Bodies come from the served OpenAPI spec (hypothesis-jsonschema) and from targeted strategies: non-finite and huge
numbers (written as NaN, Infinity, 1e999), dates at the calendar's ends, control and bidi characters in ids and text,
values of a coercible wrong type ("true", "0", 1.5 for an integer), unknown fields. Requests go to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import urllib.parse
from collections import Counter
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from serve_soak import Client

from callqa.serving.process import start_serve, stop_tree
from callqa.serving.store import KeyStore

NASTY_TEXT = st.sampled_from(["\r\nFORGED", "\u202eevil", "\x00", "a/b", "\u200b", "\ufeff", "../..", "%0A", " ", "",
                              "好" * 5000, "13700003333"])
NASTY_NUMBER = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 400, "-0", "1e-400"])
NASTY_DATE = st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-02-30T00:00:00",
                              "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "yesterday", ""])
COERCIBLE = st.sampled_from(['"true"', '"0"', "1.5", "true", '"yes"', "[]", "{}", "null", '"2"'])


def turn(text=st.text(max_size=30), number=st.just("1.0")):
    return st.builds(lambda t, s, e: f'{{"speaker": "agent", "text": {json.dumps(t)}, "start": {s}, "end": {e}}}',
                     text, number, number)


def call_json(call_id=st.text(min_size=1, max_size=20), text=st.text(min_size=1, max_size=30),
              number=st.just("1.0"), started=st.just("2026-03-02T09:15:00+08:00")):
    return st.builds(lambda i, ts, d: f'{{"call_id": {json.dumps(i)}, "started_at": {json.dumps(d)}, '
                                      f'"turns": [{", ".join(ts)}]}}',
                     call_id, st.lists(turn(text, number), min_size=1, max_size=3), started)


def targeted_score_bodies():
    ok = call_json()
    return st.one_of(
        call_json(number=NASTY_NUMBER).map(lambda c: f'{{"calls": [{c}]}}'),
        call_json(call_id=NASTY_TEXT).map(lambda c: f'{{"calls": [{c}]}}'),
        call_json(text=NASTY_TEXT).map(lambda c: f'{{"calls": [{c}]}}'),
        call_json(started=NASTY_DATE).map(lambda c: f'{{"calls": [{c}]}}'),
        st.tuples(ok, COERCIBLE, st.sampled_from(["store", "redact"])).map(
            lambda t: f'{{"calls": [{t[0]}], "{t[2]}": {t[1]}}}'),
        ok.map(lambda c: f'{{"calls": [{c}], "redcat": true}}'),
        st.tuples(ok, NASTY_NUMBER).map(lambda t: f'{{"calls": [{t[0][:-1]}, "meta": {{"x": {t[1]}}}}}]}}'),
    )


def targeted_review_bodies():
    label = st.one_of(COERCIBLE, NASTY_NUMBER, st.text(max_size=10).map(json.dumps))
    revision = st.one_of(COERCIBLE, NASTY_NUMBER, st.sampled_from(["9223372036854775808", "-1", "0", "2147483648"]))
    return st.builds(lambda r, h, v: f'{{"revision": {r}, "labels": {{{json.dumps(h)}: {v}}}}}', revision,
                     st.sampled_from(["attitude", "resolution", "topics", "nope", ""]), label)


def names_a_field(status: int, body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    field, sep, _ = error.partition(": ")
    # A path that starts with a field of the body (a later segment may be a client's own key, spaces and all).
    return bool(sep and re.match(r"[a-z][a-z_-]*(\[|\.|$)", field))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--bodies", type=int, default=5000, help="bodies in all, split over the four targets")
    parser.add_argument("--out", type=Path, default=Path(f"benchmarks/results/fuzz-{date.today()}.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="callqa-fuzz-"))
    database = f"sqlite:///{tmp}/callqa.db"
    store = KeyStore(database)
    scorer, reviewer = (store.create(role, role)[0] for role in ("scorer", "reviewer"))
    server, port = start_serve(args.bundle, tmp / "server.log", "--db", database)
    counts: dict[str, Counter] = {}
    unnamed: list[dict] = []
    try:
        client = Client(port)
        spec = json.loads(client.request("GET", "/docs.json")[1])
        components = {"components": spec["components"]}
        score_schema = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        review_path = "/api/reviews/calls/{call_id}/reviews"
        review_schema = spec["paths"][review_path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        seed = next(line for line in Path("datasets/sample/calls.jsonl").read_text(encoding="utf-8").splitlines())
        call_id = json.loads(seed)["call_id"]
        assert client.request("POST", "/score", f'{{"calls": [{seed}], "store": true}}'.encode(), scorer)[0] == 200

        def send(target: str, method: str, path: str, body: str | None, key: str) -> None:
            status, answer = client.request(method, path, body.encode() if body is not None else None, key)
            counts.setdefault(target, Counter())[status] += 1
            if status in (400, 413, 415) and not names_a_field(status, answer) and len(unnamed) < 20:
                unnamed.append({"target": target, "status": status, "answer": answer[:300].decode(errors="replace")})

        per_target = args.bodies // 4
        runs = {
            "score: from the spec": (from_schema({**score_schema, **components}).map(json.dumps),
                                     lambda b: send("score: from the spec", "POST", "/score", b, scorer)),
            "score: targeted": (targeted_score_bodies(),
                                lambda b: send("score: targeted", "POST", "/score", b, scorer)),
            "reviews: spec + targeted": (
                st.one_of(from_schema({**review_schema, **components}).map(json.dumps), targeted_review_bodies()),
                lambda b: send("reviews: spec + targeted", "POST", f"/api/reviews/calls/{call_id}/reviews", b,
                               reviewer)),
            "reviews: odd call ids in the path": (
                NASTY_TEXT | st.text(min_size=1, max_size=30),
                lambda i: send("reviews: odd call ids in the path", "GET",
                               "/api/reviews/calls/" + urllib.parse.quote(i, safe=""), None, reviewer)),
        }
        for name, (strategy, action) in runs.items():
            settings(max_examples=per_target, deadline=None, database=None, phases=[Phase.generate],
                     suppress_health_check=list(HealthCheck))(given(strategy)(action))()
            print(f"{name}: {dict(sorted(counts[name].items()))}", flush=True)
    finally:
        stop_tree(server)
    total = sum(sum(c.values()) for c in counts.values())
    errors_5xx = sum(n for c in counts.values() for s, n in c.items() if s >= 500)
    result = {"date": str(date.today()), "bundle": args.bundle, "requests": total, "5xx": errors_5xx,
              "4xx_without_a_field": len(unnamed), "examples_without_a_field": unnamed,
              "statuses": {k: dict(sorted(v.items())) for k, v in counts.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{total} requests: {errors_5xx} answered 5xx, {len(unnamed)} refusals named no field; {args.out}")
    sys.exit(1 if errors_5xx or unnamed else 0)


if __name__ == "__main__":
    main()
