"""双评 (double review): a call the model says reviewers would split on goes to a second reviewer, blind to the first;
when the two differ a lead adjudicates, and the adjudication is the score of record on every screen."""

from __future__ import annotations

import json

import pytest

from callqa.jsonl import load_calls
from callqa.schema import load_schema
from callqa.serving.store import AwaitsLead, CallFilter, QueuePolicy, Reviewer, ReviewStore, ScorecardReview
from callqa.serving.store.double import reviews_differ

from conftest import SAMPLE, score_randomly

ANNA, BO, LEAD = Reviewer("key-anna", "安娜"), Reviewer("key-bo", "博"), Reviewer("key-lead", "主管")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    schema = load_schema("callcenter")
    calls = [c.model_copy(update={"labels": {}}) for c in load_calls(SAMPLE)[:12]]
    url = f"sqlite:///{tmp_path / 'reviews.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres").new_database()
    store = ReviewStore(url, QueuePolicy(double_review=0.0, sample_rate=0))
    store.add_scored(calls, score_randomly(calls, seed=3), "callqa-scorer:test", schema)
    return store, calls, schema


def _queue_ids(store, reviewer):
    return [i.call_id for i in store.queue(reviewer.id, limit=100)[0]]


def test_a_flagged_call_goes_to_a_second_reviewer_blind_and_a_lead_adjudicates_when_they_differ(store):
    store, calls, schema = store
    call = calls[0].call_id
    first = store.view(call, ANNA.id)
    assert first.double is None and not first.blind
    store.submit(call, ANNA, first.revision, {"attitude": "2"}, schema, "first")
    # Pending: off Anna's queue, first in Bo's, and Bo opens it blind: no labels, history or verdicts of Anna's.
    assert call not in _queue_ids(store, ANNA)
    assert _queue_ids(store, BO)[0] == call
    queued = next(i for i in store.queue(BO.id)[0] if i.call_id == call)
    assert queued.double == "pending" and queued.total is None  # the first reviewer's total is not shown either
    seen = store.view(call, BO.id)
    assert seen.blind and seen.double == "pending" and seen.labels == {} and seen.history == [] and seen.verdicts is None
    assert seen.record == seen.scores.scorecard
    assert store.view(call, ANNA.id).labels == {"attitude": "2"}  # the first reviewer sees their own
    store.submit(call, BO, seen.revision, {"attitude": "4"}, schema, "second")
    view = store.view(call, BO.id)
    assert view.double == "differs" and not view.blind and len(view.history) == 2
    assert call not in _queue_ids(store, LEAD)  # adjudication is found by its filter, not in the queue
    assert [i.call_id for i in store.search(CallFilter(double="differs"), LEAD.id)[0]] == [call]
    with pytest.raises(AwaitsLead, match="仲裁"):
        store.submit(call, ANNA, view.revision, {"attitude": "3"}, schema)
    ruling = store.submit(call, LEAD, view.revision, {"attitude": "3"}, schema, "仲裁", lead=True)
    assert ruling.source == "adjudication"
    after = store.view(call, ANNA.id)
    assert after.double == "adjudicated" and after.labels["attitude"] == "3"
    exported = next(r for r in store.reviewed() if r.call.call_id == call)
    assert exported.labels["attitude"] == "3" and exported.source == "adjudication"


def test_two_reviewers_who_agree_close_the_double_review_without_a_lead(store):
    store, calls, schema = store
    call = calls[1].call_id
    store.submit(call, ANNA, 0, {"attitude": "4", "resolution": "resolved"}, schema)
    store.submit(call, BO, 1, {"resolution": "resolved", "attitude": "4"}, schema)
    assert store.view(call).double == "agreed"
    assert call not in _queue_ids(store, LEAD)


def test_a_second_reviewer_cannot_find_the_first_reviewers_total_by_searching_on_scores(store):
    store, calls, schema = store
    call = calls[2].call_id
    store.submit(call, ANNA, 0, {"attitude": "2"}, schema)
    record = store.view(call, ANNA.id).record  # the first reviewer's card of record

    def found(**filters) -> bool:
        return call in [i.call_id for i in store.search(CallFilter(**filters), BO.id, limit=100)[0]]

    # Listed (without a total), but a score filter matches what a row shows, not the hidden first review.
    assert found() and not found(score_min=record.total, score_max=record.total)
    assert not found(red_line=record.red_line) and not found(red_line=not record.red_line)
    store.submit(call, BO, 1, {"attitude": "2"}, schema)  # they agree: the total of record is shown and matched
    assert store.view(call).double == "agreed"
    assert found(score_min=record.total, score_max=record.total) and found(red_line=record.red_line)


def test_calls_under_the_threshold_and_appeals_are_reviewed_once(tmp_path):
    schema = load_schema("callcenter")
    calls = [c.model_copy(update={"labels": {}}) for c in load_calls(SAMPLE)[:4]]
    store = ReviewStore(f"sqlite:///{tmp_path / 'r.db'}", QueuePolicy(double_review=1.0, sample_rate=0))
    store.add_scored(calls, score_randomly(calls, seed=3), "m", schema)
    spreads = {i.call_id: i.entropy for i in store.queue("x")[0]}
    assert all(s < 1.0 for s in spreads.values())
    store.submit(calls[0].call_id, ANNA, 0, {"attitude": "3"}, schema)
    assert store.view(calls[0].call_id).double is None
    assert calls[0].call_id not in _queue_ids(store, BO)


def test_two_reviews_differ_on_a_head_or_on_the_card_they_leave_and_not_on_the_order_of_topics(store):
    store, calls, schema = store
    call = calls[2].call_id
    view = store.view(call)
    card = view.scores.scorecard
    hit = next(((i.id, d) for s in card.sections for i in s.items for d in i.deductions if d.points > 0), None)
    predicted = view.scores.predicted()
    store.submit(call, ANNA, 0, {"topics": ["billing", "network"]}, schema)
    store.submit(call, BO, 1, {"topics": ["network", "billing"]}, schema)
    a, b = store.view(call).history[1], store.view(call).history[0]
    assert not reviews_differ(a, b, predicted, card, schema)
    if hit is not None:  # marking a deduction 误判 changes the card the review leaves
        wrong = b.model_copy(update={"scorecard": ScorecardReview.model_validate(
            {"false_hits": [{"item": hit[0], "rule": hit[1].rule, "turn": hit[1].turn, "start": hit[1].start}]})})
        assert reviews_differ(a, wrong, predicted, card, schema)
    assert hit is not None or not any(d.points for s in card.sections for i in s.items for d in i.deductions)
    other = b.model_copy(update={"changes": [*b.changes, *[c.model_copy(update={"head": "attitude", "value": "1"})
                                                            for c in b.changes[:1]]]})
    assert reviews_differ(a, other, predicted, card, schema) == (str(predicted["attitude"]) != "1")
    assert json.loads(store.view(call).model_dump_json())["double"] == "agreed"


@pytest.mark.skipif(not __import__("servers").CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_a_second_reviewer_scores_blind_in_chromium_and_a_lead_adjudicates_what_every_reader_then_shows(tiny_bundle,
                                                                                                        tmp_path):
    from playwright.sync_api import expect
    from servers import logged_in, reviewing, serve, stop
    from typer.testing import CliRunner

    from callqa.cli import app

    server = serve(tiny_bundle, tmp_path, review={"sample_rate": 0.0, "lease_minutes": 5, "double_review": 0.0})
    try:
        calls = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[40:42]]
        assert server.post("/score", {"calls": calls, "store": True}, key="scorer")[0] == 200
        server.keys["lead"], _ = server.store.create("lead", "主管")
        call_id = calls[0]["call_id"]
        assert server.post(f"/api/reviews/calls/{call_id}/reviews", {"revision": 0, "labels": {"attitude": 2},
                                                                      "comment": "安娜的意见"}, key="anna")[0] == 201
        status, raw = server.get("/api/reviews/queue", key="anna")
        assert call_id not in [i["call_id"] for i in json.loads(raw)["items"]]
        with reviewing(server, "bo", call_id) as page:
            expect(page.locator("#banner")).to_contain_text("双评：请独立评分")
            expect(page.get_by_test_id("history")).to_contain_text("尚无复核")  # Anna's review is not shown
            assert "安娜的意见" not in page.content()
            page.locator(".head[data-head=attitude] button[data-value='4']").click()
            page.get_by_test_id("submit").click()
            expect(page.get_by_test_id("save-status")).to_contain_text("已保存")
            expect(page.locator("#banner")).to_contain_text("待组长仲裁")
            expect(page.get_by_test_id("history")).to_contain_text("安娜的意见")  # shown once both are in
        again = json.loads(server.get(f"/api/reviews/calls/{call_id}", key="anna")[1])
        refused = server.post(f"/api/reviews/calls/{call_id}/reviews", {"revision": again["revision"],
                                                                          "labels": {"attitude": 3}}, key="anna")
        assert refused[0] == 403 and "仲裁" in refused[1]["error"]
        with logged_in(server, "lead") as page:
            page.get_by_test_id("filters").locator("summary").click()
            page.get_by_test_id("filter-double").select_option("differs")
            page.get_by_test_id("filter-apply").click()
            expect(page.locator("#queue li")).to_have_count(1)
            expect(page.locator("#queue li").first).to_contain_text("待仲裁")
            page.locator(f"#queue li[data-call-id='{call_id}']").click()
            page.locator(".head[data-head=attitude] button[data-value='3']").click()
            page.get_by_test_id("submit").click()
            expect(page.get_by_test_id("save-status")).to_contain_text("已保存")
            expect(page.get_by_test_id("history")).to_contain_text("仲裁")
        # Every reader shows the adjudication: the call's view, the search, and the export for training.
        view = json.loads(server.get(f"/api/reviews/calls/{call_id}", key="bo")[1])
        assert view["double"] == "adjudicated" and view["labels"]["attitude"] == "3"
        found = json.loads(server.get("/api/reviews/queue?double=adjudicated", key="anna")[1])["items"]
        assert [i["call_id"] for i in found] == [call_id] and found[0]["total"] == view["record"]["total"]
        out = tmp_path / "reviews.jsonl"
        result = CliRunner().invoke(app, ["reviews", "export", "-o", str(out), "--db", server.database])
        assert result.exit_code == 0, result.output
        line = next(json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if call_id in x)
        assert line["labels"]["attitude"] == 3 and line["meta"]["source"] == "adjudication"
    finally:
        stop(server.process)


def test_the_report_counts_double_reviews_by_state_as_the_store_holds_them(store):
    from collections import Counter
    from datetime import UTC

    from callqa.serving.report import ReportBuilder

    store, calls, schema = store
    month_of = {c.call_id: f"{c.started_at.astimezone(UTC):%Y-%m}" for c in calls}
    month = Counter(month_of.values()).most_common(1)[0][0]
    pending, agreed, differs = [c.call_id for c in calls if month_of[c.call_id] == month][:3]
    store.submit(pending, ANNA, 0, {"attitude": "2"}, schema)
    for call, second in ((agreed, "2"), (differs, "5")):
        store.submit(call, ANNA, 0, {"attitude": "2"}, schema)
        store.submit(call, BO, 1, {"attitude": second}, schema)
    report = ReportBuilder(store, tz="UTC").build(month)
    table = next(t for t in report.tables if t.name == "double_review")
    states = {c.call_id: store.view(c.call_id).double for c in calls if month_of[c.call_id] == month}
    expected = [sum(s is not None for s in states.values()), *(list(states.values()).count(s) for s in
                                                              ("pending", "agreed", "differs", "adjudicated"))]
    assert table.rows[0][:5] == expected and expected[1:4] == [1, 1, 1]
    assert table.rows[0][5] == 50.0
