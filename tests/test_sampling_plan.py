"""抽样计划: a YAML plan the queue follows (flagged calls, then agents, categories and time slots still short this
period) and the report's 抽样覆盖 section, both counting coverage through SamplingPlan.coverage."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callqa.jsonl import load_calls
from callqa.schema import load_schema
from callqa.serving.report import ReportBuilder
from callqa.serving.store import PlanError, PlannedCall, QueuePolicy, Reviewer, ReviewStore, load_plan

from conftest import SAMPLE, score_randomly

PLAN = """\
period: month
time_zone: Asia/Shanghai
per_agent: 1
category_head: call_type
per_category: 1
slots: {早班: [8, 16], 晚班: [16, 8]}
per_slot: 1
flags: {red_line: true}
"""


def test_the_shipped_plan_loads_and_a_bad_plan_names_file_line_and_key(tmp_path):
    plan = load_plan("default")
    assert plan.per_agent == 4 and plan.category_head == "call_type" and "夜班" in plan.slots
    bad = tmp_path / "bad.yaml"
    for text, line, problem in (("per_agent: 2\nslots:\n  早班: [8, 25]\n", 2, r"slots: .*hours are 0–23"),
                                ("time_zone: Mars/Base\n", 1, r"time_zone: unknown time zone"),
                                ("per_category: 3\n", 1, r"\(top level\): per_category needs category_head")):
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(PlanError) as err:
            load_plan(bad)
        assert re.match(rf"{re.escape(str(bad))}:{line}: {problem}", str(err.value)), str(err.value)
    with pytest.raises(PlanError, match="not a shipped plan"):
        load_plan("nope")


def test_coverage_counts_reviewed_calls_per_stratum_and_names_gaps(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.replace("per_agent: 1", "per_agent: 2"), encoding="utf-8")
    plan = load_plan(path)
    morning = datetime(2026, 3, 2, 2, tzinfo=UTC)  # 10:00 in Shanghai
    evening = datetime(2026, 3, 2, 12, tzinfo=UTC)  # 20:00
    calls = [PlannedCall("a1", morning, (("call_type", "query"),), True),
             PlannedCall("a1", evening, (("call_type", "query"), ("topics", "billing")), True),
             PlannedCall("a2", evening, (("call_type", "complaint"),), False),
             PlannedCall("a2", morning, (("call_type", "complaint"),), False),
             PlannedCall("a3", morning, (("call_type", "query"),), False)]
    found = {(s.kind, s.value): (s.minimum, s.reviewed, s.calls, s.gap) for s in plan.coverage(calls)}
    assert found == {("agent", "a1"): (2, 2, 2, 0), ("agent", "a2"): (2, 0, 2, 2), ("agent", "a3"): (2, 0, 1, 1),
                     ("business", "query"): (1, 2, 3, 0), ("business", "complaint"): (1, 0, 2, 1),
                     ("slot", "早班"): (1, 1, 3, 0), ("slot", "晚班"): (1, 1, 2, 0)}


@pytest.fixture
def planned_store(tmp_path):
    return make_planned_store(tmp_path)


def make_planned_store(tmp_path):
    """Calls of this month (in the plan's zone) for agents a1 and a2, scored at random; one with a red line."""
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN, encoding="utf-8")
    now = datetime.now(UTC)
    plan = load_plan(path)
    start = now.astimezone(plan.tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # Spread over this month so far, every call in it (and so in the plan's current period).
    span = max((now - start).total_seconds(), 60.0)
    calls = [c.model_copy(update={"agent_id": "a1" if i % 2 else "a2", "labels": {},
                                  "started_at": start + timedelta(seconds=span * (i + 0.5) / 12)})
             for i, c in enumerate(load_calls(SAMPLE)[:12])]
    scored = score_randomly(calls, seed=21)
    store = ReviewStore(f"sqlite:///{tmp_path / 'reviews.db'}", QueuePolicy(plan=str(path), sample_rate=0.0))
    store.add_scored(calls, scored, "callqa-scorer:test", load_schema("callcenter"))
    return store, calls, scored


def test_the_queue_puts_flagged_calls_first_then_strata_still_short(planned_store):
    store, calls, scored = planned_store
    schema = load_schema("callcenter")
    red = {c.call_id for c, s in zip(calls, scored) if s.scorecard.red_line}
    order = [item.call_id for item in store.queue("rev-1", limit=50)[0]]
    assert set(order[:len(red)]) == red  # flagged first
    # Every stratum is short before any review: the rest keeps the queue's own order (least confident first).
    rest = [c for c in order if c not in red]
    assert rest == [i.call_id for i in store.queue("rev-1", limit=50)[0] if i.call_id not in red]

    # Review one call of a1 with a call type and in a slot: a1, that type and that slot are covered, so a2's calls,
    # other types and the other slot now come before a1's remaining calls of the covered type and slot.
    first = next(c for c in calls if c.agent_id == "a1" and c.call_id not in red)
    kind = next(s for c, s in zip(calls, scored) if c.call_id == first.call_id).scores["call_type"].level
    store.submit(first.call_id, Reviewer("rev-1", "Ann"), 0, {"call_type": kind}, schema)
    plan = store.plan
    covered_slot = plan.slot_of(first.started_at)
    after = [item.call_id for item in store.queue("rev-1", limit=50)[0]]
    by_id = {c.call_id: (c, s) for c, s in zip(calls, scored)}

    def short(call_id: str) -> bool:
        call, score = by_id[call_id]
        return (call.agent_id != "a1" or score.scores["call_type"].level != kind
                or plan.slot_of(call.started_at) != covered_slot)

    rest = [c for c in after if c not in red]
    tiers = [0 if short(c) else 1 for c in rest]
    assert tiers == sorted(tiers), "a call of a covered agent, type and slot came before a short stratum's"
    assert first.call_id not in after


def test_the_report_shows_planned_against_reviewed_with_the_gaps_named(planned_store):
    store, calls, scored = planned_store
    schema = load_schema("callcenter")
    store.submit(calls[1].call_id, Reviewer("rev-1", "Ann"), 0, {"attitude": 4}, schema)  # a1's
    period = calls[0].started_at.astimezone(store.plan.tz).strftime("%Y-%m")
    report = ReportBuilder(store, schema).build(period)
    table = report.table("coverage")
    agents = {row[1]: row[2:6] for row in table.rows if row[0] == "坐席"}
    assert agents == {"a1": [1, 1, 6, 0], "a2": [1, 0, 6, 1]}
    types = {row[1]: row[4] for row in table.rows if row[0] == "业务类型"}
    names = schema["call_type"].classes
    assert types == {names[t]: sum(s.scores["call_type"].level == t for s in scored)
                     for t in names if any(s.scores["call_type"].level == t for s in scored)}
    assert "坐席a2缺 1 通" in table.note and "坐席a1" not in table.note
    assert sum(row[4] for row in table.rows if row[0] == "时段") == len(calls)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reviews=st.dictionaries(st.integers(0, 11), st.sampled_from(["consult", "handle", "complaint", "query", "other"]),
                               max_size=8))
def test_the_queue_puts_first_exactly_the_calls_of_strata_the_report_names_as_gaps(tmp_path_factory, reviews):
    """Whatever has been reviewed (and whatever call type the reviewers gave), a waiting call comes before the plan's
    rest exactly when the report's 抽样覆盖 names one of its strata (its agent, call type or time slot) as short."""
    store, calls, scored = make_planned_store(tmp_path_factory.mktemp("plan"))
    schema = load_schema("callcenter")
    for index, call_type in reviews.items():
        store.submit(calls[index].call_id, Reviewer("rev-1", "Ann"), 0, {"call_type": call_type}, schema)
    period = calls[0].started_at.astimezone(store.plan.tz).strftime("%Y-%m")
    table = ReportBuilder(store, schema).build(period).table("coverage")
    gaps = {(row[0], row[1]) for row in table.rows if row[5] > 0}
    names = schema["call_type"].classes
    by_id = {c.call_id: (c, s) for c, s in zip(calls, scored)}

    def in_a_gap(call_id: str) -> bool:
        call, score = by_id[call_id]
        return bool({("坐席", call.agent_id), ("业务类型", names[score.scores["call_type"].level]),
                     ("时段", store.plan.slot_of(call.started_at))} & gaps)

    waiting = [i.call_id for i in store.queue("rev-2", limit=50)[0] if not by_id[i.call_id][1].scorecard.red_line]
    assert len(waiting) == sum(1 for i, (c, s) in enumerate(zip(calls, scored)) if i not in reviews and not s.scorecard.red_line)
    order = [in_a_gap(c) for c in waiting]
    assert order == sorted(order, reverse=True), (order, sorted(gaps))
