"""The call-category head kind (来电类型): added as one module and a registry line, carried by the demo schema and the
sample, trained like a level head, counted by the month report's 分类统计 (a call's own type first)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from callqa.heads import KINDS, CategoryKind, LabelError, LevelKind, registered
from callqa.jsonl import load_calls
from callqa.schema import load_schema
from callqa.serving.report import ReportBuilder
from callqa.serving.store import CallFilter, Reviewer, ReviewStore

from conftest import SAMPLE, score_randomly

TYPES = {"consult": "咨询", "handle": "办理", "complaint": "投诉", "query": "查询", "other": "其他"}


def test_the_demo_schema_and_every_sample_call_carry_a_call_type():
    schema = load_schema("callcenter")
    head = schema["call_type"]
    assert isinstance(head.spec, CategoryKind) and head.spec is KINDS["category"]
    assert head.display == "来电类型" and head.classes == TYPES
    calls = load_calls(SAMPLE)
    assert all(not schema.check_labels(c.labels) for c in calls)
    found = {c.labels["call_type"] for c in calls}
    assert found == set(TYPES)  # every class occurs, so the demo model learns each
    # One class per call: a list is refused, votes give a distribution.
    with pytest.raises(LabelError):
        head.target(["consult"])
    assert head.target("query").tolist() == [0, 0, 0, 1, 0]


def test_a_call_category_is_a_level_head_for_training_and_scoring():
    """Without a loss or a baseline of its own, the kind takes its base class's (training.model.LOSSES)."""
    from callqa.training.baselines import FITS, fit_distribution
    from callqa.training.model import LOSSES, _distribution_loss

    kind = KINDS["category"]
    assert registered(LOSSES, kind) is _distribution_loss and registered(FITS, kind) is fit_distribution
    schema = load_schema("callcenter")
    head = schema["call_type"]
    score = kind.decode(head, np.array([0.1, 0.2, 0.6, 0.05, 0.05]))
    assert (score.level, score.level_name, score.expected) == ("complaint", "投诉", None)
    view = head.view()
    assert view.widget == "levels" and not view.multiple and view.filterable and not view.expected
    assert isinstance(kind, LevelKind) and "macro_f1" in kind.table_metrics


def test_the_month_report_counts_calls_per_type_the_calls_own_first_then_the_model_then_a_reviewer(tmp_path):
    schema = load_schema("callcenter")
    calls = [c.model_copy(update={"agent_id": "a1", "started_at": datetime.fromisoformat("2026-03-10T02:00:00+00:00"),
                                  "labels": {}}) for c in load_calls(SAMPLE)[:12]]
    # Four calls come with their type filed (an IVR menu): by class id, by its Chinese name, and one the schema
    # does not know (the model's type counts then).
    filed = {0: "complaint", 1: "查询", 2: "报修", 3: "other"}
    calls = [c.model_copy(update={"meta": {**c.meta, "call_type": filed[i]}}) if i in filed else c
             for i, c in enumerate(calls)]
    scored = score_randomly(calls, seed=11)
    store = ReviewStore(f"sqlite:///{tmp_path / 'reviews.db'}")
    store.add_scored(calls, scored, "callqa-scorer:test", schema)

    def expected() -> dict[str, int]:
        out: dict[str, int] = {}
        for i, s in enumerate(scored):
            own = {"complaint": "complaint", "查询": "query", "other": "other"}.get(filed.get(i, ""))
            label = reviewed.get(i) or own or s.scores["call_type"].level
            out[TYPES[label]] = out.get(TYPES[label], 0) + 1
        return out

    def counted() -> dict[str, int]:
        report = ReportBuilder(store, schema).build("2026-03")
        return {row[1]: row[2] for row in report.table("categories").rows if row[0] == "来电类型"}

    reviewed: dict[int, str] = {}
    assert counted() == expected() and sum(counted().values()) == len(calls)  # one type per call
    # A reviewer's type replaces the call's own and the model's.
    for i, label in ((0, "consult"), (5, "handle")):
        store.submit(calls[i].call_id, Reviewer("rev-1", "Ann"), 0, {"call_type": label}, schema)
        reviewed[i] = label
    assert counted() == expected()
    # The queue can be searched by a call's type (the type it was counted under when stored).
    items, total = store.search(CallFilter(topic="complaint"), reviewer="rev-2")
    stored = [i for i, s in enumerate(scored) if i not in (1, 3) and (i == 0 or s.scores["call_type"].level == "complaint")]
    assert {item.call_id for item in items} == {calls[i].call_id for i in stored} and total == len(stored)
