"""The scorecard: each rule kind on hand-written Chinese calls with their near misses, the arithmetic of items,
sections, red lines and conditions, the card's validation errors, and evidence spans on real calls."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from callqa.calls import Call
from callqa.jsonl import load_calls
from callqa.pipeline import ScoredCall, head_scores
from callqa.schema import load_schema
from callqa.scorecard import SCORECARD_DIR, ScorecardError, load_scorecard

from conftest import SAMPLE, SHARED_STC3, default_card

SCHEMA = load_schema("callcenter")
CARD = default_card(SCHEMA)

OPENING = "您好，很高兴为您服务，我是19号客服，请问有什么可以帮您"
CLOSING = "请问还有其他可以帮您的吗？感谢您的来电，再见"


def call(*turns, timed: bool = False) -> Call:
    """A call from (speaker, text) pairs — or (speaker, text, start, end) with timestamps."""
    out = []
    for t in turns:
        speaker, text, *times = t
        turn = {"speaker": {"a": "agent", "c": "customer"}.get(speaker, speaker), "text": text}
        if times:
            turn["start"], turn["end"] = times
        out.append(turn)
    return Call(call_id="t-1", turns=out)


def hits(c: Call, rule: str) -> list:
    return CARD.rule_hits(c)[rule]


def polite(*middle) -> Call:
    return call(("a", OPENING), *middle, ("a", CLOSING))


# ---------------------------------------------------------------------------------------------- opening / closing


def test_opening_needs_the_polite_greeting_and_an_offer_of_service():
    assert hits(polite(("c", "查一下话费")), "opening_greeting") == []
    assert hits(polite(("c", "查一下话费")), "opening_offer") == []
    lazy = call(("a", "你好，请讲"), ("c", "查一下话费"), ("a", CLOSING))  # 你好 is the near miss of 您好
    [greeting] = hits(lazy, "opening_greeting")
    assert greeting.turn == 0 and greeting.text == "你好，请讲"
    assert len(hits(lazy, "opening_offer")) == 1


def test_closing_is_looked_for_in_the_last_two_agent_turns():
    assert hits(call(("a", OPENING), ("c", "好"), ("a", "感谢来电"), ("a", "嗯")), "closing") == []
    [missing] = hits(call(("a", OPENING), ("c", "好"), ("a", "嗯"), ("a", "挂了")), "closing")
    assert missing.turn == 3


# ---------------------------------------------------------------------------------------------- phrases


def test_forbidden_phrase_hits_carry_the_exact_span_and_exceptions_do_not_hit():
    c = polite(("c", "页面打不开"), ("a", "您把页面往下滚动一下"), ("a", "说那么多干嘛，你给我滚"))
    found = hits(c, "forbidden")
    assert [(h.turn, h.text) for h in found] == [(3, "说那么多干嘛"), (3, "滚")]
    for h in found:
        assert c.turns[h.turn].text[h.start:h.end] == h.text


def test_an_evasive_answer_hits_in_other_words_and_the_old_exception_still_does_not():
    # 含糊其辞 is a semantic rule (issue 34): the old phrase rule's exceptions are its counter-examples.
    assert hits(polite(("a", "不清楚的地方您可以随时问我")), "evasive") == []
    [h] = hits(polite(("c", "钱什么时候退"), ("a", "这个嘛我也说不好，大概过几天吧")), "evasive")
    assert (h.turn, h.text) == (2, "这个嘛我也说不好，大概过几天吧") and h.example in CARD.rules["evasive"].examples
    assert h.value >= CARD.rules["evasive"].spec.threshold


def test_customer_turns_are_not_checked_for_agent_phrases():
    assert hits(polite(("c", "你们说那么多干嘛，我不清楚")), "forbidden") == []
    assert hits(polite(("c", "你们说那么多干嘛，我不清楚")), "evasive") == []


# ---------------------------------------------------------------------------------------------- 安抚


def test_a_complaint_needs_soothing_within_two_agent_turns():
    soothed = polite(("c", "你们这也太过分了"), ("a", "您的订单号是多少"), ("a", "给您带来不便，非常抱歉"))
    assert hits(soothed, "no_soothing") == []
    ignored = polite(("c", "你们这也太过分了"), ("a", "您的订单号是多少"), ("a", "好的"), ("a", "非常抱歉"))
    [h] = hits(ignored, "no_soothing")
    assert (h.turn, h.text) == (1, "太过分")


def test_a_negated_complaint_word_does_not_trigger_the_soothing_check():
    calm = polite(("c", "我不着急，你慢慢查"), ("a", "好的"), ("a", "查到了"))
    assert hits(calm, "no_soothing") == []
    upset = polite(("c", "我很着急，你快点查"), ("a", "好的"), ("a", "查到了"))
    assert len(hits(upset, "no_soothing")) == 1


# ---------------------------------------------------------------------------------------------- rates


def test_courtesy_rate_counts_polite_words_per_agent_turn():
    assert hits(polite(("a", "请您稍等"), ("a", "感谢您的耐心")), "courtesy_rate") == []
    rude = call(("a", "喂"), ("c", "查话费"), ("a", "等着"), ("a", "好了"), ("a", "没了"))
    [h] = hits(rude, "courtesy_rate")
    assert h.value == 0.0 and h.turn == 0


def test_filler_words_are_hits_each():
    c = polite(("a", "那个那个，就是说您的套餐"), ("a", "就是说下个月生效"))
    assert [h.text for h in hits(c, "filler")] == ["那个那个", "就是说", "就是说"]


# ---------------------------------------------------------------------------------------------- timing


def timed_call(agent_start: float, gap_words: str = "好的") -> Call:
    return call(("a", OPENING, 0.0, 7.0), ("c", "我的宽带又断了，昨天就断了一次", 8.0, 12.0),
                ("a", gap_words, agent_start, agent_start + 2.0), ("a", CLOSING, agent_start + 3.0, agent_start + 9.0),
                timed=True)


def test_interrupting_the_customer_beyond_the_tolerance_is_a_hit_with_the_overlap():
    [h] = hits(timed_call(10.8), "interrupt")  # starts 1.2 s before the customer stops
    assert (h.turn, h.other_turn, h.seconds) == (2, 1, pytest.approx(1.2))
    assert hits(timed_call(11.7), "interrupt") == []  # 0.3 s: within the tolerance


def test_a_long_silence_is_a_hit_unless_the_agent_announced_it():
    quiet = call(("a", OPENING, 0.0, 7.0), ("c", "帮我查下话费", 8.0, 10.0), ("a", "好的", 11.0, 12.0),
                 ("a", "查到了，是五十元", 27.0, 30.0), ("a", CLOSING, 31.0, 36.0))
    [h] = hits(quiet, "silence")
    assert (h.turn, h.seconds) == (3, pytest.approx(15.0))
    announced = call(("a", OPENING, 0.0, 7.0), ("c", "帮我查下话费", 8.0, 10.0), ("a", "好的，请您稍等", 11.0, 12.0),
                     ("a", "查到了，是五十元", 27.0, 30.0), ("a", CLOSING, 31.0, 36.0))
    assert hits(announced, "silence") == []


def test_speech_rate_outside_the_range_is_a_hit():
    rushed = call(("a", OPENING * 4, 0.0, 10.0), ("c", "好", 11.0, 12.0), ("a", CLOSING * 3, 12.5, 20.0))
    [h] = hits(rushed, "speech_rate")
    assert h.value > 330


def test_timing_rules_are_not_applicable_without_timestamps_and_never_deduct():
    untimed = polite(("c", "帮我查下话费"), ("a", "好的"))
    result = CARD.score(untimed)
    items = result.items()
    for item in ("interrupt", "hold", "speech_rate"):
        assert items[item].applicable is False and items[item].points == items[item].max_points
    assert CARD.rule_hits(untimed)["silence"] is None


# ---------------------------------------------------------------------------------------------- arithmetic


def scores(attitude=None, resolution=None, topics=0.0) -> ScoredCall:
    probs = {"attitude": np.array(attitude or [0, 0, 0, 0, 1.0]), "empathy": np.array([0, 0, 0, 0, 1.0]),
             "resolution": np.array(resolution or [0, 0, 1.0]), "topics": np.array([0.0] * 9 + [topics, 0.0]),
             "call_type": np.array([0.0, 0.0, 1.0, 0.0, 0.0])}
    return ScoredCall(call_id="t-1", scores=head_scores(SCHEMA, probs), n_tokens=10, truncated=False)


def test_totals_are_the_sum_of_items_and_items_never_go_below_zero():
    c = polite(("c", "查话费"), ("a", "您说是什么问题"), ("a", "你说什么"), ("a", "您说是什么问题"))
    result = CARD.score(c, scores())
    assert result.total == pytest.approx(sum(i.points for i in result.items().values()))
    for section in result.sections:
        assert section.points == pytest.approx(sum(i.points for i in section.items))
    questions = result.items()["standard_questions"]
    assert len(questions.deductions) == 3 and questions.points == 0  # 3 × 5 capped at the item's 10
    assert [d.points for d in questions.deductions] == [5, 5, 0]


def test_model_heads_set_an_items_starting_points():
    good, bad = CARD.score(polite(), scores()), CARD.score(polite(), scores([1.0, 0, 0, 0, 0], [1.0, 0, 0]))
    assert good.items()["attitude_model"].points == 10 and bad.items()["attitude_model"].points == 0
    assert good.items()["resolution_model"].points == 35 and bad.items()["resolution_model"].points == 0
    halfway = CARD.score(polite(), scores([0, 0, 1.0, 0, 0], [0, 1.0, 0]))
    assert halfway.items()["attitude_model"].from_model == pytest.approx(5.0)  # level 3 of 1..5 → half of 10
    assert halfway.items()["resolution_model"].points == 20  # the levels table


def test_a_red_line_hit_zeroes_the_total_and_flags_the_call():
    clean = CARD.score(polite(("c", "查话费"), ("a", "请您稍等")), scores())
    assert clean.red_line is False and clean.total > 90
    rude = CARD.score(polite(("c", "查话费"), ("a", "你急什么，等着")), scores())
    assert rude.red_line is True and rude.total == 0
    assert rude.items()["forbidden"].red_line and rude.items()["forbidden"].deductions[0].text == "你急什么"
    assert rude.sections[1].points > 0  # the items keep their points: the reviewer sees what else happened


def test_an_item_with_a_condition_applies_only_when_it_holds():
    c = polite(("c", "我要投诉"), ("a", "非常抱歉"))
    assert CARD.score(c, scores(topics=0.1)).items()["complaint_followup"].applicable is False
    applied = CARD.score(c, scores(topics=0.9)).items()["complaint_followup"]
    assert applied.applicable is True and len(applied.deductions) == 1  # no 登记/回电 in the last turns


def test_results_carry_the_cards_name_and_a_content_hash(tmp_path):
    result = CARD.score(polite())
    assert result.name == "default" and len(result.hash) == 16
    edited = tmp_path / "edited.yaml"
    data = yaml.safe_load((SCORECARD_DIR / "default.yaml").read_text(encoding="utf-8"))
    data["rules"]["forbidden"]["exceptions"] = ["滚动"]
    data["phrases"] = str(SCORECARD_DIR / "phrases.yaml")
    edited.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert load_scorecard(edited).hash != CARD.hash


# ---------------------------------------------------------------------------------------------- validation


def broken_card(tmp_path, change) -> str:
    data = yaml.safe_load((SCORECARD_DIR / "default.yaml").read_text(encoding="utf-8"))
    data["phrases"] = str(SCORECARD_DIR / "phrases.yaml")
    change(data)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ScorecardError) as err:
        load_scorecard(path, SCHEMA)
    message = str(err.value)
    assert message.startswith(str(path))
    return message


@pytest.mark.parametrize("change, mentions", [
    (lambda d: d["sections"]["attitude"]["items"]["attitude_model"]["head"].update(head="politeness"),
     ["sections.attitude.items.attitude_model.head.head", "politeness"]),
    (lambda d: d["sections"]["handling"]["items"]["resolution_model"]["head"]["levels"].update(solved=35),
     ["resolution_model.head.levels", "solved"]),
    (lambda d: d["sections"]["handling"]["items"]["answers"].update(rules=["evasive", "vague"]),
     ["sections.handling.items.answers.rules", "vague"]),
    (lambda d: d["sections"]["handling"]["items"]["answers"].update(points=15),
     ["total", "105", "100"]),
    (lambda d: d["rules"]["filler"].update(patterns=["(那个"]),
     ["rules.filler.patterns[0]", "does not compile"]),
    (lambda d: d["rules"]["filler"].update(lists=["filler", "vague_words"]),
     ["rules.filler.lists", "vague_words"]),
    (lambda d: d["rules"]["evasive"].update(example_lists=["evasive_examples", "vague_words"]),
     ["rules.evasive.example_lists", "vague_words"]),
    (lambda d: d["rules"]["evasive"].update(kind="fuzzy"),
     ["rules.evasive", "fuzzy"]),
    (lambda d: d["sections"]["handling"]["items"]["complaint_followup"]["when"].update(label="refund"),
     ["complaint_followup.when.label", "refund"]),
])
def test_a_bad_card_is_refused_with_the_file_item_and_field(tmp_path, change, mentions):
    message = broken_card(tmp_path, change)
    for word in mentions:
        assert word in message, message


# ---------------------------------------------------------------------------------------------- real calls


def assert_spans_exact(calls: list[Call]) -> int:
    n = 0
    for c in calls:
        for rule_hits in CARD.rule_hits(c).values():
            for h in rule_hits or []:
                if h.start is not None:
                    assert c.turns[h.turn].text[h.start:h.end] == h.text
                    n += 1
    return n


def test_every_evidence_span_on_the_sample_calls_indexes_its_turn_exactly():
    assert assert_spans_exact(load_calls(SAMPLE)) > 100


@pytest.mark.shared
def test_every_evidence_span_on_stc3_calls_indexes_its_turn_exactly():
    source = SHARED_STC3
    if not source.exists():
        pytest.skip(f"{source} not found: ../shared is not beside this checkout")
    from callqa.stc3 import read_stc3

    calls = list(read_stc3(source))[:1000]
    assert assert_spans_exact(calls) > 0


def test_scorecard_results_round_trip_as_json():
    result = CARD.score(polite(("c", "太过分了"), ("a", "你急什么")), scores())
    assert json.loads(result.model_dump_json())["red_line"] is True
