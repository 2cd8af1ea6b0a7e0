"""The ``semantic`` rule kind: a criterion written as examples, matched per turn by sentence embeddings (the shared
pretrained encoder's first 4 layers, exported to ONNX as a bundle carries it), with evidence naming the closest
example; turns embedded once per call however many semantic rules there are."""

from __future__ import annotations

import pytest
import yaml

from callqa.calls import Call
from callqa.scorecard import ScorecardError, load_scorecard
from callqa.semantic import OnnxSentenceEncoder

CARD = {
    "name": "semantic-test", "title": "语义规则", "total": 20, "phrases": "phrases.yaml",
    "sections": {"service": {"title": "服务", "items": {
        "no_deflection": {"title": "不推诿", "points": 10, "rules": ["deflection"]},
        "soothing": {"title": "安抚", "points": 10, "rules": ["no_soothing"]}}}},
    "rules": {
        "deflection": {"kind": "semantic", "title": "推诿", "deduct": 5, "example_lists": ["deflection_examples"],
                       "counter_lists": ["deflection_counter"], "threshold": 0.9},
        "no_soothing": {"kind": "semantic", "title": "抱怨后未安抚", "deduct": 5, "required": True, "where": "after",
                        "example_lists": ["soothing_examples"], "threshold": 0.9,
                        "trigger": {"speaker": "customer", "phrases": ["投诉", "太慢了"], "within": 2}}},
}
PHRASES = {
    "deflection_examples": ["这个不归我们管您去问别人吧", "我们这边处理不了这种问题", "您打其他电话咨询吧我们不负责"],
    "deflection_counter": ["我帮您转接到负责的部门请稍等", "这个问题我们来处理您放心"],
    "soothing_examples": ["您先别着急我一定帮您处理好", "我非常理解您的心情", "您消消气这件事我来跟进"],
}


class Counting:
    """The real encoder, counting the texts it is asked to embed."""

    def __init__(self, encoder):
        self.encoder, self.name, self.calls = encoder, encoder.name, []

    def encode(self, texts):
        self.calls.append(list(texts))
        return self.encoder.encode(texts)


@pytest.fixture(scope="module")
def encoder(shared_encoder, tmp_path_factory):
    from callqa.training.export.sentence import export_sentence_encoder

    return OnnxSentenceEncoder(export_sentence_encoder(shared_encoder, tmp_path_factory.mktemp("sentence"), layers=4))


def _card(tmp_path, encoder=None, card=CARD, phrases=PHRASES):
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(card, allow_unicode=True), encoding="utf-8")
    (tmp_path / "phrases.yaml").write_text(yaml.safe_dump(phrases, allow_unicode=True), encoding="utf-8")
    return load_scorecard(tmp_path / "card.yaml", encoder=encoder)


def _call(*turns: tuple[str, str]) -> Call:
    return Call.model_validate({"call_id": "c1", "turns": [{"speaker": s, "text": t} for s, t in turns]})


def test_a_criterion_written_as_examples_catches_other_words_and_names_the_closest_example(encoder, tmp_path):
    counting = Counting(encoder)
    card = _card(tmp_path, counting)
    call = _call(("customer", "我的快递三天没动了"), ("agent", "这事不归我们这边负责，您得自己去问物流公司。"),
                 ("customer", "那你们能做什么"), ("agent", "我帮您联系快递公司核实，有结果后我给您回电。"))
    embedded_for_examples = len(counting.calls)
    result = card.score(call)
    item = result.items()["no_deflection"]
    assert [d.turn for d in item.deductions] == [1]  # the deflection in other words, not the agent who takes it on
    hit = item.deductions[0]
    assert hit.example in PHRASES["deflection_examples"] and hit.value >= 0.9 and hit.text == call.turns[1].text
    # Two semantic rules, one embedding pass over the call's turns.
    assert counting.calls[embedded_for_examples:] == [[t.text for t in call.turns]]


def test_a_required_criterion_after_a_trigger_is_met_by_soothing_in_other_words(encoder, tmp_path):
    card = _card(tmp_path, encoder)
    unsoothed = _call(("customer", "我要投诉，你们太慢了"), ("agent", "请提供一下您的订单号。"))
    soothed = _call(("customer", "我要投诉，你们太慢了"), ("agent", "您先消消气，这个事情我一定帮您处理好。"))
    missing = card.score(unsoothed).items()["soothing"].deductions
    assert [(d.turn, d.text) for d in missing] == [(0, "投诉")]
    assert card.score(soothed).items()["soothing"].deductions == []


def test_a_semantic_card_without_an_encoder_or_with_an_unknown_list_is_refused_by_name(tmp_path):
    card = _card(tmp_path)
    with pytest.raises(ScorecardError, match="rules.deflection: a semantic rule needs a sentence encoder"):
        card.score(_call(("agent", "您好")))
    broken = {**CARD, "rules": {**CARD["rules"], "deflection": {**CARD["rules"]["deflection"],
                                                                  "example_lists": ["nope"]}}}
    with pytest.raises(ScorecardError, match=r"card.yaml: rules.deflection.example_lists: no list 'nope'"):
        _card(tmp_path, card=broken)


def test_a_bundle_exported_with_a_sentence_encoder_scores_a_semantic_card_and_one_without_is_refused(
        tiny_run, tiny_bundle, tiny_encoder_dir, tmp_path):
    from callqa.bundle import load_bundle
    from callqa.session import ScoringSession
    from callqa.training.export import GateConfig, export_run

    _card(tmp_path)  # writes card.yaml and phrases.yaml
    with pytest.raises(ScorecardError, match="semantic rules \\(deflection, no_soothing\\) need a sentence encoder"):
        ScoringSession.check(tiny_bundle, tmp_path / "card.yaml")
    out = tmp_path / "bundle"
    export_run(tiny_run, out, version="semantic", gate=GateConfig(max_nmd_increase=1.0, max_macro_f1_drop=1.0),
               store=False, log=lambda *_: None, sentence_encoder=tiny_encoder_dir, sentence_layers=1)
    info, _ = load_bundle(out)  # the sentence encoder's files are checked like the rest
    assert {"sentence/model.onnx", "sentence/tokenizer.json"} <= set(info.files)
    session = ScoringSession(out, tmp_path / "card.yaml")
    card = session.pipeline.scorecard
    assert card.encoder is not None and card.encoder.name == "sentence"
    call = _call(("customer", "我要投诉"), ("agent", "这个不归我们管您去问别人吧"))
    (scored,) = session.score([call])
    hits = scored.scorecard.items()["no_deflection"].deductions
    # The tiny random encoder matches the example it was given word for word; what matters here is the wiring.
    assert [(h.turn, h.example) for h in hits] == [(1, "这个不归我们管您去问别人吧")]
