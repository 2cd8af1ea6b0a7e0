"""`callqa retrain`: the reviews since the last run become training data, both models are judged on the same
held-out calls, and a bundle is exported only when the new model is no worse on every head."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.schema import load_schema
from callqa.serving.store import Reviewer, ReviewStore

from conftest import SAMPLE, score_randomly


def _store_with_reviews(tmp_path, n_reviews: int) -> str:
    url = f"sqlite:///{tmp_path / 'reviews.db'}"
    schema = load_schema("callcenter")
    calls = [c.model_copy(update={"labels": {}}) for c in load_calls(SAMPLE)[100:112]]
    store = ReviewStore(url)
    store.add_scored(calls, score_randomly(calls, seed=5), "callqa-scorer:tiny", schema)
    for i, call in enumerate(calls[:n_reviews]):
        store.submit(call.call_id, Reviewer("key-a", "Anna"), 0, {"attitude": str(1 + i % 5)}, schema)
    store.engine.dispose()
    return url


def test_retrain_trains_on_the_reviews_and_exports_only_a_model_no_worse_than_the_last(tiny_run, tiny_data, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = _store_with_reviews(tmp_path, 6)
    runner = CliRunner()
    base = ["retrain", "--run", str(tiny_run), "--db", url, "--max-steps", "2", "--no-store", "--device", "cpu"]

    # A gate no model passes (the new one would have to be better by a whole NMD): trained, compared, not exported.
    refused = runner.invoke(app, [*base, "--out", "runs/strict", "--max-nmd-increase", "-1"])
    assert refused.exit_code == 1, refused.output
    assert "no bundle was exported" in refused.output and "the new model NMD" in refused.output
    reviews = load_calls([tmp_path / "data" / "reviews" / "strict.jsonl"])
    assert len(reviews) == 6 and {c.meta["source"] for c in reviews} == {"review"}
    run = json.loads((tmp_path / "runs" / "strict" / "run.json").read_text(encoding="utf-8"))
    assert [d["path"] for d in run["data"]][-1].endswith("data/reviews/strict.jsonl")
    assert run["n_train"] == 48 + 6  # the last run's training calls plus the reviewed ones
    assert not (tmp_path / "bundles").exists()
    summary = json.loads((tmp_path / "runs" / "strict" / "retrain" / "retrain.json").read_text(encoding="utf-8"))
    assert summary["bundle"] is None and summary["failures"] and summary["n_heldout"] == 24

    # The export gate's own limits: exported, and the comparison is each model's evaluation on the held-out calls.
    lenient = runner.invoke(app, [*base, "--out", "runs/next", "--max-nmd-increase", "1", "--max-macro-f1-drop", "1",
                                  "--bundle", "bundles/next"])
    assert lenient.exit_code == 0, lenient.output
    assert (tmp_path / "bundles" / "next" / "bundle.json").exists()
    compared = json.loads((tmp_path / "runs" / "next" / "retrain" / "retrain.json").read_text(encoding="utf-8"))
    old = json.loads((tmp_path / "runs" / "next" / "retrain" / "old" / "metrics.json").read_text(encoding="utf-8"))
    new = json.loads((tmp_path / "runs" / "next" / "retrain" / "new" / "metrics.json").read_text(encoding="utf-8"))
    assert old["data"] == new["data"] and old["data"][0]["path"] == str(tiny_data[1])  # the same held-out calls
    attitude = compared["deltas"]["attitude"]["nmd"]
    assert abs(attitude - (new["metrics"]["model"]["attitude"]["nmd"] - old["metrics"]["model"]["attitude"]["nmd"])) < 1e-9


def test_retrain_with_no_new_reviews_keeps_the_last_model(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = _store_with_reviews(tmp_path, 0)
    result = CliRunner().invoke(app, ["retrain", "--run", str(tiny_run), "--db", url, "--out", "runs/none"])
    assert result.exit_code == 0, result.output
    assert "nothing to retrain on" in result.output and not (tmp_path / "runs" / "none").exists()
