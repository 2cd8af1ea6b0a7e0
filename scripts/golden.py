"""Golden outputs of the serving side on fixed data, for a reshape that must not change behaviour.

    python scripts/golden.py --bundle bundles/demo/current --out /tmp/golden-before
    ... reshape ...
    python scripts/golden.py --bundle bundles/demo/current --out /tmp/golden-after
    diff -r /tmp/golden-before /tmp/golden-after

A real `callqa serve` of the bundle on a fresh SQLite store: /score on the demo call, the sample's first 40 calls
scored into the store, six reviews (head labels, 误判, 漏扣, hand-set points, reasons), an agent's appeal and a lead's
ruling, then what each reader shows: the review page of each reviewed call, the agent's list and detail, the
appeal list, the dashboard JSON, the month report's CSV tables and `callqa reviews export`. Moments that are "now"
(review and appeal times, leases, elapsed times) are blanked so two runs of the same code compare equal."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import serve, stop  # noqa: E402

SAMPLE = ROOT / "datasets" / "sample" / "calls.jsonl"
NOW_KEYS = {"reviewed_at", "created_at", "leased_until", "filed_at", "ruled_at", "at", "elapsed_ms", "generated_at",
            "latency_ms", "updated_at", "last_reviewed", "lease_until", "expires", "generated", "appealable_until"}
KEY_ID = re.compile(r"key-[0-9a-f]{12}")
NOW = re.compile(r"20\d\d-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def blank(value, today: str):
    """``value`` with every moment of today's run blanked (the data's own dates stay)."""
    if isinstance(value, dict):
        if "charts" in value:  # SVG with random ids; the series they draw are in trend and items
            value = {**value, "charts": len(value["charts"])}
        return {k: "<now>" if k in NOW_KEYS and v is not None else blank(v, today) for k, v in value.items()}
    if isinstance(value, list):
        return [blank(v, today) for v in value]
    if isinstance(value, str):
        value = KEY_ID.sub("<key id>", value)  # random per run
        return NOW.sub("<now>", value) if today[:8] in value else value
    return value


def write(out: Path, name: str, value, today: str) -> None:
    (out / name).write_text(json.dumps(blank(value, today), ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                            encoding="utf-8")


def review_bodies(views: list[dict]) -> list[dict]:
    """Six reviews of different kinds, chosen from what each call's view shows."""
    bodies = []
    for n, view in enumerate(views):
        card = view["scores"]["scorecard"]
        items = [i for s in card["sections"] for i in s["items"]]
        hits = [(i, d) for i in items for d in i["deductions"] if d.get("rule") != "missed"]
        body = {"revision": view["revision"], "labels": {"attitude": str(1 + n % 5)}, "comment": f"golden {n}"}
        if n == 1 and hits:
            i, d = hits[0]
            body["scorecard"] = {"false_hits": [{"item": i["id"], "rule": d["rule"], "turn": d["turn"],
                                                 "start": d["start"]}]}
        elif n == 2:
            full = next(i for i in items if i["points"] == i["max_points"] and i["max_points"] > 0)
            body["scorecard"] = {"missed": [{"item": full["id"], "turn": 0}]}
        elif n == 3:
            some = next(i for i in items if i["max_points"] > 1)
            body["scorecard"] = {"points": {some["id"]: some["max_points"] - 1}}
        elif n == 4:
            body["reasons"] = {"attitude": [0, 1]}
            body["labels"]["resolution"] = view["scores"]["heads"]["resolution"]["label"] \
                if "heads" in view["scores"] else "resolved"
        bodies.append(body)
    return bodies


def run(bundle: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    today = __import__("datetime").datetime.now(__import__("datetime").UTC).strftime("%Y-%m-%d")
    with tempfile.TemporaryDirectory(prefix="callqa-golden-") as tmp:
        server = serve(bundle, Path(tmp))
        try:
            demo = json.loads((ROOT / "datasets" / "examples" / "demo-call.json").read_text(encoding="utf-8"))
            status, body = server.post("/score", {"calls": [demo]})
            write(out, "score.json", {"status": status, "body": body}, today)
            calls = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:40]]
            status, body = server.post("/score", {"calls": calls, "store": True})
            assert status == 200, body
            write(out, "score-stored.json", body, today)
            agents: dict[str, int] = {}
            for r, c in zip(body["results"], calls):
                card = r["scorecard"]
                agents[c["agent_id"]] = agents.get(c["agent_id"], 0) + sum(
                    len(i["deductions"]) for s in card["sections"] for i in s["items"])
            agent = max(sorted(agents), key=agents.get)
            server.keys["agent"], _ = server.store.create("agent", "agent", agent)
            server.keys["lead"], _ = server.store.create("lead", "lead", None)
            mine = [c["call_id"] for c in calls if c["agent_id"] == agent]
            others = [c["call_id"] for c in calls if c["agent_id"] != agent]
            reviewed = mine[:2] + others[:4]
            views = []
            for call_id in reviewed:
                status, view = server.post(f"/api/reviews/calls/{call_id}/open", {}, key="anna")
                assert status == 200, view
                views.append(view)
            for call_id, review in zip(reviewed, review_bodies(views)):
                status, answer = server.post(f"/api/reviews/calls/{call_id}/reviews", review, key="anna")
                assert status == 201, (call_id, answer)
                status, preview = server.post(f"/api/reviews/calls/{call_id}/record", review.get("scorecard", {}),
                                              key="anna")
                write(out, f"preview-{call_id}.json", {"status": status, "body": preview}, today)
            for call_id in reviewed:
                write(out, f"view-{call_id}.json", json.loads(server.get(f"/api/reviews/calls/{call_id}", "anna")[1]),
                      today)
            status, detail = server.get(f"/api/appeals/mine/calls/{mine[0]}", "agent")
            detail = json.loads(detail)
            items = [i for s in detail["scorecard"]["sections"] for i in s["items"] if i["points"] < i["max_points"]]
            status, filed = server.post(f"/api/appeals/mine/calls/{mine[0]}",
                                        {"reason": "golden", "entries": [{"item": items[0]["id"]}]}, key="agent")
            assert status in (200, 201), filed
            write(out, "appeal-filed.json", filed, today)
            status, ruled = server.post(f"/api/appeals/{filed['id']}/rulings", {"rulings": [
                {"entry": filed["entries"][0]["id"], "decision": "overturned"}], "final": True}, key="lead")
            write(out, "appeal-ruled.json", {"status": status, "body": ruled}, today)
            write(out, "agent-calls.json", json.loads(server.get("/api/appeals/mine/calls", "agent")[1]), today)
            write(out, "agent-call.json", json.loads(server.get(f"/api/appeals/mine/calls/{mine[0]}", "agent")[1]),
                  today)
            write(out, "appeals.json", json.loads(server.get("/api/appeals?open=false", "lead")[1]), today)
            write(out, "queue.json", json.loads(server.get("/api/reviews/queue", "bo")[1]), today)
            period = next(c for c in calls if c["call_id"] == mine[0])["started_at"][:7]
            write(out, "dashboard.json", json.loads(server.get(f"/api/reviews/report?period={period}", "anna")[1]),
                  today)
        finally:
            stop(server.process)
        cli = [str(Path(sys.executable).parent / "callqa")]
        subprocess.run([*cli, "report", "--period", period, "--db", server.database, "-o", f"{tmp}/report"],
                       check=True, capture_output=True)
        for csv in sorted(Path(tmp, "report").rglob("*.csv")):
            text = blank(csv.read_text(encoding="utf-8-sig"), today)
            (out / f"report-{csv.name}").write_text(text, encoding="utf-8")
        subprocess.run([*cli, "reviews", "export", "--db", server.database, "-o", f"{tmp}/export.jsonl"],
                       check=True, capture_output=True)
        lines = [json.loads(line) for line in Path(tmp, "export.jsonl").read_text(encoding="utf-8").splitlines()]
        write(out, "export.json", lines, today)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    run(args.bundle, args.out)
