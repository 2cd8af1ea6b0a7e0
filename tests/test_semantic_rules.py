"""The ``semantic`` rule kind: a criterion written as examples, matched per turn by sentence embeddings (the shared
pretrained encoder's first layer, exported to ONNX as a bundle carries it), with evidence naming the closest
example; turns embedded once per call however many semantic rules there are."""

from __future__ import annotations

import pytest
import yaml

from callqa.calls import Call
from callqa.scorecard import ScorecardError, load_scorecard
from callqa.semantic import OnnxSentenceEncoder

from conftest import default_card, sentence_encoder, sentence_encoder_folder

CARD = {
    "name": "semantic-test", "title": "语义规则", "total": 20, "phrases": "phrases.yaml",
    "sections": {"service": {"title": "服务", "items": {
        "no_deflection": {"title": "不推诿", "points": 10, "rules": ["deflection"]},
        "soothing": {"title": "安抚", "points": 10, "rules": ["no_soothing"]}}}},
    "rules": {
        "deflection": {"kind": "semantic", "title": "推诿", "deduct": 5, "example_lists": ["deflection_examples"],
                       "counter_lists": ["deflection_counter"], "threshold": 0.8},
        "no_soothing": {"kind": "semantic", "title": "抱怨后未安抚", "deduct": 5, "required": True, "where": "after",
                        "example_lists": ["soothing_examples"], "threshold": 0.8,
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
    return sentence_encoder()


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
    assert hit.example in PHRASES["deflection_examples"] and hit.value >= 0.8 and hit.text == call.turns[1].text
    # Two semantic rules of the agent's turns: those turns embedded once, the customer's never.
    assert counting.calls[embedded_for_examples:] == [[call.turns[1].text, call.turns[3].text]]


def test_a_required_criterion_after_a_trigger_is_met_by_soothing_in_other_words(encoder, tmp_path):
    card = _card(tmp_path, encoder)
    unsoothed = _call(("customer", "我要投诉，你们太慢了"), ("agent", "请提供一下您的订单号。"))
    soothed = _call(("customer", "我要投诉，你们太慢了"), ("agent", "您先消消气，这个事情我一定帮您处理好。"))
    missing = card.score(unsoothed).items()["soothing"].deductions
    assert [(d.turn, d.text) for d in missing] == [(0, "投诉")]
    assert card.score(soothed).items()["soothing"].deductions == []


def test_without_an_encoder_semantic_rules_say_not_applicable_and_an_unknown_list_is_refused_by_name(tmp_path):
    # A card scored alone in Python, with no encoder: its semantic rules cannot judge, and say so (scoring sessions
    # refuse such a card instead: the bundle test below).
    card = _card(tmp_path)
    assert card.rule_hits(_call(("agent", "这个不归我们管您去问别人吧")))["deflection"] is None
    assert not card.score(_call(("agent", "这个不归我们管您去问别人吧"))).items()["no_deflection"].applicable
    broken = {**CARD, "rules": {**CARD["rules"], "deflection": {**CARD["rules"]["deflection"],
                                                                  "example_lists": ["nope"]}}}
    with pytest.raises(ScorecardError, match=r"card.yaml: rules.deflection.example_lists: no list 'nope'"):
        _card(tmp_path, card=broken)


def test_a_bundle_exported_with_a_sentence_encoder_scores_a_semantic_card_and_one_without_is_refused(
        tiny_run, tiny_encoder_dir, tmp_path):
    from callqa.bundle import load_bundle
    from callqa.session import ScoringSession
    from callqa.training.export import GateConfig, export_run

    _card(tmp_path)  # writes card.yaml and phrases.yaml
    gate = GateConfig(max_nmd_increase=1.0, max_macro_f1_drop=1.0)
    plain = export_run(tiny_run, tmp_path / "plain", version="plain", gate=gate, store=False, log=lambda *_: None,
                       sentence_encoder=None)
    assert not any(name.startswith("sentence/") for name in plain.files)
    with pytest.raises(ScorecardError, match="semantic rules \\(deflection, no_soothing\\) need a sentence encoder"):
        ScoringSession.check(tmp_path / "plain", tmp_path / "card.yaml")
    out = tmp_path / "bundle"
    export_run(tiny_run, out, version="semantic", gate=gate, store=False, log=lambda *_: None,
               sentence_encoder=tiny_encoder_dir, sentence_layers=1)
    info, _ = load_bundle(out)  # the sentence encoder's files are checked like the rest
    assert {"sentence/model.onnx", "sentence/tokenizer.json", "sentence/encoder.json"} <= set(info.files)
    session = ScoringSession(out, tmp_path / "card.yaml")
    card = session.pipeline.scorecard
    assert card.encoder is not None and card.encoder.layers == 1 and card.encoder.name == "tiny-bert0, 1 layer(s)"
    call = _call(("customer", "我要投诉"), ("agent", "这个不归我们管您去问别人吧"))
    (scored,) = session.score([call])
    hits = scored.scorecard.items()["no_deflection"].deductions
    # The tiny random encoder matches the example it was given word for word; what matters here is the wiring.
    assert [(h.turn, h.example) for h in hits] == [(1, "这个不归我们管您去问别人吧")]


def _reviewed(call_id: str, turns: list[tuple[str, str]], false_hits=(), missed=()) -> Call:
    """A call as `reviews export` writes it: its verdicts of record in meta.scorecard."""
    return Call.model_validate({"call_id": call_id, "turns": [{"speaker": s, "text": t} for s, t in turns],
                                "meta": {"scorecard": {"false_hits": [{"item": "deflection", "rule": "deflection",
                                                                       "turn": t} for t in false_hits],
                                                       "missed": [{"item": "deflection", "turn": t} for t in missed]}}})


def test_tuning_a_semantic_rule_on_reviews_counts_wrong_hits_and_misses_and_proposes_what_it_still_misses():
    from callqa.rule_tuning import tune, turn_truth

    card = default_card()
    calls = [
        _reviewed("r1", [("customer", "快递丢了"), ("agent", "这个不归我们这边管，您去问快递公司吧。"), ("agent", "还有别的事吗")]),
        _reviewed("r2", [("customer", "账单不对"), ("agent", "账单的事您去营业厅问，我们这里不负责。")]),
        _reviewed("r3", [("customer", "想改套餐"), ("agent", "这个我们处理不了，您找别的部门吧。")], false_hits=[1]),
        _reviewed("r4", [("customer", "退款呢"), ("agent", "退款那是财务的事，跟客服这边扯不上。")], missed=[1]),
        _reviewed("r5", [("customer", "网络断了"), ("agent", "我帮您报修，师傅明天上门。")]),
    ]
    hits = {c.call_id: {h.turn for h in card.rule_hits(c)["deflection"] or ()} for c in calls}
    truth = {c.call_id: turn_truth(card, "deflection", c) for c in calls}
    assert truth["r3"][1] is False and truth["r4"][1] is True  # 误判 and 漏扣 as reviewers marked them
    flagged = [(c, t) for c in hits for t in hits[c]]
    right = [(c, t) for c, t in flagged if truth[c][t]]
    positives = [(c, t) for c in truth for t, y in truth[c].items() if y]
    result = tune(card, "deflection", calls)
    assert result.calls == 5 and result.positives == len(positives)
    assert result.current.precision == pytest.approx(len(right) / len(flagged))
    assert result.current.recall == pytest.approx(len(right) / len(positives))
    f1 = lambda q: 2 * q.precision * q.recall / (q.precision + q.recall)  # noqa: E731
    assert f1(result.proposed) >= f1(result.current)
    if result.proposed.recall < 1:
        assert result.add_examples  # a 漏扣 the proposed threshold still misses is offered as an example



def test_tuning_a_required_semantic_rule_counts_each_complaint_as_reviewers_marked_it():
    from callqa.rule_tuning import tune

    card = default_card()

    def complaint(call_id: str, reply: str, false_hit: bool = False, missed: bool = False) -> Call:
        # 投诉 triggers the 安抚 check; a reviewer's 误判 of its hit says the reply did soothe, a 漏扣 that it did not.
        return Call.model_validate({"call_id": call_id, "turns": [
            {"speaker": "customer", "text": "我要投诉，你们太慢了"}, {"speaker": "agent", "text": reply}],
            "meta": {"scorecard": {
                "false_hits": [{"item": "soothing", "rule": "no_soothing", "turn": 0}] if false_hit else [],
                "missed": [{"item": "soothing", "turn": 1}] if missed else []}}})

    calls = [complaint("s1", "请提供一下您的订单号。"),                          # no soothing: the rule deducts, rightly
             complaint("s2", "您先消消气，这个事情我一定给您处理好。"),          # soothed: no deduction, rightly
             complaint("s3", "好的，我记一下，您别急，马上给您处理。", false_hit=True),  # if it deducts, it is wrong
             complaint("s4", "我理解，嗯。", missed=True),                     # reviewers say: not soothing
             complaint("s5", "请提供一下您的订单号。", false_hit=True)]         # a reviewer (oddly) says: soothing
    hits = {c.call_id: bool(card.rule_hits(c)["no_soothing"]) for c in calls}
    missing = {"s1": hits["s1"], "s2": hits["s2"], "s3": False, "s4": True, "s5": False}  # as the marks leave them
    result = tune(card, "no_soothing", calls)
    flagged = [c for c in hits if hits[c]]
    right = [c for c in flagged if missing[c]]
    assert result.calls == 5 and result.turns == 5 and result.positives == sum(missing.values())
    assert result.current.hits == len(flagged)
    assert result.current.precision == (pytest.approx(len(right) / len(flagged)) if flagged else None)
    assert result.current.recall == pytest.approx(len(right) / sum(missing.values()))
    assert -1 <= result.proposed.threshold <= 1
    # What it proposes to add: replies the reviewers call soothing that the proposed threshold still deducts.
    rule = card.rules["no_soothing"]
    best = {c.call_id: rule.matcher_of_examples.match(card.encoder.encode([c.turns[1].text]))[0].score for c in calls}
    expected = [c.turns[1].text for c in calls if not missing[c.call_id] and best[c.call_id] < result.proposed.threshold]
    assert sorted(set(result.add_examples)) == sorted(set(expected))
    assert "请提供一下您的订单号。" in result.add_examples  # s1 and s5 share it: the marks disagree, it stays wrong


def test_scorecard_tune_and_check_from_the_command_line(tiny_bundle, tmp_path):
    from typer.testing import CliRunner

    from callqa.cli import app
    from callqa.jsonl import write_calls
    from callqa.scorecard import load_scorecard

    reviews = tmp_path / "reviews.jsonl"
    write_calls(reviews, [_reviewed("r1", [("customer", "快递丢了"), ("agent", "这个不归我们管您去问别人吧")]),
                          _reviewed("r2", [("customer", "改套餐"), ("agent", "好的我帮您改")], missed=[1])])
    out = tmp_path / "tuned.yaml"
    result = CliRunner().invoke(app, ["scorecard", "tune", "--rule", "deflection", "--reviews", str(reviews),
                                      "--bundle", str(tiny_bundle), "--write", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 reviewed calls" in result.output and "proposed" in result.output
    tuned = load_scorecard(out)
    assert tuned.spec.sentence_layers == 1  # tuned in the bundle encoder's space, and says so
    assert tuned.rules["deflection"].spec.threshold != load_scorecard("default").rules["deflection"].spec.threshold \
        or "examples" in out.read_text(encoding="utf-8")
    checked = CliRunner().invoke(app, ["scorecard", "check", "default", "--bundle", str(tiny_bundle)])
    assert "closest pair" in checked.output and "deflection" in checked.output
    refused = CliRunner().invoke(app, ["scorecard", "tune", "--rule", "forbidden", "--reviews", str(reviews),
                                       "--bundle", str(tiny_bundle)])
    assert refused.exit_code == 1 and "tune calibrates semantic rules (this one is phrase)" in refused.output


@pytest.mark.skipif(not __import__("servers").CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_the_review_page_shows_a_semantic_deduction_with_its_closest_example(tiny_bundle, tmp_path):
    from playwright.sync_api import expect
    from servers import reviewing, serve, stop

    server = serve(tiny_bundle, tmp_path)
    try:
        # Said word for word as one of the default card's 推诿 examples: even the tiny test encoder matches it.
        example = "这个不归我们管您去问别人吧"
        call = {"call_id": "sem-1", "turns": [{"speaker": "customer", "text": "我的快递丢了"},
                                              {"speaker": "agent", "text": example}]}
        status, body = server.post("/score", {"calls": [call], "store": True}, key="scorer")
        assert status == 200, body
        [hit] = [d for s in body["results"][0]["scorecard"]["sections"] for i in s["items"] for d in i["deductions"]
                 if d["rule"] == "deflection"]
        assert hit["example"] == example and hit["turn"] == 1
        with reviewing(server, "anna", "sem-1") as page:
            shown = page.locator("li.deduction[data-rule='deflection']")
            expect(shown).to_contain_text("推诿")
            expect(shown).to_contain_text(f"最接近的示例：「{example}」")
    finally:
        stop(server.process)


def test_a_card_tuned_on_one_encoder_depth_refuses_a_bundle_encoder_of_another(encoder, tmp_path):
    # The shipped card names the depth its thresholds were tuned on, and the shipped encoder has it.
    assert load_scorecard("default").spec.sentence_layers == encoder.layers == 1
    card = dict(CARD, sentence_layers=4)
    with pytest.raises(ScorecardError, match="tuned on a 4-layer sentence encoder, and the bundle has 1 layer"):
        _card(tmp_path, encoder, card=card)
    # An encoder that does not say its depth (exported before encoder.json) is refused as well, not guessed at.
    (tmp_path / "old").mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (tmp_path / "old" / name).symlink_to(sentence_encoder_folder() / name)
    with pytest.raises(ScorecardError, match="does not say its depth"):
        _card(tmp_path, OnnxSentenceEncoder(tmp_path / "old"), card=dict(CARD, sentence_layers=1))
    # Its prefix too: the shipped card is tuned with none, and an encoder exported before encoder.json named one
    # put "query: " before each turn — the same depth in another space.
    assert load_scorecard("default").spec.sentence_prefix == encoder.prefix == ""
    (tmp_path / "old" / "encoder.json").write_text('{"base": "e5", "layers": 1, "int8": true}', encoding="utf-8")
    with pytest.raises(ScorecardError, match="tuned with '' before each turn, and the bundle's sentence encoder puts "
                                             "'query: '"):
        _card(tmp_path, OnnxSentenceEncoder(tmp_path / "old"), card=dict(CARD, sentence_layers=1, sentence_prefix=""))


@pytest.mark.parametrize("family", ["bert", "roberta", "ernie"])
def test_the_turn_graph_computes_what_the_encoders_layers_compute(family):
    # TurnVector recomputes a BERT-family layer from its weights for one unpadded text; RoBERTa numbers its positions
    # from after its padding id, ERNIE 3.0 adds a task type. A tiny random encoder of each family, two layers,
    # against transformers' own forward.
    import torch
    from transformers import BertConfig, BertModel, ErnieConfig, ErnieModel, RobertaConfig, RobertaModel

    from callqa.training.export.sentence import TurnVector

    config, model_class, extra = {"bert": (BertConfig, BertModel, {}), "roberta": (RobertaConfig, RobertaModel, {}),
                                  "ernie": (ErnieConfig, ErnieModel, {"use_task_id": True})}[family]
    torch.manual_seed(0)
    model = model_class(config(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=40, pad_token_id=1, **extra)).eval()
    for embedding in model.embeddings.children():  # HF initialises type embeddings alike; make them differ
        if isinstance(embedding, torch.nn.Embedding):
            torch.nn.init.normal_(embedding.weight)
    ids = torch.tensor([[0, 17, 42, 9, 63, 2]])
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.mean(1)
        assert torch.allclose(TurnVector(model)(ids), expected, atol=1e-5)


def test_an_encoder_outside_the_bert_family_is_refused_at_export_naming_what_it_lacks(tmp_path):
    from transformers import DistilBertConfig, DistilBertModel

    from callqa.training.export import ExportError
    from callqa.training.export.sentence import export_sentence_encoder

    DistilBertModel(DistilBertConfig(vocab_size=99, dim=32, n_layers=1, n_heads=4, hidden_dim=64)).save_pretrained(
        tmp_path / "distil")
    with pytest.raises(ExportError, match="DistilBertModel is not a BERT-family encoder \\(it has no encoder.layer\\)"):
        export_sentence_encoder(tmp_path / "distil", tmp_path / "out")
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_the_exported_graph_computes_the_pretrained_layers_mean_pooled(shared_encoder, tmp_path):
    # The bundle's graph is written for one unpadded text (no mask; callqa.training.export.sentence.TurnVector), not
    # traced through transformers: it must still compute what the pretrained layers compute.
    import numpy as np
    import torch
    from transformers import AutoModel

    from callqa.training.export.sentence import export_sentence_encoder

    folder = export_sentence_encoder(shared_encoder, tmp_path / "fp32", layers=2, int8=False)
    exported = OnnxSentenceEncoder(folder, remember=0)
    model = AutoModel.from_pretrained(str(shared_encoder)).eval()
    texts = ["您好，请问有什么可以帮您", "这个不归我们管，您去问别人吧", "好"]
    expected = []
    for text in texts:
        ids = torch.tensor([exported.tokenizer.encode(text).ids])
        with torch.no_grad():
            layers = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True).hidden_states
        expected.append(layers[2][0].mean(0).numpy())
    expected = np.array(expected) / np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.abs(exported.encode(texts) - expected).max() < 1e-5


def test_a_sentence_encoder_exported_before_the_one_text_graph_still_embeds_with_its_prefix(shared_encoder, tmp_path):
    # Bundles exported before 2026-12-06 carry a graph that takes an attention mask too, and put "query: " before
    # each text: they still score (a card that names no prefix accepts them).
    import numpy as np
    import torch

    class MeanOfEmbeddings(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(50_000, 8)

        def forward(self, input_ids, attention_mask):
            mask = attention_mask.unsqueeze(-1).float()
            return (self.embed(input_ids) * mask).sum(1) / mask.sum(1)

    module, folder = MeanOfEmbeddings().eval(), tmp_path / "old"
    folder.mkdir()
    ids = torch.ones((1, 4), dtype=torch.long)
    torch.onnx.export(module, (ids, torch.ones_like(ids)), str(folder / "model.onnx"), dynamo=False,
                      input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                      dynamic_axes={"input_ids": {0: "texts", 1: "tokens"}, "attention_mask": {0: "texts", 1: "tokens"}})
    (folder / "tokenizer.json").symlink_to(shared_encoder / "tokenizer.json")
    (folder / "encoder.json").write_text('{"base": "e5", "layers": 1, "int8": true}', encoding="utf-8")
    old = OnnxSentenceEncoder(folder, remember=0)
    assert old.prefix == "query: "
    ids = torch.tensor([old.tokenizer.encode("query: 请稍等").ids])
    with torch.no_grad():
        expected = module(ids, torch.ones_like(ids))[0].numpy()
    assert np.allclose(old.encode(["请稍等"])[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert _card(tmp_path, old, card=dict(CARD, sentence_layers=1)).encoder is old


def test_the_encoder_remembers_the_texts_it_embedded_and_gives_them_the_same_vectors(encoder):
    import numpy as np

    remembering = OnnxSentenceEncoder(sentence_encoder_folder(), remember=2)
    embedded: list[list[str]] = []
    run = remembering._embed
    remembering._embed = lambda texts: embedded.append(list(texts)) or run(texts)
    texts = ["您好，请问有什么可以帮您", "这个不归我们管", "请稍等，我帮您查一下"]
    first = remembering.encode(texts)
    again = remembering.encode([texts[2], texts[0], texts[1]])
    # The last two texts were remembered (at most 2); the first was forgotten and embedded again.
    assert embedded == [texts, [texts[0]]]
    assert np.allclose(again, first[[2, 0, 1]], atol=1e-6)
    assert np.allclose(first, encoder.encode(texts), atol=1e-6)
