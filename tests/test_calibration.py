"""校准 (calibration sessions): a lead picks calls and reviewers, each labels blind, the lead closes it and everyone
sees votes, consensus, deviations and Krippendorff's α — checked against the krippendorff package and counts here."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from callqa.jsonl import load_calls
from callqa.schema import load_schema
from callqa.serving.consensus import calibrate
from callqa.serving.store import Calibrations, LabelsRequest, Reviewer, ReviewStore, SessionRequest
from callqa.serving.store.errors import Conflict, Mismatch, NotFound

from conftest import SAMPLE, score_randomly

LEAD = Reviewer("key-lead", "Lead")


@pytest.fixture
def sessions(tmp_path):
    schema = load_schema("callcenter")
    calls = [c.model_copy(update={"labels": {}}) for c in load_calls(SAMPLE)[:6]]
    store = ReviewStore(f"sqlite:///{tmp_path / 'reviews.db'}")
    store.add_scored(calls, score_randomly(calls, seed=1), "callqa-scorer:test", schema)
    return Calibrations(store.engine, schema), calls, schema


def test_reviewers_label_blind_and_the_close_shows_consensus_deviation_and_alpha(sessions):
    cal, calls, schema = sessions
    created = cal.create(LEAD, SessionRequest(title="三月校准", calls=[c.call_id for c in calls[:4]],
                                              reviewers=["key-a", "key-b", "key-c"]))
    assert created.calls == 4 and created.reviewers == ["key-a", "key-b", "key-c"] and created.closed_at is None
    # Blind: a member sees the transcript and their own labels only; an outsider sees no session.
    blind = cal.calls(created.id, "key-a", lead=False)
    assert [b.call_id for b in blind] == sorted(c.call_id for c in calls[:4]) and all(b.mine == {} for b in blind)
    assert "scores" not in blind[0].model_dump() and blind[0].turns
    with pytest.raises(NotFound):
        cal.calls(created.id, "key-z", lead=False)
    votes = {"key-a": [5, 4, 2, 3], "key-b": [5, 3, 2, 3], "key-c": [4, 4, 1, 3]}
    for reviewer, levels in votes.items():
        for call, level in zip(sorted(c.call_id for c in calls[:4]), levels):
            cal.label(created.id, call, reviewer, LabelsRequest(labels={"attitude": str(level), "resolution": "resolved"}))
    with pytest.raises(Mismatch, match="labels.topics"):
        cal.label(created.id, calls[0].call_id, "key-a", LabelsRequest(labels={"topics": "billing"}))
    with pytest.raises(Mismatch, match="'9' is not a class"):
        cal.label(created.id, calls[0].call_id, "key-a", LabelsRequest(labels={"attitude": "9"}))
    with pytest.raises(Conflict, match="still open"):
        cal.closed_results(created.id, "key-a", lead=False)

    closed = cal.close(created.id, LEAD)
    expected = krippendorff.alpha(reliability_data=np.array(list(votes.values()), dtype=float) - 1,
                                  level_of_measurement="ordinal")
    assert closed.alpha["attitude"] == pytest.approx(expected, abs=1e-4)
    assert closed.alpha["resolution"] is None  # everyone said resolved: α undefined, not 1 or 0
    attitude = next(r for r in cal.closed_results(created.id, "key-b", lead=False) if r.head == "attitude")
    first = attitude.calls[0]
    assert first.votes == {"5": 2, "4": 1} and first.consensus == "5" and first.spread == pytest.approx(1 / 3, abs=1e-4)
    assert attitude.calls[1].consensus == "4"  # 4, 3, 4
    # key-c: |4−5|, |4−4|, |1−2|, |3−3| levels off a 5-level scale, averaged
    c = next(d for d in attitude.reviewers if d.reviewer == "key-c")
    assert c.labels == 4 and c.deviation == pytest.approx((1 + 0 + 1 + 0) / 4 / 4, abs=1e-4)
    with pytest.raises(Conflict, match="closed"):
        cal.label(created.id, calls[0].call_id, "key-a", LabelsRequest(labels={"attitude": "1"}))
    assert [s.id for s in cal.sessions("key-a", lead=False)] == [created.id]
    assert cal.sessions("key-z", lead=False) == []


def test_a_tie_on_a_scale_takes_the_median_level_and_alpha_needs_two_reviewers():
    head = load_schema("callcenter")["attitude"]
    tied = calibrate(head, {"c1": {"a": "1", "b": "5", "c": "3", "d": "4"}, "c2": {"a": "2", "b": "2"}})
    assert tied.calls[0].consensus == "3"  # levels 1, 3, 4, 5: the lower median
    alone = calibrate(head, {"c1": {"a": "1"}, "c2": {"a": "3"}})
    assert alone.alpha is None


@pytest.mark.skipif(not __import__("servers").CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_a_lead_runs_a_session_reviewers_label_blind_in_chromium_and_see_alpha_after_it_closes(tiny_bundle, tmp_path):
    import json
    import re

    from playwright.sync_api import expect
    from servers import logged_in, serve, stop

    server = serve(tiny_bundle, tmp_path)
    try:
        calls = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:3]]
        assert server.post("/score", {"calls": calls, "store": True}, key="scorer")[0] == 200
        server.keys["lead"], _ = server.store.create("lead", "主管")
        ids = {who: json.loads(server.get("/api/me", key=who)[1])["id"] for who in ("anna", "bo")}
        session = {"title": "三月校准", "calls": [c["call_id"] for c in calls], "reviewers": list(ids.values())}
        assert server.post("/api/calibration", session, key="anna")[0] == 403  # reviewers do not create sessions
        status, made = server.post("/api/calibration", session, key="lead")
        assert status == 201 and made["calls"] == 3
        sid = made["id"]
        status, blind = server.get(f"/api/calibration/{sid}/calls", key="bo")
        assert status == 200 and "scores" not in blind.decode() and "scorecard" not in blind.decode()  # blind
        assert server.get(f"/api/calibration/{sid}/results", key="bo")[0] == 409  # results wait for the close
        assert server.get(f"/api/calibration/{sid}/calls", key="scorer")[0] == 403
        bo = {c["call_id"]: lvl for c, lvl in zip(calls, ("5", "4", "2"))}
        for call_id, level in bo.items():
            assert server.post(f"/api/calibration/{sid}/calls/{call_id}", {"labels": {"attitude": level}}, key="bo")[0] == 200
        anna = {c["call_id"]: lvl for c, lvl in zip(calls, ("5", "3", "2"))}
        with logged_in(server, "anna", "/review/calibration.html") as page:
            page.locator(f"#sessions li[data-session-id='{sid}']").click()
            for call_id, level in anna.items():
                box = page.locator(f"article[data-call-id='{call_id}']")
                expect(box.locator("li").first).to_be_visible()  # the transcript, and no model score beside it
                box.locator("select[data-head='attitude']").select_option(level)
                box.get_by_role("button", name="保存").click()
                expect(page.get_by_test_id("status")).to_have_text(f"已保存 {call_id}")
            expect(page.get_by_test_id("close")).to_be_hidden()  # a reviewer cannot close it
        with logged_in(server, "lead", "/review/calibration.html") as page:
            page.locator(f"#sessions li[data-session-id='{sid}']").click()
            page.get_by_test_id("close").click()
            expect(page.get_by_test_id("status")).to_have_text("校准已结束")
            expected = krippendorff.alpha(reliability_data=np.array([[int(anna[c]) for c in anna], [int(bo[c]) for c in anna]],
                                                                    dtype=float), level_of_measurement="ordinal")
            expect(page.get_by_test_id("results")).to_contain_text("服务态度：Krippendorff's α")
            shown = re.search(r"服务态度：Krippendorff's α (-?\d\.\d{3})（有序）", page.get_by_test_id("results").text_content())
            assert shown and float(shown[1]) == pytest.approx(expected, abs=6e-4)
        status, raw = server.get(f"/api/calibration/{sid}/results", key="bo")
        heads = {h["head"]: h for h in json.loads(raw)["heads"]}
        assert status == 200 and heads["attitude"]["alpha"] == pytest.approx(expected, abs=1e-4)
    finally:
        stop(server.process)


def test_closed_sessions_show_in_the_report_and_export_as_vote_labels(sessions, tmp_path):
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from callqa.calls import Votes
    from callqa.cli import app
    from callqa.serving.report import ReportBuilder

    cal, calls, schema = sessions
    made = cal.create(LEAD, SessionRequest(title="四月校准", calls=[calls[0].call_id, calls[1].call_id],
                                           reviewers=["key-a", "key-b", "key-c"]))
    for reviewer, levels in {"key-a": ("4", "2"), "key-b": ("4", "3"), "key-c": ("5", "3")}.items():
        for call, level in zip(sorted([calls[0].call_id, calls[1].call_id]), levels):
            cal.label(made.id, call, reviewer, LabelsRequest(labels={"attitude": level}))
    closed = cal.close(made.id, LEAD)
    store = ReviewStore(str(cal.engine.url))
    month = closed.closed_at.astimezone(UTC).strftime("%Y-%m")  # closed now: this month's report lists it with α
    table = ReportBuilder(store, schema, tz="UTC").build(month).table("calibration")
    assert table.rows[0][0] == "四月校准" and table.rows[0][2:4] == [2, 3]
    assert table.rows[0][4] == pytest.approx(closed.alpha["attitude"], abs=6e-4)
    out = tmp_path / "calibration.jsonl"
    done = CliRunner().invoke(app, ["reviews", "export-calibration", "--out", str(out), "--db", str(cal.engine.url)])
    assert done.exit_code == 0 and "2 calibrated calls" in done.output, done.output
    exported = {c.call_id: c for c in load_calls(out, schema)}
    first = exported[sorted([calls[0].call_id, calls[1].call_id])[0]]
    assert first.labels["attitude"] == Votes(votes={"4": 2, "5": 1}) and first.meta["source"] == "calibration"
    assert datetime.now(UTC) >= closed.closed_at
