"""Turn-level heads (scope: turn): schema, token → turn ids, pooling, masking, training, ONNX parity, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from servers import CHROMIUM, reviewing, serve, stop

from callqa.calls import Call, Votes
from callqa.jsonl import load_calls, read_calls, write_calls
from callqa.metrics import jsd, per_dialogue_mean, rnss, turn_head_metrics
from callqa.render import CallEncoder, RenderSpec, aggregate_turns, render_turns
from callqa.schema import LabelSchema, SchemaError, load_schema

from conftest import SAMPLE

SCHEMA = {
    "name": "turns-test",
    "heads": {
        "attitude": {"kind": "ordinal", "display": "服务态度", "classes": {1: "差", 2: "较差", 3: "一般", 4: "好", 5: "很好"}},
        "apology": {"scope": "turn", "speaker": "agent", "kind": "multiclass", "display": "致歉",
                    "classes": {"yes": "致歉", "no": "无"}},
        "problem": {"scope": "turn", "speaker": "customer", "kind": "multiclass", "display": "提出问题",
                    "classes": {"first": "首次提出", "more": "补充", "none": "无"}},
    },
}
APOLOGY = ("不好意思", "抱歉", "对不起")


def turn_labelled(call: Call, i: int) -> Call:
    """A sample call with only its attitude label, and turn labels: agent apologies, the customer's first turn;
    every third turn unlabeled (for masking) and some labels as votes (for distributions)."""
    turns, seen_customer = [], False
    for j, turn in enumerate(call.turns):
        labels = {}
        if (i + j) % 3:
            if turn.speaker == "agent":
                yes = any(a in turn.text for a in APOLOGY)
                labels["apology"] = Votes(votes={"yes": 2, "no": 1}) if yes and j % 2 else ("yes" if yes else "no")
            else:
                labels["problem"] = "more" if seen_customer else "first"
        seen_customer |= turn.speaker == "customer"
        turns.append(turn.model_copy(update={"labels": labels}))
    return call.model_copy(update={"turns": turns, "labels": {"attitude": call.labels.get("attitude")}})


@pytest.fixture(scope="module")
def turn_data(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(schema file, train file, validation file)."""
    directory = tmp_path_factory.mktemp("turn-data")
    schema = directory / "turns.yaml"
    schema.write_text(yaml.safe_dump(SCHEMA, allow_unicode=True, sort_keys=False), encoding="utf-8")
    calls = [turn_labelled(c, i) for i, c in enumerate(load_calls(SAMPLE)[:72])]
    write_calls(directory / "train.jsonl", calls[:48])
    write_calls(directory / "validation.jsonl", calls[48:])
    return schema, directory / "train.jsonl", directory / "validation.jsonl"


def test_turn_heads_are_kept_apart_from_call_heads_and_round_trip():
    schema = LabelSchema.model_validate(SCHEMA)
    assert schema.head_names == ["attitude"]
    assert [h.name for h in schema.turn_heads] == ["apology", "problem"]
    assert LabelSchema.model_validate_json(schema.model_dump_json()) == schema
    assert [h.name for h in schema.narrowed(["attitude", "problem"]).all_heads] == ["attitude", "problem"]
    stc3 = load_schema("stc3")
    assert {h.name: h.speaker for h in stc3.turn_heads} == {"customer_nugget": "customer", "helpdesk_nugget": "agent"}


def test_a_speaker_on_a_call_head_and_turn_labels_in_the_wrong_place_are_named(tmp_path):
    bad = {"name": "x", "heads": {"a": {"kind": "multiclass", "display": "a", "classes": ["x", "y"], "speaker": "agent"}}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(SchemaError, match="heads.a.*speaker: only a head with scope: turn"):
        LabelSchema.from_yaml(path)

    schema = LabelSchema.model_validate(SCHEMA)
    call = Call.model_validate({"call_id": "c", "turns": [
        {"speaker": "agent", "text": "您好", "labels": {"problem": "first"}},
        {"speaker": "customer", "text": "网页打不开", "labels": {"problem": "often", "reason": ["attitude"]}}],
        "labels": {"apology": "yes"}})
    problems = dict(schema.check_turn_labels(call.turns))
    assert "labels customer turns; this is a agent turn" in problems["turns[0].labels.problem"]
    assert "'often' is not a class" in problems["turns[1].labels.problem"]
    assert "turns[1].labels.reason" not in problems  # a reviewer's reason is not a head label
    assert "a turn head: its labels go on turns" in dict(schema.check_labels(call.labels))["labels.apology"]

    data = tmp_path / "calls.jsonl"
    write_calls(data, [call])
    lines = {(e.line, e.field) for e in read_calls(data, schema).errors}
    assert {(1, "turns[0].labels.problem"), (1, "turns[1].labels.problem"), (1, "labels.apology")} <= lines


def test_every_token_belongs_to_the_turn_whose_line_holds_it(tiny_tokenizer_file):
    call = load_calls(SAMPLE)[3]
    encoder = CallEncoder.from_file(tiny_tokenizer_file, RenderSpec(prefix="query: ", max_length=40, stride=8))
    encoded = encoder.encode(call)
    lines = render_turns(call, encoder.spec)
    assert len(encoded.windows) > 2 and encoded.n_turns == len(call.turns)
    seen = set()
    for window, turns in zip(encoded.windows, encoded.turn_ids, strict=True):
        assert len(window) == len(turns)
        assert turns[0] == -1 and turns[-1] == -1  # [CLS] … [SEP]
        for token_id, turn in zip(window, turns):
            if turn >= 0:
                token = encoder.tokenizer.id_to_token(token_id)
                assert token == "[UNK]" or token in lines[turn], (token, turn)
                seen.add(turn)
    assert seen == set(range(len(call.turns)))
    # Rendering did not change: the body tokens are the ones the call's text gives.
    assert [t for w in encoded.windows[:1] for t in w[len(encoder._prefix) + 1: -1]] == encoder.body_ids(call)[: encoder.body_length]


def test_turn_pooling_is_the_mean_of_each_turns_token_states_and_of_its_token_logits(tiny_encoder_dir, turn_data):
    import torch

    from callqa.training.data import build_dataset, collate
    from callqa.training.model import CallScorer, load_encoder

    schema = LabelSchema.from_yaml(turn_data[0])
    calls = load_calls(turn_data[1])[:3]
    encoder = CallEncoder.from_file(tiny_encoder_dir / "tokenizer.json", RenderSpec(max_length=32, stride=8))
    rows = build_dataset(calls, encoder, schema).to_list()
    batch = collate(rows, schema, encoder.pad_id)
    torch.manual_seed(0)
    model = CallScorer(load_encoder(str(tiny_encoder_dir)), schema).eval()
    with torch.no_grad():
        out = model(**batch.model_inputs())
        hidden = model.hidden_states(batch.input_ids, batch.attention_mask)
    assert batch.n_turns == sum(len(c.turns) for c in calls)
    assert out["apology"].shape == (batch.n_turns, 2) and out["attitude"].shape == (3, 5)
    # By hand: gather every token of a turn over all windows, average the states, apply the head.
    head = model.heads["problem"]
    index = batch.turn_index.numpy()
    unreached = 0
    for turn in range(batch.n_turns):
        states = hidden[torch.from_numpy(index == turn)]
        if not len(states):  # cut off by max_windows: no prediction, and no loss
            assert batch.masks["problem"][turn] == 0 and batch.masks["apology"][turn] == 0
            unreached += 1
            continue
        with torch.no_grad():
            expected = head(states.mean(0))
        torch.testing.assert_close(out["problem"][turn], expected, rtol=1e-5, atol=1e-6)
    assert 0 < unreached < batch.n_turns / 2  # the first sample call is long: 16 windows of 32 tokens don't hold it
    # What the ONNX graph returns (per-token logits), averaged per turn in numpy, is the same thing.
    with torch.no_grad():
        token_logits = head(hidden).numpy()
    offsets = np.cumsum([0, *[len(c.turns) for c in calls]])
    windows = 0
    for i, row in enumerate(rows):
        n = len(row["windows"])
        per_window = [token_logits[windows + w, : len(row["windows"][w])] for w in range(n)]
        got = aggregate_turns(per_window, row["turn_ids"], len(calls[i].turns))
        reached = np.isfinite(got).all(-1)
        np.testing.assert_allclose(got[reached], out["problem"][offsets[i]: offsets[i + 1]].numpy()[reached],
                                   rtol=1e-5, atol=1e-6)
        windows += n


def test_turns_without_a_label_or_of_the_other_speaker_are_masked(tiny_encoder_dir, turn_data):
    import torch

    from callqa.training.config import LossConfig
    from callqa.training.data import build_dataset, collate
    from callqa.training.model import head_losses

    schema = LabelSchema.from_yaml(turn_data[0])
    calls = load_calls(turn_data[1])[:4]
    spec = RenderSpec(max_length=32, stride=8, max_windows=64)  # every turn reached: masks come from labels alone
    encoder = CallEncoder.from_file(tiny_encoder_dir / "tokenizer.json", spec)
    batch = collate(build_dataset(calls, encoder, schema).to_list(), schema, encoder.pad_id)
    turns = [t for c in calls for t in c.turns]
    expected = [float(t.speaker == "agent" and "apology" in t.labels) for t in turns]
    assert batch.masks["apology"].tolist() == expected and 0 < sum(expected) < len(turns)
    voted = [i for i, t in enumerate(turns) if isinstance(t.labels.get("apology"), Votes)]
    assert batch.targets["apology"][voted].tolist()[0] \
        == pytest.approx([2 / 3, 1 / 3])
    logits = {h.name: torch.randn(len(turns), h.size, requires_grad=True) for h in schema.turn_heads}
    losses = head_losses(logits, batch.targets, batch.masks, schema, LossConfig())
    sum(losses.values()).backward()
    grad = logits["apology"].grad.abs().sum(-1)
    assert all((g > 0) == bool(m) for g, m in zip(grad.tolist(), expected))


def test_jsd_and_rnss_match_a_hand_computation_on_three_turns():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    q = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.1, 0.3, 0.6]])
    m = (p[2] + q[2]) / 2
    kl = lambda a: sum(a[i] * np.log2(a[i] / m[i]) for i in range(3) if a[i] > 0)  # noqa: E731
    np.testing.assert_allclose(jsd(p, q), [1.0, 0.0, (kl(p[2]) + kl(q[2])) / 2])
    np.testing.assert_allclose(rnss(p, q), [1.0, 0.0, np.sqrt((0.01 + 0 + 0.01) / 2)])
    # STC-3 averages per dialogue first: turns 0 and 1 are one dialogue, turn 2 another.
    assert per_dialogue_mean(jsd(p, q), np.array([0, 0, 1])) == pytest.approx((0.5 + (kl(p[2]) + kl(q[2])) / 2) / 2)
    head = LabelSchema.model_validate(SCHEMA).turn_head("problem")
    p_nan = np.vstack([p, np.full(3, np.nan)])  # a turn the model did not reach is left out, not counted as wrong
    metrics = turn_head_metrics(head, p_nan, np.vstack([q, q[:1]]), np.array([0, 0, 1, 1]))
    assert metrics["n"] == 3 and metrics["dialogues"] == 2 and metrics["rnss"] == pytest.approx((0.5 + 0.1) / 2)


@pytest.fixture(scope="module")
def turn_run(tmp_path_factory, tiny_encoder_dir, turn_data) -> Path:
    from callqa.training.config import TrainConfig
    from callqa.training.trainer import train

    config = TrainConfig.model_validate({
        "schema": str(turn_data[0]), "encoder": str(tiny_encoder_dir),
        "render": {"prefix": "query: ", "max_length": 48, "stride": 8, "max_windows": 3},
        "optim": {"max_steps": 12, "batch_size": 8, "lr": 2e-3, "head_lr": 2e-2, "warmup_ratio": 0.0, "dropout": 0.0},
        "eval": {"metric": "problem.jsd", "every_steps": 6}, "seed": 0,
    })
    out = tmp_path_factory.mktemp("turn-run") / "run"
    train(config, [turn_data[1]], out, validation=[turn_data[2]], progress=False, log=lambda *_: None)
    return out


def test_training_learns_turn_heads_and_reports_jsd_and_rnss(turn_run):
    run = json.loads((turn_run / "run.json").read_text(encoding="utf-8"))
    metrics = run["validation_metrics"]
    for head in ("apology", "problem"):
        assert 0 <= metrics[head]["jsd"] <= 1 and 0 <= metrics[head]["rnss"] <= 1 and metrics[head]["n"] > 20
    history = run["history"]
    assert history[-1]["problem.jsd"] < history[0]["problem.jsd"] or history[0]["problem.jsd"] < 0.2
    assert "attitude" in metrics and metrics["attitude"]["nmd"] > 0


@pytest.fixture(scope="module")
def turn_bundle(turn_run, tmp_path_factory) -> Path:
    from callqa.training.export import GateConfig, export_run

    out = tmp_path_factory.mktemp("turn-bundle") / "bundle"
    export_run(turn_run, out, version="turns", store=False, gate=GateConfig(max_nmd_increase=1.0, max_macro_f1_drop=1.0),
               log=lambda *_: None)
    return out


def test_onnx_turn_outputs_match_pytorch_and_evaluation_compares_turn_baselines(turn_run, turn_bundle, turn_data, tmp_path):
    from callqa.bundle import read_bundle_info
    from callqa.scorer import OnnxScorer, stack_turn_probs
    from callqa.training.data import build_dataset
    from callqa.training.evaluate import evaluate_run, load_run
    from callqa.training.trainer import predict_rows

    bundle = read_bundle_info(turn_bundle)
    parity = json.loads((turn_bundle / "parity.json").read_text())["pytorch_vs_onnx_fp32"]
    assert set(parity["max_abs_window_output"]) >= {"token_logits.apology", "token_logits.problem"}
    assert max(parity["max_abs_window_output"].values()) < 1e-4
    assert "apology" in bundle.metrics["validation"]["fp32"] and bundle.schema_.turn_heads

    calls = load_calls(turn_data[2])
    scorer = OnnxScorer.from_bundle(turn_bundle, model_file="model.onnx")
    predictions = scorer.predict(calls)
    _, schema, model, encoder = load_run(turn_run)
    import torch

    torch_probs, _ = predict_rows(model, build_dataset(calls, encoder, schema).to_list(), schema, encoder.pad_id, 8,
                                  torch.device("cpu"))
    for head in schema.turn_heads:
        onnx_probs, _ = stack_turn_probs(predictions, head)
        applies = np.array([head.applies_to(t) for c in calls for t in c.turns])
        np.testing.assert_allclose(onnx_probs[applies], torch_probs[head.name][applies], atol=1e-4)
        assert np.isnan(onnx_probs[~applies]).all()  # another speaker's turn has no prediction
    first = predictions[0].turn_probs
    agent = [t.speaker == "agent" for t in calls[0].turns]
    assert all(p is None for p, a in zip(first["apology"], agent) if not a)
    assert first["apology"][agent.index(True)] is not None
    if predictions[0].truncated:  # turns after the last window have no prediction either
        assert first["apology"][max(i for i, a in enumerate(agent) if a)] is None

    result = evaluate_run(turn_run, [turn_data[2]], out=tmp_path / "eval", log=lambda *_: None)
    for system in ("model", "prior", "tfidf_lr"):
        assert {"jsd", "rnss", "accuracy"} <= set(result["metrics"][system]["problem"])
    # Position decides `problem` (first customer turn or not): the TF-IDF + position baseline must beat the prior.
    assert result["metrics"]["tfidf_lr"]["problem"]["jsd"] < result["metrics"]["prior"]["problem"]["jsd"]
    line = json.loads((tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()[0])
    assert len(line["turns"]["problem"]) == len(calls[0].turns)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(scripts/install-test-deps.sh installs it)")
def test_served_turn_heads_show_as_badges_on_the_reviewers_turns(turn_bundle, turn_data, tmp_path):
    from playwright.sync_api import expect

    calls = load_calls(turn_data[2])[:2]
    server = serve(turn_bundle, tmp_path, scorecard=None)  # the default card scores heads this model lacks
    try:
        body = [json.loads(c.model_dump_json(exclude={"labels"})) for c in calls]
        status, scored = server.post("/score", {"calls": body, "store": True}, key="scorer")
        assert status == 200, scored
        turns = scored["results"][0]["turns"]
        assert set(turns) == {"apology", "problem"} and len(turns["apology"]) == len(calls[0].turns)
        # Null where the head does not label the turn's speaker; a level and its probability where it does.
        assert all((s is None) == (t.speaker != "agent") for s, t in zip(turns["apology"], calls[0].turns)
                   if s is not None or t.speaker != "agent")
        expected = [[s for s in (turns["apology"][i], turns["problem"][i]) if s] for i in range(len(calls[0].turns))]
        with reviewing(server, "anna", calls[0].call_id) as page:
            rows = page.locator("#transcript li")
            expect(rows).to_have_count(len(calls[0].turns))
            for i, scores in enumerate(expected[:12]):
                badges = rows.nth(i).locator(".nugget")
                expect(badges).to_have_count(len(scores))
                for badge, score in zip(badges.all(), scores):
                    assert badge.text_content() == score["level_name"]
                    assert f"{round(score['confidence'] * 100)}%" in badge.get_attribute("title")
    finally:
        stop(server.process)


def test_the_evaluation_report_shows_turn_heads_next_to_their_baselines(turn_run, turn_data, tmp_path):
    from callqa.training.evaluate import evaluate_run

    evaluate_run(turn_run, [turn_data[2]], out=tmp_path / "eval", log=lambda *_: None)
    page = (tmp_path / "eval" / "report.html").read_text(encoding="utf-8")
    section = page[page.index("<h2>提出问题"):]
    assert "逐句头（客户的句子）" in section and "jsd ↓" in section
    assert all(f"<tr><th>{system}</th>" in section for system in ("model", "prior", "tfidf_lr"))


def test_bench_on_a_bundle_with_turn_heads_reports_their_jsd_beside_call_heads_nmd(turn_bundle):
    from callqa.training.bench import bench

    # KeyError on main: bench scored schema.heads and compared schema.all_heads. No --data: the run's validation
    # calls, which the export gate measured.
    result = bench(turn_bundle, threads=1, log=lambda *_: None)
    exported = json.loads((turn_bundle / "bundle.json").read_text(encoding="utf-8"))["metrics"]["validation"]
    for engine in result["engines"]:
        assert set(engine["quality"]["problem"]) == {"jsd"} and set(engine["quality"]["attitude"]) == {"nmd"}
        assert set(engine["quality_delta_vs_fp32"]) >= {"apology", "problem", "attitude"}
    fp32 = next(e for e in result["engines"] if e["engine"] == "ort-fp32")
    # The same calls as the export gate's, the same function: the same JSD as the bundle records for its fp32 graph.
    assert fp32["quality"]["problem"]["jsd"] == pytest.approx(exported["fp32"]["problem"]["jsd"], abs=1e-6)
    assert fp32["quality_delta_vs_fp32"]["problem"]["jsd"] == 0


def test_a_card_for_another_schema_is_refused_in_one_line_before_any_call_is_scored(turn_bundle, turn_data, tmp_path):
    """The default card is written for schema callcenter; this bundle's is turns-test. Every way in refuses it with
    one line naming the card, its schema and the bundle's (on main, only `callqa score`'s Ray path checked it)."""
    from typer.testing import CliRunner

    from callqa.cli import app

    runner = CliRunner()
    calls = str(turn_data[2])
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    tries = {
        "scorecard check": ["scorecard", "check", "default", "--bundle", str(turn_bundle)],
        "score": ["score", calls, "--out", str(tmp_path / "scored"), "--bundle", str(turn_bundle)],
        "score --into store": ["score", calls, "--into", "store", "--bundle", str(turn_bundle), "--db", db,
                               "--scorecard", "default"],
        "serve": ["serve", "--bundle", str(turn_bundle), "--port", "1"],
    }
    for command, args in tries.items():
        done = runner.invoke(app, args)
        lines = [line for line in done.output.splitlines() if line.strip()]
        assert done.exit_code != 0, (command, done.output)
        assert len(lines) == 1 and "'default' is for schema 'callcenter'" in lines[0] and "'turns-test'" in lines[0], \
            (command, done.output)
    assert not (tmp_path / "scored").exists() or not list((tmp_path / "scored").glob("part-*"))
    assert runner.invoke(app, ["scorecard", "check", "default"]).exit_code == 0
