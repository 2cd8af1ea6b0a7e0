"""来电分析: a call's measures (talk, silence, interruptions, a chat's response times, transfers and repeat calls from
its metadata), the predicted resolution, and the report's tables by category, hour and weekday, checked against
numbers computed here from the calls themselves."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callqa.analytics import CallMeasures, predicted_resolved
from callqa.calls import Call
from callqa.jsonl import load_calls
from callqa.pipeline import head_scores
from callqa.schema import load_schema
from callqa.serving.report import ReportBuilder
from callqa.serving.store import ReviewStore

from conftest import SAMPLE, score_randomly

SHANGHAI = ZoneInfo("Asia/Shanghai")


def call(turns, channel="phone", **meta) -> Call:
    return Call.model_validate({"call_id": "c", "channel": channel, "meta": meta, "turns": [
        {"speaker": s, "text": "您好", "start": a, "end": b} for s, a, b in turns]})


def test_a_voice_calls_talk_silence_and_interruptions():
    measured = CallMeasures.of(call([("agent", 0, 3), ("customer", 5, 9), ("agent", 8, 12), ("customer", 12.2, 14),
                                     ("agent", 20, 21)], transfers=2, repeat_call=True))
    assert not measured.chat and measured.duration == 21
    assert measured.talk_seconds == pytest.approx(3 + 4 + 3 + 1.8 + 1)  # 8–9 overlaps: counted once
    assert measured.silence_seconds == pytest.approx(2 + 0.2 + 6)
    assert measured.interruptions == 1  # the agent began 1 s before the customer finished; 0.2 s gaps are none
    assert (measured.transfers, measured.repeat_call) == (2, True)
    assert measured.first_response is None and measured.avg_response is None


def test_a_chats_response_times_and_what_is_unknown():
    measured = CallMeasures.of(call([("agent", 0, 0), ("customer", 10, 10), ("customer", 15, 15), ("agent", 40, 40),
                                     ("customer", 60, 60), ("agent", 70, 70)], channel="在线", transfers="two"))
    assert measured.chat and measured.first_response == 30 and measured.avg_response == pytest.approx((30 + 10) / 2)
    assert measured.talk_seconds is None and measured.interruptions is None
    assert measured.transfers is None and measured.repeat_call is None  # not a count: unknown, not guessed
    untimed = CallMeasures.of(Call.model_validate({"call_id": "u", "turns": [{"speaker": "agent", "text": "您好"}]}))
    assert untimed.duration is None and untimed.talk_seconds is None and untimed.silence_seconds is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["agent", "customer"]), st.floats(0, 100), st.floats(0, 20)),
                min_size=1, max_size=12))
def test_talk_and_silence_cover_the_call_from_its_first_word_to_its_last(spans):
    turns = sorted(((s, a, a + d) for s, a, d in spans), key=lambda t: t[1])
    measured = CallMeasures.of(call(turns))
    first, last = min(t[1] for t in turns), max(t[2] for t in turns)
    assert measured.talk_seconds + measured.silence_seconds == pytest.approx(last - first, abs=1e-2)
    assert 0 <= measured.interruptions < len(turns)


def test_predicted_resolution_is_the_upper_half_of_the_resolution_heads_scale():
    schema = load_schema("callcenter")
    assert schema.with_role("resolution").name == "resolution"
    probs = {h.name: h.spec.activate(np.zeros(h.size)) for h in schema.heads}
    for level, resolved in (("unresolved", False), ("partly", False), ("resolved", True)):
        probs["resolution"] = np.eye(3)[schema["resolution"].index(level)]
        assert predicted_resolved({"scores": {k: v.model_dump() for k, v in head_scores(schema, probs).items()}},
                                  schema) is resolved
    stc3 = load_schema("stc3")
    assert stc3.with_role("resolution").name == "A" and stc3.with_role("satisfaction").name == "S"
    assert predicted_resolved({"scores": {}}, schema) is None and predicted_resolved({"scores": {}}, None) is None


def test_the_report_tables_match_the_calls_counted_by_hand(tmp_path):
    schema = load_schema("callcenter")
    calls = []
    for i, c in enumerate(load_calls(SAMPLE)[:40]):
        started = datetime(2026, 3, 1 + i % 28, (7 + 5 * i) % 24, 10, tzinfo=SHANGHAI)
        meta = {"transfers": i % 3} if i % 2 else {"repeat_call": i % 4 == 0}
        calls.append(c.model_copy(update={"started_at": started, "labels": {}, "meta": meta,
                                          "channel": "在线" if i % 5 == 0 else "phone"}))
    scored = score_randomly(calls, seed=5)
    store = ReviewStore(f"sqlite:///{tmp_path / 'reviews.db'}")
    store.add_scored(calls, scored, "callqa-scorer:test", schema)
    report = ReportBuilder(store, schema).build("2026-03")

    measured = [CallMeasures.of(c) for c in calls]
    resolved = [s.scores["resolution"].level == "resolved" for s in scored]
    by_hour = report.table("calls-by-hour")
    for row in by_hour.rows:
        hour = int(row[0][:2])
        members = [i for i, c in enumerate(calls) if c.started_at.hour == hour]
        voice = [measured[i] for i in members if not measured[i].chat]
        chat = [measured[i] for i in members if measured[i].chat]
        assert row[1] == len(members)
        assert row[2] == (pytest.approx(np.mean([m.duration for m in voice]), abs=0.051) if voice else None)
        silence = sum(m.silence_seconds for m in voice) / sum(m.duration for m in voice) if voice else None
        assert row[3] == (pytest.approx(100 * silence, abs=0.051) if voice else None)  # rounded to 0.1
        transfers = [measured[i].transfers for i in members if measured[i].transfers is not None]
        assert row[5] == (pytest.approx(np.mean(transfers), abs=0.0051) if transfers else None)
        assert row[7] == pytest.approx(100 * np.mean([resolved[i] for i in members]), abs=0.051)
        assert row[8] == len(chat)
        assert row[9] == (pytest.approx(np.mean([m.first_response for m in chat]), abs=0.051) if chat else None)
    assert sum(row[1] for row in by_hour.rows) == len(calls)
    weekdays = report.table("calls-by-weekday")
    assert sum(row[1] for row in weekdays.rows) == len(calls)
    monday = next(row for row in weekdays.rows if row[0] == "周一")
    assert monday[1] == sum(c.started_at.weekday() == 0 for c in calls)
    # By category: one row per call type the model gave, the calls of each adding up to all the calls.
    types = [row for row in report.table("calls-by-category").rows if row[0] == "来电类型"]
    names = schema["call_type"].classes
    expected = {names[t]: sum(s.scores["call_type"].level == t for s in scored) for t in names}
    assert {row[1]: row[2] for row in types} == {k: v for k, v in expected.items() if v}
