"""Training on a tiny random BERT built in the test: seconds on a CPU."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from callqa.cli import app
from callqa.jsonl import CallFileError, load_calls
from callqa.metrics import nmd, rsnod
from callqa.redact import redact
from callqa.render import CallEncoder, RenderSpec, aggregate_windows
from callqa.schema import load_schema
from callqa.training.config import ConfigError, TrainConfig
from callqa.training.data import build_dataset, collate
from callqa.training.evaluate import evaluate_run
from callqa.training.model import CallScorer, aggregate_windows_torch, head_losses, load_encoder
from callqa.training.trainer import predict_rows, train

from conftest import SAMPLE


def tiny_config(encoder_dir: Path, **optim) -> TrainConfig:
    return TrainConfig.model_validate({
        "encoder": str(encoder_dir),
        "render": {"max_length": 64, "stride": 16, "max_windows": 4},
        "optim": {"epochs": 1, "batch_size": 8, "lr": 2e-3, "head_lr": 1e-2, "warmup_ratio": 0.0, "dropout": 0.0, **optim},
        "eval": {"metric": "mean.nmd", "patience": 5},
        "seed": 0,
    })


@pytest.fixture(scope="module")
def small_train_file(tiny_data) -> Path:
    """The first 48 sample calls (conftest's tiny training file)."""
    return tiny_data[0]


def _train_loss(model, config, encoder_dir, data_file) -> float:
    schema = config.label_schema()
    enc = CallEncoder.from_file(encoder_dir / "tokenizer.json", config.render)
    rows = build_dataset(load_calls(data_file), enc, schema).to_list()
    _, loss = predict_rows(model, rows, schema, enc.pad_id, 16, torch.device("cpu"), config.loss)
    return loss


def test_an_encoder_stored_in_float16_trains_evaluates_and_exports_in_float32(tiny_encoder_dir, tiny_data, tmp_path):
    """What `callqa model pull` writes (float16 weights) is trained like any checkpoint: the weights load as float32
    under float32 heads, whatever the file stores or its config says (before: 'mat1 and mat2 must have the same
    dtype, but got Half and Float' at the first step)."""
    import shutil

    from safetensors.torch import load_file, save_file

    half = tmp_path / "half-encoder"
    shutil.copytree(tiny_encoder_dir, half)
    weights = load_file(str(half / "model.safetensors"))
    save_file({k: v.half() for k, v in weights.items()}, str(half / "model.safetensors"))
    config = json.loads((half / "config.json").read_text(encoding="utf-8"))
    config.pop("dtype", None), config.pop("torch_dtype", None)
    (half / "config.json").write_text(json.dumps(config), encoding="utf-8")

    assert next(load_encoder(str(half)).parameters()).dtype == torch.float32
    run = tmp_path / "run"
    train(tiny_config(half, max_steps=2), [tiny_data[0]], run, validation=[tiny_data[1]], progress=False,
          log=lambda *_: None)
    assert all(p.dtype == torch.float32 for p in CallScorer.load(run / "model").parameters())
    assert evaluate_run(run, [tiny_data[1]], with_baselines=False, log=lambda *_: None)["metrics"]


def test_loss_falls_when_training_a_tiny_bert(tiny_encoder_dir, small_train_file, tmp_path):
    config = tiny_config(tiny_encoder_dir, max_steps=60, epochs=15)
    torch.manual_seed(config.seed)
    before = _train_loss(CallScorer(load_encoder(str(tiny_encoder_dir)), config.label_schema()), config,
                         tiny_encoder_dir, small_train_file)
    info = train(config, [small_train_file], tmp_path / "run", validation=[small_train_file], progress=False, log=lambda *_: None)
    after = _train_loss(CallScorer.load(tmp_path / "run" / "model"), config, tiny_encoder_dir, small_train_file)
    assert info.steps == 60
    assert after < 0.8 * before, (before, after)
    assert all(np.isfinite(h.val_loss) for h in info.history)
    saved = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert saved["render"]["max_length"] == 64 and len(saved["thresholds"]["topics"]) == 11
    assert (tmp_path / "run" / "tokenizer.json").exists() and not (tmp_path / "run" / "checkpoint").exists()


def test_head_missing_on_some_calls_is_masked():
    schema = load_schema("callcenter")
    from callqa.training.config import LossConfig

    logits = {h.name: torch.randn(3, h.size, requires_grad=True) for h in schema.heads}
    targets = {h.name: torch.zeros(3, h.size) for h in schema.heads}
    masks = {h.name: torch.tensor([1.0, 0.0, 1.0]) for h in schema.heads}
    for h in schema.heads:
        targets[h.name][[0, 2], 0] = 1.0
    masks["empathy"] = torch.zeros(3)  # no call in the batch has empathy
    losses = head_losses(logits, targets, masks, schema, LossConfig())
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["empathy"].item() == 0.0
    sum(losses.values()).backward()
    # The unlabeled call (row 1) gets no gradient from any head.
    assert all(logits[h.name].grad[1].abs().sum() == 0 for h in schema.heads)
    assert logits["attitude"].grad[0].abs().sum() > 0


def test_sample_calls_with_missing_heads_give_finite_losses(tiny_encoder_dir):
    schema = load_schema("callcenter")
    calls = load_calls(SAMPLE)[:40]
    assert any("empathy" not in c.labels for c in calls) or any("topics" not in c.labels for c in calls)
    enc = CallEncoder.from_file(tiny_encoder_dir / "tokenizer.json", RenderSpec(max_length=64, stride=16))
    rows = build_dataset(calls, enc, schema).to_list()
    batch = collate(rows, schema, enc.pad_id)
    model = CallScorer(load_encoder(str(tiny_encoder_dir)), schema)
    logits = model(batch.input_ids, batch.attention_mask, batch.call_index, batch.weights, batch.n_calls)
    from callqa.training.config import LossConfig

    losses = head_losses(logits, batch.targets, batch.masks, schema, LossConfig(pos_weight=True))
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())


def test_torch_window_mean_equals_the_core_numpy_formula():
    rng = np.random.default_rng(0)
    call_index = np.array([0, 0, 0, 1, 2, 2])
    weights = np.array([200, 150, 37, 12, 100, 5])
    logits = rng.normal(size=(6, 5))
    got = aggregate_windows_torch(torch.tensor(logits), torch.tensor(call_index), torch.tensor(weights), 3).numpy()
    for c in range(3):
        sel = call_index == c
        np.testing.assert_allclose(got[c], aggregate_windows(logits[sel], weights[sel]), rtol=1e-12)


def test_nmd_and_rsnod_on_known_distributions():
    p = np.array([[1.0, 0, 0, 0, 0], [0.2, 0.2, 0.2, 0.2, 0.2]])
    q = np.array([[0, 0, 0, 0, 1.0], [0.2, 0.2, 0.2, 0.2, 0.2]])
    np.testing.assert_allclose(nmd(p, q), [1.0, 0.0])
    np.testing.assert_allclose(rsnod(p, q), [1.0, 0.0])
    # One level off on a 5-level scale: NMD = 1/4.
    np.testing.assert_allclose(nmd(np.array([[0, 1.0, 0, 0, 0]]), np.array([[0, 0, 1.0, 0, 0]])), [0.25])


def test_evaluate_writes_every_heads_metrics_and_baselines(tiny_encoder_dir, small_train_file, tmp_path):
    config = tiny_config(tiny_encoder_dir, max_steps=4)
    train(config, [small_train_file], tmp_path / "run", progress=False, log=lambda *_: None)
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("\n".join(SAMPLE.read_text(encoding="utf-8").splitlines()[300:340]) + "\n", encoding="utf-8")
    result = evaluate_run(tmp_path / "run", [test_file], log=lambda *_: None)
    written = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert written["n_calls"] == 40 and set(written["metrics"]) == {"model", "prior", "tfidf_lr"}
    for system in written["metrics"].values():
        for head in ("attitude", "empathy", "resolution"):
            assert {"nmd", "rsnod", "qwk", "mae", "accuracy", "ece", "confusion"} <= set(system[head])
        assert {"micro_f1", "macro_f1", "ece"} <= set(system["topics"])
    report = (tmp_path / "run" / "eval" / "report.html").read_text(encoding="utf-8")
    assert all(name in report for name in ("服务态度", "共情能力", "问题解决", "投诉主题", "tfidf_lr", "data:image/png"))
    assert len((tmp_path / "run" / "eval" / "predictions.jsonl").read_text().splitlines()) == 40
    assert result["nmd_by_length"]["attitude"]

    # The report a QA lead can read: warnings first, a glossary, Chinese class names, every confusion count, topics'
    # precision/recall at the tuned thresholds, and the worst calls with redacted excerpts.
    assert "评估集只有 40 通" in report and "指标说明" in report and "越低越好" in report
    matrix = written["metrics"]["model"]["attitude"]["confusion"]
    assert "1 很差" in report and all(f">{v}</td>" in report for row in matrix for v in row)
    per_label = written["metrics"]["model"]["topics"]["per_label"]
    assert set(per_label) == set(load_schema("callcenter")["topics"].class_ids)
    assert {"precision", "recall", "f1", "support", "threshold"} <= set(per_label["billing"])
    worst = result["worst"]["attitude"]
    assert 0 < len(worst) <= 10 and [w["error"] for w in worst] == sorted((w["error"] for w in worst), reverse=True)
    assert worst[0]["call_id"] in report and "误差最大的" in report
    calls = {c.call_id: c for c in load_calls(test_file)}
    first_turn = calls[worst[0]["call_id"]].turns[0].text
    assert redact(first_turn)[:20] in report


def test_tfidf_baseline_beats_the_prior_on_the_sample():
    from callqa.training import baselines

    calls = load_calls(SAMPLE)
    schema = load_schema("callcenter")
    train_calls, test_calls = calls[:280], calls[280:]
    q = baselines.targets(test_calls, schema)
    prior = baselines.prior(train_calls, test_calls, schema)
    tfidf = baselines.tfidf_lr(train_calls, test_calls, schema)
    keep = q["attitude"].sum(-1) > 0
    assert nmd(tfidf["attitude"][keep], q["attitude"][keep]).mean() < 0.7 * nmd(prior["attitude"][keep], q["attitude"][keep]).mean()


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("heads: [attitude, mood]\n", "unknown head"),
        ("eval: {metric: mood.nmd}\n", "eval.metric"),
        ("optim: {lr: -1}\n", "optim.lr"),
        ("render: {max_length: 64, stride: 40}\n", "stride"),
        ("schema: nosuch\n", "no schema 'nosuch'"),
        ("optimiser: {lr: 0.1}\n", "optimiser"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_yaml(path)


def test_bad_config_or_label_fails_before_training_starts(tiny_encoder_dir, tmp_path):
    bad_level = tmp_path / "bad.jsonl"
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:10]
    call = json.loads(lines[3])
    call["labels"]["attitude"] = 9
    lines[3] = json.dumps(call, ensure_ascii=False)
    bad_level.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CallFileError, match=r"bad.jsonl:4:labels.attitude: '9' is not a class"):
        train(tiny_config(tiny_encoder_dir), [bad_level], tmp_path / "run", progress=False, log=lambda *_: None)
    assert not (tmp_path / "run").exists()

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"encoder: {tiny_encoder_dir}\nheads: [attitude, mood]\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["train", "-c", str(cfg), "-d", str(SAMPLE), "-o", str(tmp_path / "run2")])
    assert res.exit_code == 1 and "unknown head(s) mood" in res.output and not (tmp_path / "run2").exists()


def test_training_resumes_from_its_checkpoint(tiny_encoder_dir, small_train_file, tmp_path):
    config = tiny_config(tiny_encoder_dir, max_steps=6).model_copy(
        update={"eval": TrainConfig.model_validate({"eval": {"every_steps": 3, "metric": "loss"}}).eval})
    messages = []

    def interrupt_on_second_eval(msg):
        messages.append(msg)
        if msg.startswith("step 6"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, [small_train_file], tmp_path / "run", progress=False, log=interrupt_on_second_eval)
    assert (tmp_path / "run" / "checkpoint" / "state.pt").exists() and not (tmp_path / "run" / "run.json").exists()
    resumed = []
    info = train(config, [small_train_file], tmp_path / "run", progress=False, log=resumed.append)
    assert any("resumed" in m and "step 3" in m for m in resumed)
    assert info.steps == 6 and [h.step for h in info.history] == [3, 6]
    assert not (tmp_path / "run" / "checkpoint").exists()


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "configs" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_training_configs_are_valid(path):
    config = TrainConfig.from_yaml(path)
    assert config.label_schema().heads


def test_train_in_a_log_prints_progress_lines_and_hints_that_survive_80_columns(tiny_encoder_dir, tiny_data, tmp_path):
    """Where no terminal redraws a bar (CI, `make demo > log`): plain step lines; the closing hint stays on one line
    and the metric tables keep whole headers and head names at 80 columns."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"encoder: {tiny_encoder_dir}\nrender: {{max_length: 64, stride: 16, max_windows: 4}}\n"
                   "optim: {batch_size: 8, warmup_ratio: 0.0}\n", encoding="utf-8")
    out = tmp_path / "a-rather-long-folder-name-for-this-run" / "run"
    res = CliRunner().invoke(app, ["train", "-c", str(cfg), "-d", str(tiny_data[0]), "-v", str(tiny_data[1]),
                                   "-o", str(out), "--max-steps", "3", "--seed", "7"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(line.startswith("train step 3/3 (epoch 1): loss ") and "eta" in line for line in lines), res.output
    assert f"next: callqa evaluate --run {out} --data TEST.jsonl" in lines[-1]
    assert "…" not in res.output and "resolution" in res.output and "accuracy" in res.output
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["steps"] == 3 and info["config"]["seed"] == 7


def test_log_progress_prints_every_n_steps_and_the_last():
    from callqa.training.loop import LogProgress

    printed = []
    progress = LogProgress(total=7, log=printed.append, every=3, seconds=3600)
    for step in range(1, 8):
        progress.update(step, epoch=1, loss=0.5)
    assert [line.split()[2] for line in printed] == ["3/7", "6/7", "7/7"]


def test_evaluating_on_a_file_without_calls_is_one_clear_line(tiny_run, tmp_path):
    empty = tmp_path / "test.jsonl"
    empty.write_text("", encoding="utf-8")
    res = CliRunner().invoke(app, ["evaluate", "--run", str(tiny_run), "--data", str(empty)])
    assert res.exit_code == 1 and res.output.strip() == f"error: {empty}: no calls to evaluate on"


def test_command_line_overrides_are_validated_like_the_recipe():
    """--metric (and --max-steps, --seed) reach the recipe through model_copy, which validates nothing: a misspelt
    metric must fail here, not at the first evaluation after the teacher's predictions and the first steps."""
    config = TrainConfig.from_yaml(Path(__file__).parent.parent / "configs" / "train" / "demo.yaml")
    assert config.overridden(max_steps=7, seed=3, metric="mean.gate").eval.metric == "mean.gate"
    with pytest.raises(ValueError, match="eval.metric 'atitude.nmd'"):
        config.overridden(metric="atitude.nmd")


def test_the_evaluation_report_reads_in_chinese():
    """A QA lead reads report.html too: beside metric keys (NMD, QWK), system names and ids, its text is Chinese."""
    import re

    from callqa.training import report

    source = (Path(report.__file__)).read_text(encoding="utf-8")
    html_text = " ".join(re.findall(r'f?"([^"]*<(?:h1|h2|caption|th|summary|b|p)[^"]*)"', source))
    words = re.findall(r">([^<>{}]*[A-Za-z]{4,}[^<>{}]*)<", html_text)
    allowed = {"callqa", "TF-IDF", "prior", "tfidf_lr", "model", "token"}
    assert not [w for w in words if not any(a in w for a in allowed)], words
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in meaning) for _, _, _, meaning in report.GLOSSARY)
