"""The review loop served for real: /score with store, the review API, the web UI in headless Chromium, the
JSONL export, a 409 for stale saves, and a review acknowledged just before `kill -9` of the server.
"""

from __future__ import annotations

import json
import re
import signal

import numpy as np
import pytest
from servers import CHROMIUM, CHROMIUM_FLAGS, logged_in, reviewing, serve, stop
from typer.testing import CliRunner

from callqa.cli import app
from callqa.schema import load_schema
from callqa.serving.process import stop_tree
from callqa.serving.store import QueuePolicy, ReviewStore

from conftest import SAMPLE


def sample_calls(n: int, start: int = 200) -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[start : start + n]]


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    server = serve(tiny_bundle, tmp_path_factory.mktemp("review-server"),
                   review={"sample_rate": 0.0, "lease_minutes": 5, "order": "least_confident"})
    status, body = server.post("/score", {"calls": sample_calls(6), "store": True}, key="scorer")
    assert status == 200 and body["stored"] == 6, body
    yield server
    stop(server.process)


def test_score_with_store_fills_the_queue_and_a_repeat_adds_nothing(server):
    status, body = server.post("/score", {"calls": sample_calls(2), "store": True}, key="scorer")
    assert status == 200 and body["stored"] == 0
    status, raw = server.get("/api/reviews/queue", key="anna")
    queue = json.loads(raw)
    assert status == 200 and queue["waiting"] >= 6
    ids = {i["call_id"] for i in queue["items"]}
    assert {c["call_id"] for c in sample_calls(6)} <= ids
    entropies = [i["entropy"] for i in queue["items"]]
    assert entropies == sorted(entropies, reverse=True)  # least confident first


def test_review_routes_need_a_reviewer_key(server):
    assert server.get("/api/reviews/queue")[0] == 401
    assert server.get("/api/reviews/queue", key="scorer")[0] == 403
    assert server.post("/score", {"calls": sample_calls(1)}, key="anna")[0] == 403


@pytest.mark.parametrize(("body", "status", "mentions"), [
    ({"revision": 0, "labels": {"attitude": "9"}}, 400, "labels.attitude"),
    ({"revision": 0, "labels": {"attitude": 9}}, 400, "labels.attitude"),  # a number, as the call format writes it
    ({"revision": -1, "labels": {"attitude": "3"}}, 400, "revision"),
    ({"labels": {"attitude": "3"}}, 400, "revision"),
    ({"revision": 0, "labels": {"attitude": "3"}, "extra": 1}, 400, "extra"),
    (b"{not json", 400, "JSON"),
])
def test_bad_review_bodies_get_400_naming_the_field(server, body, status, mentions):
    call_id = sample_calls(1, start=204)[0]["call_id"]
    got, answer = server.post(f"/api/reviews/calls/{call_id}/reviews", body, key="anna")
    assert got == status and mentions in json.dumps(answer, ensure_ascii=False), answer
    assert server.post("/api/reviews/calls/no-such-call/reviews", {"revision": 0, "labels": {"attitude": "3"}},
                       key="anna")[0] == 404


def test_two_reviewers_saving_from_stale_views_get_a_409_not_an_overwrite(server):
    call_id = sample_calls(1, start=205)[0]["call_id"]
    _, raw = server.get(f"/api/reviews/calls/{call_id}", key="bo")  # Bo reads the call (no lease)
    bo_view = json.loads(raw)
    status, anna_view = server.post(f"/api/reviews/calls/{call_id}/open", {}, key="anna")
    assert status == 200 and anna_view["revision"] == bo_view["revision"] == 0
    # While Anna holds the lease, Bo cannot save; once she has saved, his view is stale.
    assert server.post(f"/api/reviews/calls/{call_id}/reviews", {"revision": 0, "labels": {"attitude": "1"}},
                       key="bo")[0] == 423
    status, saved = server.post(f"/api/reviews/calls/{call_id}/reviews",
                                {"revision": 0, "labels": {"attitude": "4"}, "comment": "ok"}, key="anna")
    assert status == 201 and saved["revision"] == 1 and saved["reviewer"] == server.key_ids["anna"]
    status, answer = server.post(f"/api/reviews/calls/{call_id}/reviews", {"revision": 0, "labels": {"attitude": "1"}},
                                 key="bo")
    assert status == 409 and "Anna" in answer["error"], answer
    view = json.loads(server.get(f"/api/reviews/calls/{call_id}", key="bo")[1])
    assert view["labels"] == {"attitude": "4"} and len(view["history"]) == 1


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(scripts/install-test-deps.sh installs it)")
def test_a_reviewer_corrects_a_call_in_the_browser_and_it_is_stored_and_exported(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    store = ReviewStore(server.database, QueuePolicy(sample_rate=0.0, order="least_confident"))  # as the server's
    first = store.queue(server.key_ids["anna"], limit=1)[0][0].call_id
    before = store.view(first)
    schema = load_schema("callcenter")
    new_attitude = next(c for c in schema["attitude"].class_ids if c != before.scores.scores["attitude"].level)
    predicted_topics = set(before.scores.scores["topics"].predicted)
    flipped = "billing"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"{server.base}/review/")
        page.get_by_test_id("key").fill("cqa_wrong")
        page.get_by_test_id("login").click()
        expect(page.locator("#login-error")).to_contain_text("密钥无效")
        page.get_by_test_id("key").fill(server.keys["anna"])
        page.get_by_test_id("login").click()
        expect(page.locator("#who")).to_contain_text("Anna")
        page.locator("#queue li").first.click()
        expect(page.get_by_test_id("call-id")).to_have_text(first)
        expect(page.locator("#transcript li")).to_have_count(len(before.call.turns))
        expect(page.locator(".head[data-head=attitude] h4")).to_contain_text("服务态度")
        # attitude is the active head: its level's number key sets it; the topic chip is clicked
        page.keyboard.press(str(schema["attitude"].class_ids.index(new_attitude) + 1))
        expect(page.locator(f".head[data-head=attitude] button[data-value='{new_attitude}']")).to_have_class(
            re.compile(r"\bchosen\b"))
        page.locator(f".head[data-head=topics] button[data-value='{flipped}']").click()
        page.get_by_test_id("comment").fill("开场白不规范")
        page.get_by_test_id("submit").click()
        expect(page.get_by_test_id("save-status")).to_contain_text("已保存")
        expect(page.get_by_test_id("history")).to_contain_text("服务态度")
        page.keyboard.press("n")  # the next call is another one
        expect(page.get_by_test_id("call-id")).not_to_have_text(first)
        browser.close()

    after = store.view(first)
    want_topics = sorted(predicted_topics ^ {flipped})
    assert after.revision == 1
    assert after.labels["attitude"] == new_attitude and after.labels["topics"] == want_topics
    review = after.history[0]
    assert review.reviewer == server.key_ids["anna"] and review.comment == "开场白不规范"
    changed = {c.head: (c.previous, c.value) for c in review.changes}
    assert changed["attitude"] == (before.scores.scores["attitude"].level, new_attitude)

    out = tmp_path / "reviews.jsonl"
    result = CliRunner().invoke(app, ["reviews", "export", "-o", str(out), "--db", server.database])
    assert result.exit_code == 0, result.output
    exported = {json.loads(line)["call_id"]: json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()}
    line = exported[first]
    assert line["labels"]["attitude"] == int(new_attitude) and line["labels"]["topics"] == want_topics
    assert line["meta"]["source"] == "review" and line["meta"]["reviewer"] == server.key_ids["anna"]
    assert CliRunner().invoke(app, ["data", "validate", str(out), "--schema", "callcenter"]).exit_code == 0


def test_a_review_acknowledged_before_kill_9_survives(tiny_bundle, tmp_path):
    server = serve(tiny_bundle, tmp_path)
    try:
        calls = sample_calls(3, start=300)
        assert server.post("/score", {"calls": calls, "store": True}, key="scorer")[1]["stored"] == 3
        status, saved = server.post(f"/api/reviews/calls/{calls[0]['call_id']}/reviews",
                                    {"revision": 0, "labels": {"attitude": "2", "resolution": "unresolved"}}, key="bo")
        assert status == 201
    finally:
        # Right after the acknowledgement, every process of the server at once: no shutdown, no flush.
        stop_tree(server.process, signal.SIGKILL)
    store = ReviewStore(server.database)
    view = store.view(calls[0]["call_id"])
    assert view.revision == 1 and view.labels == {"attitude": "2", "resolution": "unresolved"}
    assert view.history[0].id == saved["id"]
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(scripts/install-test-deps.sh installs it)")
def test_a_reviewer_follows_a_deduction_to_its_span_marks_it_wrong_and_adds_a_missed_one(server):
    from playwright.sync_api import expect

    call = {"call_id": "card-ui-1", "agent_id": "A7", "turns": [
        {"speaker": "agent", "text": "您好，很高兴为您服务，请问有什么可以帮您"},
        {"speaker": "customer", "text": "我想查一下上个月的话费"},
        {"speaker": "agent", "text": "好的，您说是什么问题"},
        {"speaker": "agent", "text": "这个我们也不好说，您自己查吧"},
        {"speaker": "agent", "text": "感谢您的来电，再见"}]}
    status, body = server.post("/score", {"calls": [call], "store": True}, key="scorer")
    assert status == 200, body
    [deduction] = [d for s in body["results"][0]["scorecard"]["sections"] for i in s["items"] for d in i["deductions"]
                   if d["rule"] == "rude_questions"]
    assert (deduction["turn"], deduction["text"]) == (2, "您说是什么问题")
    total = body["results"][0]["scorecard"]["total"]
    shown = f"{total:g} / 100" if total == int(total) else f"{total:.1f} / 100"  # as the page writes points

    with reviewing(server, "bo", "card-ui-1") as page:
        expect(page.get_by_test_id("card-total")).to_have_text(shown)
        item = page.locator(".card-item[data-item=standard_questions]")
        # Clicking the deduction marks exactly its span in its turn.
        item.locator(".deduction[data-rule=rude_questions] .what").click()
        turn = page.locator("#transcript li").nth(2)
        expect(turn).to_have_class(re.compile(r"\bevidence\b"))
        expect(turn.locator("mark")).to_have_text("您说是什么问题")
        # 误判 gives the points back.
        item.locator(".deduction[data-rule=rude_questions] button").click()
        expect(item.locator(".deduction[data-rule=rude_questions] button")).to_have_attribute("aria-pressed", "true")
        expect(page.get_by_test_id("card-total")).not_to_have_text(shown)
        # 漏扣: select 不好说 in turn 3 and add it to the 答复准确 item.
        page.evaluate("""() => {
            const text = document.querySelectorAll('#transcript li')[3].querySelector('.text').firstChild;
            const range = document.createRange();
            range.setStart(text, 5); range.setEnd(text, 8);
            const selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
        }""")
        page.locator(".card-item[data-item=answers] button", has_text="漏扣").click()
        expect(page.locator(".card-item[data-item=answers] .missed")).to_contain_text("不好说")
        # The turn that explains the attitude label is marked as its reason (attitude is the active head).
        page.locator("#transcript li").nth(2).hover()
        page.locator("#transcript li").nth(2).locator("button.reason").click()
        expect(page.locator("#transcript li").nth(2).locator("button.reason")).to_have_attribute("aria-pressed", "true")
        page.get_by_test_id("submit").click()
        expect(page.get_by_test_id("save-status")).to_contain_text("已保存")
        expect(page.get_by_test_id("history")).to_contain_text("误判 1 处")

    store = ReviewStore(server.database, QueuePolicy(sample_rate=0.0))
    verdict = store.view("card-ui-1").history[0].scorecard
    assert [(h.item, h.rule, h.turn, h.start) for h in verdict.false_hits] == [
        ("standard_questions", "rude_questions", 2, deduction["start"])]
    [missed] = verdict.missed
    assert (missed.item, missed.turn, call["turns"][3]["text"][missed.start:missed.end]) == ("answers", 3, "不好说")
    assert store.view("card-ui-1").history[0].reasons == {"attitude": [2]}


def test_evidence_is_computed_by_the_served_model_cached_and_shown_on_the_turns(server):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from callqa.serving.store.calls import EvidenceRow

    # A call of its own, so no other test has reviewed it out of the queue.
    call = {**sample_calls(1, start=250)[0], "call_id": "evidence-ui-1"}
    status, body = server.post("/score", {"calls": [call], "store": True}, key="scorer")
    assert status == 200 and body["stored"] == 1, body
    call_id = call["call_id"]
    status, raw = server.get(f"/api/reviews/calls/{call_id}/evidence", key="anna")
    assert status == 200, raw
    evidence = json.loads(raw)
    turns = len(call["turns"])
    assert evidence["model"] == "callqa-scorer:tiny" and evidence["call_id"] == call_id
    assert {h: len(e["turns"]) for h, e in evidence["heads"].items()} == dict.fromkeys(evidence["heads"], turns)
    assert evidence["heads"]["attitude"]["measure"] == "expected"
    assert json.loads(server.get(f"/api/reviews/calls/{call_id}/evidence", key="anna")[1]) == evidence
    store = ReviewStore(server.database, QueuePolicy(sample_rate=0.0))
    with Session(store.engine) as session:
        assert len(session.scalars(select(EvidenceRow).where(EvidenceRow.call_id == call_id)).all()) == 1
    assert server.get("/api/reviews/calls/no-such-call/evidence", key="anna")[0] == 404
    assert server.get(f"/api/reviews/calls/{call_id}/evidence", key="scorer")[0] == 403

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium for the shading (scripts/install-test-deps.sh)")
    from playwright.sync_api import expect

    weights = evidence["heads"]["attitude"]["turns"]
    with reviewing(server, "bo", call_id) as page:
        page.get_by_test_id("evidence").click()
        turns_shown = page.locator("#transcript li")
        expect(turns_shown.first).to_have_attribute("data-weight", f"{weights[0]:.4f}")
        strongest = int(np.argmax(weights))
        if weights[strongest] > 0:
            expect(turns_shown.nth(strongest)).to_have_class(re.compile(r"\bmost-up\b"))
        assert "服务态度" in (turns_shown.nth(strongest).get_attribute("title") or "")
        page.get_by_test_id("evidence").click()  # off again: no shading left
        expect(turns_shown.first).not_to_have_attribute("data-weight", re.compile(".*"))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(scripts/install-test-deps.sh installs it)")
def test_a_reports_link_opens_its_call_after_login(server):
    """`callqa report` links the worst calls as …/review/?call=ID."""
    from playwright.sync_api import expect

    call_id = sample_calls(6)[4]["call_id"]
    with logged_in(server, "bo", f"/review/?call={call_id}") as page:
        expect(page.get_by_test_id("call-id")).to_have_text(call_id)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(scripts/install-test-deps.sh installs it)")
def test_a_reviewer_finds_their_own_reviews_with_the_queue_filters(server):
    from playwright.sync_api import expect

    status, _ = server.post("/score", {"calls": sample_calls(3, start=300), "store": True}, key="scorer")
    assert status == 200
    call_id = sample_calls(1, start=301)[0]["call_id"]
    status, view = server.get(f"/api/reviews/calls/{call_id}", key="bo")
    revision = json.loads(view)["revision"]
    assert server.post(f"/api/reviews/calls/{call_id}/reviews", {"revision": revision, "labels": {"attitude": 2}},
                       key="bo")[0] == 201
    assert server.get("/api/reviews/queue?reviewed=maybe", key="bo")[0] == 400
    status, raw = server.get("/api/reviews/queue?mine=true", key="bo")
    mine = [i["call_id"] for i in json.loads(raw)["items"]]
    status, raw = server.get("/api/reviews/queue?mine=true", key="anna")
    assert call_id in mine and call_id not in [i["call_id"] for i in json.loads(raw)["items"]]
    with logged_in(server, "bo") as page:
        expect(page.locator("#queue li").first).to_be_visible()
        assert page.locator(f"#queue li[data-call-id='{call_id}']").count() == 0  # reviewed: not in the work queue
        page.get_by_test_id("filters").locator("summary").click()
        page.get_by_test_id("filter-mine").check()
        page.get_by_test_id("filter-apply").click()
        expect(page.locator("#queue li")).to_have_count(len(mine))  # bo's reviews, this test's and earlier ones
        item = page.locator(f"#queue li[data-call-id='{call_id}']")
        expect(item).to_contain_text("已复核")
        expect(page.locator("#policy")).to_contain_text(f"筛选结果 {len(mine)} 通")
        item.click()
        expect(page.get_by_test_id("call-id")).to_have_text(call_id)


def test_the_review_flow_over_http_on_postgresql(tiny_bundle, postgres, tmp_path):
    """The served review loop on a throwaway PostgreSQL: store, two reviewers racing (one 409), export."""
    server = serve(tiny_bundle, tmp_path, database=postgres.new_database())
    try:
        status, body = server.post("/score", {"calls": sample_calls(4, start=120), "store": True}, key="scorer")
        assert status == 200 and body["stored"] == 4
        call_id = sample_calls(1, start=121)[0]["call_id"]
        seen = [json.loads(server.get(f"/api/reviews/calls/{call_id}", key=who)[1])["revision"] for who in ("anna", "bo")]
        assert seen == [0, 0]
        first = server.post(f"/api/reviews/calls/{call_id}/reviews", {"revision": 0, "labels": {"attitude": 2}}, key="anna")
        second = server.post(f"/api/reviews/calls/{call_id}/reviews", {"revision": 0, "labels": {"attitude": 5}}, key="bo")
        assert first[0] == 201 and second[0] == 409 and "Anna" in second[1]["error"]
        out = tmp_path / "reviews.jsonl"
        result = CliRunner().invoke(app, ["reviews", "export", "-o", str(out), "--db", server.database])
        assert result.exit_code == 0, result.output
        exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [(c["call_id"], c["labels"]["attitude"]) for c in exported] == [(call_id, 2)]
    finally:
        stop(server.process)


def test_a_reopened_call_shows_the_score_of_record_in_chinese(server):
    """A confirmed 禁语 keeps the call at 0 and 红线 through a head-only review; the card the page shows is the
    server's score of record (its live preview too), and a reopened call shows the reviewer's verdicts."""
    from playwright.sync_api import expect

    call = {"call_id": "record-ui-1", "agent_id": "A8", "channel": "phone", "turns": [
        {"speaker": "agent", "text": "您好，很高兴为您服务，请问有什么可以帮您"},
        {"speaker": "customer", "text": "网一直断，我都打了三次了"},
        {"speaker": "agent", "text": "你急什么，我这边帮您查"},
        {"speaker": "agent", "text": "感谢您的来电，再见"}]}
    status, body = server.post("/score", {"calls": [call], "store": True}, key="scorer")
    assert status == 200 and body["results"][0]["scorecard"]["red_line"], body
    status, _ = server.post("/api/reviews/calls/record-ui-1/reviews", {"revision": 0, "labels": {"attitude": "2"}},
                            key="anna")
    assert status == 201
    store = ReviewStore(server.database, QueuePolicy(sample_rate=0.0))
    assert store.view("record-ui-1").record.red_line and store.view("record-ui-1").record.total == 0

    def fmt(x: float) -> str:
        return f"{x:g} / 100" if x == int(x) else f"{x:.1f} / 100"

    # Reviewed calls leave the queue; a report's link opens them.
    with logged_in(server, "bo", "/review/?call=record-ui-1") as page:
        expect(page.get_by_test_id("call-id")).to_have_text("record-ui-1")
        expect(page.locator("#who")).to_contain_text("复核员")
        expect(page.locator("#call-meta")).to_contain_text("电话")
        expect(page.locator("#call-meta")).not_to_contain_text("phone")
        expect(page.get_by_test_id("card-total")).to_have_text("0 / 100")
        expect(page.locator("#card-redline")).to_be_visible()
        page.locator(".card-item[data-item=forbidden] .deduction button").click()  # 误判: the 禁语 was not one
        expect(page.locator("#card-redline")).to_be_hidden()
        expect(page.get_by_test_id("card-total")).not_to_have_text("0 / 100")
        page.get_by_test_id("submit").click()
        expect(page.get_by_test_id("save-status")).to_contain_text("已保存")
    record = store.view("record-ui-1").record
    assert not record.red_line and record.total > 0

    with logged_in(server, "anna", "/review/?call=record-ui-1") as page:  # reopened: the reviewer's card
        expect(page.get_by_test_id("call-id")).to_have_text("record-ui-1")
        expect(page.get_by_test_id("card-total")).to_have_text(fmt(record.total))
        expect(page.locator(".card-item[data-item=forbidden] .deduction button")).to_have_attribute("aria-pressed",
                                                                                                      "true")
        page.get_by_test_id("evidence").click()
        expect(page.locator("#transcript li").first).to_have_attribute("title", re.compile("期望得分"))
