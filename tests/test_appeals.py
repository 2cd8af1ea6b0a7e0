"""Appeals (申诉): the flow in the store, agent keys confined to their own calls on every route, and the whole loop in
Chromium — an agent files, a lead overturns, the export holds the correction."""

from __future__ import annotations

import json
import re

import pytest
from servers import CHROMIUM, logged_in, serve, stop
from typer.testing import CliRunner

from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.schema import load_schema
from callqa.serving.store import (
    AppealRequest,
    Appeals,
    AppealTarget,
    Conflict,
    NotFound,
    Reviewer,
    ReviewError,
    ReviewStore,
    RulingInput,
    RulingRequest,
)

from conftest import SAMPLE, score_randomly

AGENT, LEAD = Reviewer("key-agent", "坐席 a-19"), Reviewer("key-lead", "主管")


@pytest.fixture
def flow(tmp_path):
    schema = load_schema("callcenter")
    calls = load_calls(SAMPLE)[:30]
    scored = score_randomly(calls, seed=5)
    store = ReviewStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.add_scored(calls, scored, "callqa-scorer:test", schema)
    return store, Appeals(store, schema), calls, {s.call_id: s.scorecard for s in scored}, schema


def a_deduction(calls, cards):
    """(call, item, deduction) of the first call whose card deducts points for a rule hit."""
    for call in calls:
        for item in cards[call.call_id].items().values():
            if item.deductions and not item.red_line:
                return call, item, item.deductions[0]
    raise AssertionError("no deduction in the sample")


def test_an_appeal_is_ruled_twice_at_most_and_an_overturn_becomes_the_calls_points(flow):
    store, appeals, calls, cards, schema = flow
    call, item, d = a_deduction(calls, cards)
    target = AppealTarget(item=item.id, rule=d.rule, turn=d.turn, start=d.start)
    other = next(c for c in calls if c.agent_id != call.agent_id)
    with pytest.raises(NotFound):  # another agent's call is no call at all
        appeals.file(other.call_id, AGENT, call.agent_id, AppealRequest(reason="x", entries=[target]))
    with pytest.raises(NotFound):
        appeals.my_call(other.call_id, call.agent_id)
    assert {c.call_id for c in appeals.my_calls(call.agent_id)} == {c.call_id for c in calls if c.agent_id == call.agent_id}
    with pytest.raises(ReviewError, match="no such deduction"):
        appeals.file(call.call_id, AGENT, call.agent_id,
                     AppealRequest(reason="x", entries=[target.model_copy(update={"turn": 999})]))

    first = appeals.file(call.call_id, AGENT, call.agent_id, AppealRequest(reason="客户说的是“不清楚”，不是我", entries=[target]))
    assert first.entries[0].round == 1 and first.entries[0].points == d.points and first.open
    with pytest.raises(Conflict, match="waiting for a ruling"):
        appeals.file(call.call_id, AGENT, call.agent_id, AppealRequest(reason="again", entries=[target]))
    assert [a.id for a in appeals.list()] == [first.id]
    ruled = appeals.rule(first.id, LEAD, RulingRequest(rulings=[RulingInput(entry=first.entries[0].id, decision="upheld",
                                                                            comment="录音确认")]))
    assert ruled.entries[0].ruling.decision == "upheld" and not ruled.entries[0].ruling.final and appeals.list() == []
    with pytest.raises(Conflict, match="ruled on already"):
        appeals.rule(first.id, LEAD, RulingRequest(rulings=[RulingInput(entry=first.entries[0].id, decision="overturned")]))
    assert store.view(call.call_id).revision == 0  # an upheld deduction changes nothing

    second = appeals.file(call.call_id, AGENT, call.agent_id, AppealRequest(reason="请复议", entries=[target]))
    assert second.entries[0].round == 2
    ruled = appeals.rule(second.id, LEAD, RulingRequest(rulings=[RulingInput(entry=second.entries[0].id,
                                                                             decision="overturned", comment="改判")]))
    assert ruled.entries[0].ruling.final  # the second ruling is final (终审)
    with pytest.raises(ReviewError, match="already overturned"):
        appeals.file(call.call_id, AGENT, call.agent_id, AppealRequest(reason="x", entries=[target]))

    # The overturn is a review by the lead: the deduction is marked 误判 and its points come back.
    view = store.view(call.call_id)
    assert view.revision == 1 and view.history[0].source == "appeal" and view.history[0].reviewer == LEAD.id
    reviewed = next(store.reviewed())
    assert reviewed.source == "appeal" and reviewed.scorecard_review.marks_wrong(item.id, d)
    history = appeals.my_call(call.call_id, call.agent_id).appeals
    assert [e.ruling.decision for a in history for e in a.entries] == ["upheld", "overturned"]


def test_a_closed_window_a_final_ruling_and_whole_items(flow):
    store, _, calls, cards, schema = flow
    call, item, d = a_deduction(calls, cards)
    closed = Appeals(store, schema, window_days=1e-9)
    with pytest.raises(ReviewError, match="appeal window of call .* closed"):
        closed.file(call.call_id, AGENT, call.agent_id,
                    AppealRequest(reason="x", entries=[AppealTarget(item=item.id, rule=d.rule, turn=d.turn, start=d.start)]))
    appeals = Appeals(store, schema)
    whole = next(i for i in cards[call.call_id].items().values() if i.points < i.max_points)
    filed = appeals.file(call.call_id, AGENT, call.agent_id, AppealRequest(reason="整项", entries=[AppealTarget(item=whole.id)]))
    assert filed.entries[0].points == whole.max_points - whole.points
    appeals.rule(filed.id, LEAD, RulingRequest(rulings=[RulingInput(entry=filed.entries[0].id, decision="upheld")],
                                               final=True))
    with pytest.raises(ReviewError, match="终审"):
        appeals.file(call.call_id, AGENT, call.agent_id, AppealRequest(reason="x", entries=[AppealTarget(item=whole.id)]))
    full = next(i for i in cards[call.call_id].items().values() if i.points == i.max_points)
    with pytest.raises(ReviewError, match="lost no points"):
        appeals.file(call.call_id, AGENT, call.agent_id, AppealRequest(reason="x", entries=[AppealTarget(item=full.id)]))


@pytest.fixture(scope="module")
def appeal_server(tiny_bundle, tmp_path_factory):
    directory = tmp_path_factory.mktemp("appeal-server")
    server = serve(tiny_bundle, directory)
    calls = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:40]]
    status, body = server.post("/score", {"calls": calls, "store": True}, key="scorer")
    assert status == 200, body
    scored = {r["call_id"]: r for r in body["results"]}
    # The agent with the most deductions, and another agent.
    deductions = {}
    for c in calls:
        card = scored[c["call_id"]]["scorecard"]
        n = sum(len(i["deductions"]) for s in card["sections"] for i in s["items"] if not i["red_line"])
        deductions[c["agent_id"]] = deductions.get(c["agent_id"], 0) + n
    agent = max(deductions, key=deductions.get)
    server.agent = agent
    server.calls, server.scored = calls, scored
    for who, role, agent_id in (("agent", "agent", agent), ("other_agent", "agent", next(a for a in deductions if a != agent)),
                                ("lead", "lead", None), ("admin", "admin", None)):
        server.keys[who], _ = server.store.create(role, who, agent_id)
    yield server
    stop(server.process)


def test_an_agent_key_reads_nothing_but_its_own_calls_on_every_route(appeal_server):
    server = appeal_server
    mine = {c["call_id"] for c in server.calls if c["agent_id"] == server.agent}
    others = [c["call_id"] for c in server.calls if c["agent_id"] != server.agent]
    other_call = others[0]
    # An appeal by the other agent, so appeal routes have something to leak.
    other_card = server.scored[other_call]["scorecard"]
    item = next(i for s in other_card["sections"] for i in s["items"] if i["points"] < i["max_points"])
    status, _ = server.post(f"/api/appeals/mine/calls/{other_call}", {"reason": "x", "entries": [{"item": item["id"]}]},
                            key="other_agent")
    assert status == 201

    status, answer = server.post(f"/api/appeals/mine/calls/{other_call}", {"reason": "x", "entries": [{"item": item["id"]}]},
                                 key="agent")
    assert status == 404 and other_call not in json.dumps(answer)  # a valid appeal of another agent's call
    status, raw = server.get("/api/appeals/mine/calls", key="agent")
    listed = {c["call_id"] for c in json.loads(raw)["calls"]}
    assert status == 200 and listed == mine

    spec = json.loads(server.get("/docs.json")[1])
    checked = 0
    for path, methods in spec["paths"].items():
        for method in methods:
            url = path.replace("{call_id}", other_call).replace("{appeal_id}", "1")
            if method == "get":
                status, raw = server.get(url, key="agent")
            else:
                status, raw = server.post(url, {"reason": "x", "entries": [{"item": item["id"]}], "calls": [],
                                                "rulings": [{"entry": 1, "decision": "overturned"}], "revision": 0,
                                                "labels": {"attitude": 1}}, key="agent")
                raw = json.dumps(raw)
            text = raw.decode() if isinstance(raw, bytes) else raw
            leaked = [c for c in others if re.search(rf"\b{re.escape(c)}\b", text)]
            assert not leaked, (method, path, status)
            if path in ("/api/model", "/api/me", "/healthz", "/readyz", "/docs.json", "/api/appeals/mine/calls",
                        "/api/appeals/mine/coaching"):
                continue
            assert status in (400, 403, 404), (method, path, status)  # refused: by role, ownership or body
            checked += 1
    assert checked >= 15  # every review, scoring, appeal and metrics route was tried


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(scripts/install-test-deps.sh installs it)")
def test_an_agent_appeals_a_lead_overturns_and_the_export_holds_the_correction(appeal_server, tmp_path):
    from playwright.sync_api import expect

    server = appeal_server
    call_id = next(c["call_id"] for c in server.calls if c["agent_id"] == server.agent and any(
        i["deductions"] and not i["red_line"] for s in server.scored[c["call_id"]]["scorecard"]["sections"] for i in s["items"]))
    card = server.scored[call_id]["scorecard"]
    item, d = next((i, i["deductions"][0]) for s in card["sections"] for i in s["items"] if i["deductions"] and not i["red_line"])
    with logged_in(server, "agent", "/review/appeals.html") as agent:
        agent.locator(f"#my-calls li[data-call-id='{call_id}']").click()
        expect(agent.get_by_test_id("my-call-id")).to_have_text(call_id)
        agent.get_by_test_id("my-card").locator("label", has_text=d["title"]).first.locator("input").check()
        agent.get_by_test_id("reason").fill("客户并未投诉，这句是确认")
        agent.get_by_test_id("file").click()
        expect(agent.get_by_test_id("status")).to_contain_text("已提交")
        expect(agent.get_by_test_id("my-appeals")).to_contain_text("待裁决")
    with logged_in(server, "lead", "/review/appeals.html") as lead:
        appeal = lead.locator("#open-appeals > li", has_text=call_id)
        expect(appeal).to_have_count(1)
        appeal.locator("select").first.select_option("overturned")
        appeal.locator(".ruling input").first.fill("录音核实，改判")
        appeal.get_by_role("button", name="提交裁决").click()
        expect(lead.get_by_test_id("status")).to_contain_text("已裁决")
    with logged_in(server, "agent", "/review/appeals.html") as agent:
        agent.locator(f"#my-calls li[data-call-id='{call_id}']").click()
        expect(agent.get_by_test_id("my-appeals")).to_contain_text("改判")

    out = tmp_path / "reviews.jsonl"
    result = CliRunner().invoke(app, ["reviews", "export", "-o", str(out), "--db", server.database])
    assert result.exit_code == 0, result.output
    exported = {c.call_id: c for c in load_calls(out)}
    meta = exported[call_id].meta
    assert meta["source"] == "appeal" and meta["scorecard"]["points"][item["id"]] == min(item["max_points"],
                                                                                         item["points"] + d["points"])
    assert {"item": item["id"], "rule": d["rule"], "turn": d["turn"], "start": d["start"]} in meta["scorecard"]["false_hits"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_every_page_opens_for_its_role_without_a_refused_request(appeal_server):
    """No 403 in a lead's console from asking the agent's routes first, no favicon 404 on any page."""
    from playwright.sync_api import expect, sync_playwright
    from servers import CHROMIUM_FLAGS

    server = appeal_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        for who, path, shown in (("lead", "/review/appeals.html", "#lead-view"),
                                 ("agent", "/review/appeals.html", "#agent-view"), ("lead", "/review/", "#app")):
            page = browser.new_page()
            refused = []
            page.on("response", lambda r, refused=refused: r.status >= 400 and refused.append((r.status, r.url)))
            page.goto(f"{server.base}{path}")
            page.get_by_test_id("key").fill(server.keys[who])
            page.get_by_test_id("login").click()
            expect(page.locator(shown)).to_be_visible()
            page.wait_for_load_state("networkidle")
            assert refused == [], (who, path, refused)
            page.close()
        browser.close()


def test_reports_count_appeals_and_overturns_per_item_and_rule(flow):
    from callqa.serving.report import ReportBuilder

    store, appeals, calls, cards, schema = flow
    call, item, d = a_deduction(calls, cards)
    target = AppealTarget(item=item.id, rule=d.rule, turn=d.turn, start=d.start)
    filed = appeals.file(call.call_id, AGENT, call.agent_id, AppealRequest(reason="x", entries=[target]))
    appeals.rule(filed.id, LEAD, RulingRequest(rulings=[RulingInput(entry=filed.entries[0].id, decision="overturned")]))
    month = call.started_at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    report = ReportBuilder(store, schema).build(month)
    assert report.table("appeals").rows == [[item.title, d.title, 1, 1, 1, 100.0]]  # rules by their Chinese names
    agents = {r[0]: r for r in report.table("agents").rows}
    assert agents[call.agent_id][6] == 1  # the overturn is a review: the call counts with the lead's points


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_a_reviewer_sends_a_reviewed_call_to_its_agent_who_reads_it_and_the_report_counts_it(appeal_server):
    """辅导与表扬: only a reviewed call is sent, only to its own agent; the agent marks it 已阅 in Chromium; the
    report counts it per agent, and lists the card's 表扬 calls."""
    from playwright.sync_api import expect

    from callqa.serving.report import ReportBuilder
    from callqa.serving.store import ReviewStore

    server = appeal_server
    mine = [c["call_id"] for c in server.calls if c["agent_id"] == server.agent]
    call_id = mine[-1]
    note = {"comment": "开场白很标准，继续保持", "praise": True}
    assert server.post(f"/api/reviews/calls/{call_id}/coaching", note, key="anna")[0] == 409  # not reviewed yet
    status, _ = server.post(f"/api/reviews/calls/{call_id}/reviews", {"revision": 0, "labels": {"attitude": "5"}},
                            key="anna")
    assert status == 201
    with logged_in(server, "anna", f"/review/?call={call_id}") as page:  # the reviewer sends it from the review page
        expect(page.get_by_test_id("call-id")).to_have_text(call_id)
        page.get_by_test_id("coach").locator("summary").click()
        page.get_by_test_id("coach-comment").fill(note["comment"])
        page.get_by_test_id("coach-praise").check()
        page.get_by_test_id("coach-send").click()
        expect(page.get_by_test_id("save-status")).to_have_text("已发送给坐席（表扬）")
    status, raw = server.get("/api/appeals/mine/coaching", key="agent")
    sent = next(n for n in json.loads(raw)["notes"] if n["call_id"] == call_id)
    assert sent["agent_id"] == server.agent and sent["acknowledged_at"] is None and sent["praise"]
    assert server.post(f"/api/reviews/calls/{call_id}/coaching", note, key="agent")[0] == 403  # agents do not send
    status, raw = server.get("/api/appeals/mine/coaching", key="other_agent")
    assert status == 200 and json.loads(raw)["notes"] == []  # another agent's notes are not theirs
    assert server.post(f"/api/appeals/mine/coaching/{sent['id']}", {}, key="other_agent")[0] == 404

    with logged_in(server, "agent", "/review/appeals.html") as agent:
        item = agent.locator(f"#my-coaching li[data-note-id='{sent['id']}']")
        expect(item).to_contain_text("表扬")
        expect(item).to_contain_text("开场白很标准，继续保持")
        item.get_by_test_id("acknowledge").click()
        expect(agent.get_by_test_id("status")).to_contain_text("已标为已阅")
        expect(agent.locator(f"#my-coaching li[data-note-id='{sent['id']}'] button")).to_have_text("已阅")
    status, raw = server.get("/api/appeals/mine/coaching", key="agent")
    assert json.loads(raw)["notes"][0]["acknowledged_at"] is not None

    started = next(c["started_at"] for c in server.calls if c["call_id"] == call_id)
    period = started[:7]
    store = ReviewStore(server.database)
    report = ReportBuilder(store, None).build(period, agent=server.agent)
    counts = {row[0]: row[2:] for row in report.table("coaching").rows}
    assert counts[server.agent] == [1, 1, 100.0, 1]
    praise = report.table("praise")
    totals = [row[4] for row in praise.rows]
    assert totals == sorted(totals, reverse=True) and all(t >= 95 for t in totals)
