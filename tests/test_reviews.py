"""The review store on a real database: SQLite, and PostgreSQL where a server can run here.

History is append-only, a stale save is a Conflict, leases keep two reviewers off one call, and the queue follows
its policy (uncertainty, lowest score, random sample first, agent quotas).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callqa.calls import Call, Turn
from callqa.pipeline import ScoredCall, head_scores
from callqa.schema import load_schema
from callqa.serving.store import (
    Conflict,
    Leased,
    NotFound,
    QueuePolicy,
    Reviewer,
    ReviewError,
    ReviewStore,
    sample_key,
)
from callqa.serving.store.reviews import CorrectionRow

SCHEMA = load_schema("callcenter")
ANNA, BO = Reviewer("cqa_anna", "Anna"), Reviewer("cqa_bo", "Bo")


def make_call(call_id: str, agent: str | None = "A1") -> Call:
    return Call(call_id=call_id, agent_id=agent, turns=[{"speaker": "agent", "text": "您好，请问有什么可以帮您？", "start": 0.5},
                                                        {"speaker": "customer", "text": "我的话费扣多了。", "start": 3.0}])


def scores_for(call_id: str, attitude: list[float], topics: float = 0.9):
    """Scores with the given attitude distribution; the other heads confident."""
    probs = {"attitude": np.array(attitude), "empathy": np.array([0.0, 0.0, 0.02, 0.08, 0.9]),
             "resolution": np.array([0.02, 0.03, 0.95]),
             "topics": np.array([topics] + [0.01] * 10), "call_type": np.array([0.02, 0.9, 0.04, 0.02, 0.02])}
    return ScoredCall(call_id=call_id, scores=head_scores(SCHEMA, probs), n_tokens=40, truncated=False)


CONFIDENT = [0.0, 0.0, 0.0, 0.02, 0.98]
UNSURE = [0.2, 0.2, 0.2, 0.2, 0.2]
LOW = [0.9, 0.1, 0.0, 0.0, 0.0]


def fill(store: ReviewStore, attitudes: dict[str, list[float]], agent: str | None = "A1") -> None:
    calls = [make_call(i, agent) for i in attitudes]
    store.add_scored(calls, [scores_for(i, a) for i, a in attitudes.items()], "callqa-scorer:v1", SCHEMA)


@pytest.fixture
def store(database_url) -> ReviewStore:
    return ReviewStore(database_url, QueuePolicy(sample_rate=0.0))


def test_a_stored_call_reads_back_with_its_prediction(store):
    fill(store, {"c1": CONFIDENT})
    view = store.view("c1")
    assert view.call.turns[1].text == "我的话费扣多了。" and view.call.labels == {}
    assert view.model == "callqa-scorer:v1" and view.revision == 0 and view.history == [] and view.labels == {}
    assert view.scores.scores["attitude"].level == "5"
    with pytest.raises(NotFound):
        store.view("nope")


def test_scorecards_are_stored_in_queryable_columns_with_each_prediction(store):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from callqa.serving.store.calls import ScorecardItemRow, ScorecardRow

    from conftest import default_card

    card = default_card(SCHEMA)
    rude = make_call("c1").model_copy(update={"turns": [*make_call("c1").turns, Turn(speaker="agent", text="你急什么")]})
    scored = scores_for("c1", CONFIDENT)
    scored.scorecard = card.score(rude, scored)
    assert store.add_scored([rude], [scored], "callqa-scorer:v1", SCHEMA) == 1
    with Session(store.engine) as session:
        row = session.scalars(select(ScorecardRow).where(ScorecardRow.call_id == "c1")).one()
        assert (row.name, row.hash, row.total, row.max_total, row.red_line) == ("default", card.hash, 0.0, 100.0, True)
        items = {i.item: i for i in session.scalars(select(ScorecardItemRow).where(
            ScorecardItemRow.prediction_id == row.prediction_id))}
        assert set(items) == set(scored.scorecard.items())
        assert items["forbidden"].red_line and items["forbidden"].deductions == 1
        assert items["attitude_model"].points == scored.scorecard.items()["attitude_model"].points
    assert store.view("c1").scores.scorecard.red_line is True  # the review view reads it back


def store_graded(store, call_id: str, *agent_lines: str, started_at=None):
    """A call with the given extra agent turns, stored with its default-card scorecard; returns that scorecard."""
    from conftest import default_card

    base = make_call(call_id)
    call = base.model_copy(update={"turns": [*base.turns, *(Turn(speaker="agent", text=t) for t in agent_lines)],
                                   "started_at": started_at})
    scored = scores_for(call_id, CONFIDENT)
    scored.scorecard = default_card(SCHEMA).score(call, scored)
    store.add_scored([call], [scored], "callqa-scorer:v1", SCHEMA)
    return scored.scorecard


def test_the_month_report_and_reviews_agreement_show_each_rules_precision_and_misses_alike(store):
    from datetime import UTC, datetime

    from callqa.serving.agreement import agreement_html, measure_text, scorecard_agreement
    from callqa.serving.report import ReportBuilder
    from callqa.serving.report.context import round_or_none
    from callqa.serving.store import HitRef, MissedDeduction, ScorecardReview

    now = datetime.now(UTC)
    card = store_graded(store, "c-month", "您说是什么问题", "你说什么", started_at=now)
    hit = card.items()["standard_questions"].deductions[0]
    store.submit("c-month", ANNA, 0, {}, SCHEMA, "", ScorecardReview(
        false_hits=[HitRef(item="standard_questions", rule=hit.rule, turn=hit.turn, start=hit.start)],
        missed=[MissedDeduction(item="answers", turn=1, start=0, end=2)]))
    rules = scorecard_agreement(store.reviewed()).rules
    shown = ReportBuilder(store, SCHEMA).build(f"{now:%Y-%m}").table("rules").rows
    assert shown == [[r.title, r.reviewed, r.wrong, round_or_none(r.precision, 3), r.missed, round_or_none(r.recall, 3)]
                     for r in rules]
    # The rule met only through a 漏扣 is shown by its item's (Chinese) title, with its miss and no precision.
    assert ["答复准确、不含糊其辞", 0, 0, None, 1, 0.0] in shown
    page = agreement_html([], "agreement", scorecard_agreement(store.reviewed()))
    for r in rules:
        assert (f"<td>{r.wrong}</td><td>{measure_text(r.precision)}</td><td>{r.missed}</td>"
                f"<td>{measure_text(r.recall)}</td>") in page


def test_a_reviewer_marks_a_deduction_wrong_adds_a_missed_one_and_sets_points(store):
    from callqa.serving.agreement import scorecard_agreement
    from callqa.serving.store import HitRef, MissedDeduction, ScorecardReview

    card = store_graded(store, "c1", "您说是什么问题", "你说什么")
    hits = card.items()["standard_questions"].deductions
    assert [h.text for h in hits] == ["您说是什么问题", "你说什么"]
    verdict = ScorecardReview(false_hits=[HitRef(item="standard_questions", rule=hits[0].rule, turn=hits[0].turn,
                                                 start=hits[0].start)],
                              missed=[MissedDeduction(item="answers", turn=1, start=0, end=2, note="答非所问")],
                              points={"attitude_model": 6})
    record = store.submit("c1", ANNA, 0, {}, SCHEMA, "", verdict)
    assert record.scorecard == verdict
    assert store.view("c1").history[0].scorecard == verdict  # read back from the store, append-only

    report = scorecard_agreement(store.reviewed())
    rules = {r.rule: r for r in report.rules}
    assert (rules["rude_questions"].reviewed, rules["rude_questions"].wrong) == (2, 1)
    assert rules["rude_questions"].precision == 0.5 and rules["rude_questions"].recall == 1.0
    # The 漏扣 on 答复准确 is a miss of its rule (evasive), which found nothing there: no precision, recall 0.
    assert card.items()["answers"].rules == ["evasive"] and not card.items()["answers"].deductions
    assert {r.rule: r.missed for r in report.rules if r.missed} == {"evasive": 1}
    assert (rules["evasive"].precision, rules["evasive"].recall) == (None, 0.0)
    items = {i.item: i for i in report.items}
    assert items["attitude_model"].mae == pytest.approx(10 * (4.98 - 1) / 4 - 6)  # the model 9.95, the reviewer 6
    assert items["standard_questions"].mae == 5.0  # the 误判 hit's 5 points given back
    assert items["opening"].exact == 1.0


@pytest.mark.parametrize("verdict, mentions", [
    ({"false_hits": [{"item": "standard_questions", "rule": "rude_questions", "turn": 0, "start": 0}]},
     "scorecard.false_hits.0: no such deduction"),
    ({"missed": [{"item": "charm", "turn": 0}]}, "scorecard.missed.0.item: no item 'charm'"),
    ({"missed": [{"item": "answers", "turn": 9}]}, "scorecard.missed.0.turn: the call has 3 turns"),
    ({"missed": [{"item": "answers", "turn": 1, "start": 3, "end": 99}]}, "scorecard.missed.0: start and end"),
    ({"points": {"opening": 4}}, "scorecard.points.opening: 4 is more than the item's 3"),
])
def test_a_scorecard_verdict_that_does_not_fit_the_prediction_is_refused_and_nothing_is_saved(store, verdict, mentions):
    from callqa.serving.store import ScorecardReview

    store_graded(store, "c1", "您说是什么问题")
    with pytest.raises(ReviewError, match=mentions.replace("(", r"\(")):
        store.submit("c1", ANNA, 0, {"attitude": "4"}, SCHEMA, "", ScorecardReview.model_validate(verdict))
    view = store.view("c1")
    assert view.revision == 0 and view.history == []


def test_turns_marked_as_the_reason_are_stored_and_exported_as_turn_labels(store, tmp_path, database_url):
    from typer.testing import CliRunner

    from callqa.cli import app

    fill(store, {"c1": CONFIDENT})
    record = store.submit("c1", ANNA, 0, {"attitude": "2"}, SCHEMA, "", None, {"attitude": [1, 0, 1], "topics": []})
    assert record.reasons == {"attitude": [0, 1]}
    assert store.view("c1").history[0].reasons == {"attitude": [0, 1]}
    with pytest.raises(ReviewError, match=r"reasons.attitude: turn 5 is not one of the call's 2 turns"):
        store.submit("c1", BO, 1, {"attitude": "3"}, SCHEMA, "", None, {"attitude": [5]})
    with pytest.raises(ReviewError, match=r"reasons.charm: no head 'charm'"):
        store.submit("c1", BO, 1, {"attitude": "3"}, SCHEMA, "", None, {"charm": [0]})
    assert store.view("c1").revision == 1  # the refused reviews saved nothing

    out = tmp_path / "reviews.jsonl"
    result = CliRunner().invoke(app, ["reviews", "export", "-o", str(out), "--db", database_url])
    assert result.exit_code == 0, result.output
    line = json.loads(out.read_text(encoding="utf-8"))
    assert [t.get("labels", {}).get("reason") for t in line["turns"]] == [["attitude"], ["attitude"]]
    assert CliRunner().invoke(app, ["data", "validate", str(out), "--schema", "callcenter"]).exit_code == 0


def test_an_identical_repeat_is_not_stored_twice_but_a_new_model_adds_a_prediction(store):
    fill(store, {"c1": CONFIDENT})
    fill(store, {"c1": CONFIDENT})
    assert store.counts()["calls"] == 1
    assert store.add_scored([make_call("c1")], [scores_for("c1", LOW)], "callqa-scorer:v2", SCHEMA) == 1
    assert store.view("c1").model == "callqa-scorer:v2"
    assert store.view("c1").scores.scores["attitude"].level == "1"


def test_reviews_append_history_and_the_latest_correction_is_the_label(store):
    fill(store, {"c1": CONFIDENT})
    first = store.submit("c1", ANNA, 0, {"attitude": "3", "topics": ["network", "billing"]}, SCHEMA, "语气生硬")
    assert first.revision == 1 and first.reviewer == "cqa_anna" and first.comment == "语气生硬"
    # previous = what the model said, since nobody had labelled the call
    assert {c.head: (c.previous, c.value) for c in first.changes} == {
        "attitude": ("5", "3"), "topics": (["billing"], ["billing", "network"])}
    second = store.submit("c1", BO, 1, {"attitude": "4"}, SCHEMA)
    view = store.view("c1")
    assert view.revision == 2 and [r.id for r in view.history] == [second.id, first.id]
    assert view.labels == {"attitude": "4", "topics": ["billing", "network"]}
    assert second.changes[0].previous == "3"
    with Session(store.engine) as session:  # nothing overwritten: every correction is still there
        assert session.scalar(select(func.count()).select_from(CorrectionRow)) == 3


def test_a_save_on_a_stale_revision_is_a_conflict_naming_who_saved(store):
    fill(store, {"c1": CONFIDENT})
    store.submit("c1", ANNA, 0, {"attitude": "3"}, SCHEMA)
    with pytest.raises(Conflict, match="reviewed by Anna"):
        store.submit("c1", BO, 0, {"attitude": "1"}, SCHEMA)
    assert store.view("c1").labels == {"attitude": "3"}


def test_two_simultaneous_saves_of_one_revision_store_exactly_one(store):
    fill(store, {"c1": CONFIDENT})
    results: list[str] = []
    barrier = threading.Barrier(8)

    def save(i: int) -> None:
        barrier.wait()
        try:
            store.submit("c1", Reviewer(f"r{i}"), 0, {"attitude": str(1 + i % 5)}, SCHEMA)
            results.append("saved")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 7 + ["saved"]
    assert len(store.view("c1").history) == 1


@pytest.mark.parametrize(("labels", "mentions"), [
    ({"attitude": "6"}, "labels.attitude"), ({"mood": "1"}, "labels.mood: unknown head"),
    ({"topics": "billing"}, "labels.topics"), ({"topics": ["nope"]}, "'nope'"), ({}, "no labels"),
])
def test_bad_labels_are_refused_naming_the_field(store, labels, mentions):
    fill(store, {"c1": CONFIDENT})
    with pytest.raises(ReviewError, match=mentions):
        store.submit("c1", ANNA, 0, labels, SCHEMA)
    assert store.view("c1").revision == 0


def test_a_leased_call_is_nobody_elses_until_the_lease_ends(database_url):
    store = ReviewStore(database_url, QueuePolicy(sample_rate=0.0, order="least_confident", lease_minutes=0.02))  # 1.2 s
    fill(store, {"c1": UNSURE, "c2": CONFIDENT})
    assert store.next_call(ANNA) == "c1"
    assert [i.call_id for i in store.queue(BO.id)[0]] == ["c2"]
    assert store.queue(ANNA.id)[0][0].leased_to_me
    with pytest.raises(Leased, match="cqa_anna"):
        store.lease("c1", BO)
    with pytest.raises(Leased):
        store.submit("c1", BO, 0, {"attitude": "2"}, SCHEMA)
    assert store.next_call(BO) == "c2"
    time.sleep(1.5)
    store.lease("c1", BO)  # Anna's lease ran out
    store.release("c1", BO)
    store.submit("c1", ANNA, 0, {"attitude": "2"}, SCHEMA)
    assert store.view("c1").lease_owner is None  # a saved review gives the lease back


def test_queue_orders(database_url):
    attitudes = {"sure": CONFIDENT, "unsure": UNSURE, "low": LOW}
    entropy = ReviewStore(database_url, QueuePolicy(sample_rate=0.0, order="least_confident"))
    fill(entropy, attitudes)
    assert [i.call_id for i in entropy.queue("r")[0]] == ["unsure", "low", "sure"]
    margin = ReviewStore(database_url, QueuePolicy(sample_rate=0.0, order="least_confident", confidence="margin"))
    assert [i.call_id for i in margin.queue("r")[0]][0] == "unsure"
    lowest = ReviewStore(database_url, QueuePolicy(sample_rate=0.0, order="lowest_score"))
    assert [i.call_id for i in lowest.queue("r")[0]] == ["low", "unsure", "sure"]
    rand = ReviewStore(database_url, QueuePolicy(sample_rate=0.0, order="random"))
    assert [i.call_id for i in rand.queue("r")[0]] == sorted(attitudes, key=sample_key)


def test_the_random_sample_goes_first_and_is_stable(database_url):
    store = ReviewStore(database_url, QueuePolicy(sample_rate=0.3))
    attitudes = {f"c{i}": (UNSURE if i % 2 else CONFIDENT) for i in range(40)}
    fill(store, attitudes)
    items, waiting = store.queue("r", limit=100)
    assert waiting == 40
    sampled = [i.call_id for i in items if i.sampled]
    assert sampled == [i.call_id for i in items[: len(sampled)]]
    assert set(sampled) == {c for c in attitudes if sample_key(c) < 0.3}
    assert 4 <= len(sampled) <= 20  # 30 % of 40, give or take


def test_an_agent_over_its_daily_quota_leaves_the_queue(database_url):
    store = ReviewStore(database_url, QueuePolicy(sample_rate=0.0, agent_daily_quota=1))
    fill(store, {"a1": UNSURE, "a2": UNSURE}, agent="A")
    fill(store, {"b1": CONFIDENT}, agent="B")
    store.submit("a1", ANNA, 0, {"attitude": "2"}, SCHEMA)
    assert [i.call_id for i in store.queue("r")[0]] == ["b1"]


def test_reviewed_calls_come_out_with_current_labels_since_a_date(store):
    fill(store, {"c1": CONFIDENT, "c2": LOW, "c3": UNSURE})
    store.submit("c1", ANNA, 0, {"attitude": "4", "resolution": "partly"}, SCHEMA)
    store.submit("c2", BO, 0, {"attitude": "2"}, SCHEMA)
    store.submit("c2", ANNA, 1, {"attitude": "1"}, SCHEMA)
    out = {r.call.call_id: r for r in store.reviewed()}
    assert set(out) == {"c1", "c2"}
    assert out["c2"].labels == {"attitude": "1"} and out["c2"].reviewer == "cqa_anna"
    assert out["c1"].predicted["attitude"] == "5" and out["c1"].labels["resolution"] == "partly"
    assert list(store.reviewed(since=__import__("datetime").date(2999, 1, 1))) == []


def test_agreement_counts_model_against_reviewer_per_head_and_week(store):
    from callqa.serving.agreement import agreement, agreement_html

    fill(store, {"c1": CONFIDENT, "c2": CONFIDENT, "c3": LOW, "c4": LOW})  # model: attitude 5, 5, 1, 1
    for call_id, attitude in {"c1": "5", "c2": "4", "c3": "1", "c4": "1"}.items():
        store.submit(call_id, ANNA, 0, {"attitude": attitude, "topics": ["billing"] if call_id != "c4" else []}, SCHEMA)
    report = {h.head: h for h in agreement(store.reviewed(), SCHEMA)}
    assert set(report) == {"attitude", "topics"}  # only heads someone labelled
    attitude = report["attitude"]
    assert attitude.metric == "QWK" and attitude.overall.n == 4 and attitude.overall.accuracy == 0.75
    assert 0.5 < attitude.overall.kappa < 1
    ids = SCHEMA["attitude"].class_ids
    assert attitude.confusion[ids.index("4")][ids.index("5")] == 1  # reviewer said 4 where the model said 5
    assert attitude.confusion[ids.index("1")][ids.index("1")] == 2
    assert list(attitude.weeks.values())[0].n == 4 and len(attitude.weeks) == 1
    topics = report["topics"]  # the model predicted billing on all four; the reviewer on three
    assert topics.per_label["话费账单"] == {"model": 4, "reviewer": 3, "both": 3}
    assert topics.overall.accuracy == pytest.approx(1 - 1 / 44)
    page = agreement_html(list(report.values()), "t")
    assert "服务态度" in page and "<script" not in page


def test_reviews_ingest_scores_a_file_stores_the_good_lines_and_names_the_bad(tiny_bundle, tmp_path):
    from typer.testing import CliRunner

    from callqa.cli import app

    from conftest import SAMPLE

    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:5]
    calls = tmp_path / "calls.jsonl"
    calls.write_text("\n".join([*lines[:3], '{"call_id": "x", "turns": []}', *lines[3:]]) + "\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    result = CliRunner().invoke(app, ["score", str(calls), "--into", "store", "--bundle", str(tiny_bundle), "--db", db])
    assert result.exit_code == 1
    assert f"{calls}:4:turns" in result.output and "5 calls scored" in result.output
    store = ReviewStore(db)
    assert store.counts() == {"calls": 5, "reviewed": 0, "reviews": 0}
    assert store.view(__import__("json").loads(lines[0])["call_id"]).model == "callqa-scorer:tiny"
    html = tmp_path / "agreement.html"
    result = CliRunner().invoke(app, ["reviews", "agreement", "--db", db, "--html", str(html)])
    assert result.exit_code == 0 and "no reviewed calls yet" in result.output and html.exists()


def test_a_start_time_with_a_zone_is_kept_as_the_same_moment(store):
    from datetime import datetime

    call = make_call("c1").model_copy(update={"started_at": datetime.fromisoformat("2026-01-11T13:16:00+08:00")})
    store.add_scored([call], [scores_for("c1", CONFIDENT)], "callqa-scorer:v1", SCHEMA)
    assert store.queue("r")[0][0].started_at == call.started_at
    assert store.view("c1").call.started_at == call.started_at


def test_stored_predictions_say_what_produced_them_and_readers_use_it(tmp_path):
    """A store filled by two bundles: export types each call's labels by its own bundle's schema (no --schema),
    the report's agreement is per bundle, and the card hash is the card each prediction was graded on. A bundle the
    store has no schema of (written before it recorded them) is named, not guessed."""
    from sqlalchemy import delete
    from typer.testing import CliRunner

    from callqa.cli import app
    from callqa.jsonl import load_calls
    from callqa.scorecard import load_scorecard
    from callqa.serving.report import ReportBuilder
    from callqa.serving.store import Reviewer
    from callqa.serving.store.calls import ModelRow, ScorecardRow

    from conftest import SAMPLE, score_randomly

    calls = load_calls(SAMPLE)[:6]
    db = f"sqlite:///{tmp_path / 'two.db'}"
    store = ReviewStore(db)
    store.add_scored(calls[:3], score_randomly(calls[:3], seed=1), "callqa-scorer:a", SCHEMA)
    store.add_scored(calls[3:], score_randomly(calls[3:], seed=2), "callqa-scorer:b", SCHEMA)
    assert set(store.models()) == {"callqa-scorer:a", "callqa-scorer:b"}
    assert store.models()["callqa-scorer:a"] == SCHEMA
    for call in (calls[0], calls[4]):
        store.submit(call.call_id, Reviewer("r1"), 0, {"attitude": "4"}, SCHEMA)
    with Session(store.engine) as session:
        assert set(session.scalars(select(ScorecardRow.hash))) == {load_scorecard("default").hash}

    out = tmp_path / "reviews.jsonl"
    done = CliRunner().invoke(app, ["reviews", "export", "-o", str(out), "--db", db])  # no --schema
    assert done.exit_code == 0, done.output
    exported = {c.call_id: c for c in load_calls(out)}
    assert {c.meta["model"] for c in exported.values()} == {"callqa-scorer:a", "callqa-scorer:b"}
    assert all(c.labels["attitude"] == 4 and c.meta["schema"] == "callcenter" for c in exported.values())

    month = calls[0].started_at.strftime("%Y-%m")
    rows = ReportBuilder(store).build(month).table("agreement").rows  # the builder is given no schema at all
    assert {r[0] for r in rows} <= {"callqa-scorer:a", "callqa-scorer:b"} and rows

    with Session(store.engine) as session, session.begin():
        session.execute(delete(ModelRow).where(ModelRow.tag == "callqa-scorer:b"))  # as a store from before
    done = CliRunner().invoke(app, ["reviews", "export", "-o", str(out), "--db", db])
    assert done.exit_code == 0 and "no label schema for callqa-scorer:b" in done.output
    assert {c.call_id: c.labels["attitude"] for c in load_calls(out)} == {calls[0].call_id: 4, calls[4].call_id: "4"}
    done = CliRunner().invoke(app, ["reviews", "export", "-o", str(out), "--db", db, "--schema", "callcenter"])
    assert all(c.labels["attitude"] == 4 for c in load_calls(out))
