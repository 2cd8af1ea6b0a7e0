"""benchmarks/stc3_seeds.py: several seeds of a recipe, one JSON and one markdown table with mean ± sd, written into
the docs between markers; finished runs are reused; runs name their encoder by name and weight hash, not a path."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import yaml

from conftest import REPO, SAMPLE


def test_seeds_make_one_table_with_spread_and_a_rerun_reuses_the_runs(tmp_path, tiny_encoder_dir):
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    files = {}
    for name, part in (("train", lines[:40]), ("validation", lines[40:56]), ("test", lines[56:80])):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("\n".join(part) + "\n", encoding="utf-8")
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({
        "schema": "callcenter", "encoder": str(tiny_encoder_dir),
        "render": {"prefix": "query: ", "max_length": 64, "stride": 16, "max_windows": 4},
        "optim": {"max_steps": 2, "batch_size": 8, "lr": 2e-3, "head_lr": 1e-2, "warmup_ratio": 0.0}}), encoding="utf-8")
    docs = tmp_path / "training.md"
    docs.write_text("# Results\n\n<!-- stc3-seeds:start -->\nold table\n<!-- stc3-seeds:end -->\n\nafter\n", encoding="utf-8")
    out = tmp_path / "seeds.json"
    command = [sys.executable, str(REPO / "benchmarks" / "stc3_seeds.py"), "--config", str(config),
               "--train", str(files["train"]), "--validation", str(files["validation"]), "--test", str(files["test"]),
               "--seeds", "3,4", "--runs", str(tmp_path / "runs"), "--json", str(out), "--docs", str(docs)]
    first = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]

    result = json.loads(out.read_text(encoding="utf-8"))
    assert [r["seed"] for r in result["runs"].values()] == [3, 4]
    for head in ("attitude", "empathy", "resolution"):
        values = [r["test"][head]["nmd"] for r in result["runs"].values()]
        assert result["summary"][head]["nmd"]["mean"] == statistics.fmean(values)
        assert result["summary"][head]["nmd"]["std"] == statistics.stdev(values)
        assert result["baselines"]["tfidf_lr"][head]["nmd"] > 0
    assert result["encoder"].startswith(f"{tiny_encoder_dir.name} (sha256 ")
    text = docs.read_text(encoding="utf-8")
    assert "old table" not in text and text.endswith("<!-- stc3-seeds:end -->\n\nafter\n")
    mean = result["summary"]["attitude"]["nmd"]["mean"]
    assert f"**{mean:.4f} ± " in text and "| attitude (服务态度) |" in text
    assert str(tiny_encoder_dir) not in text  # no machine's local path in what gets published
    run_json = json.loads((tmp_path / "runs" / "seed3" / "run.json").read_text(encoding="utf-8"))
    assert run_json["encoder"]["name"] == tiny_encoder_dir.name and len(run_json["encoder"]["sha256"]) == 64
    assert run_json["config"]["seed"] == 3

    stamp = (tmp_path / "runs" / "seed3" / "run.json").stat().st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "runs" / "seed3" / "run.json").stat().st_mtime_ns == stamp  # reused, not retrained
    assert json.loads(out.read_text(encoding="utf-8"))["summary"] == result["summary"]
