import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.split import majority_class, split_calls

from conftest import SAMPLE


@pytest.fixture(scope="module")
def calls():
    return load_calls(SAMPLE)


def test_split_is_deterministic_complete_and_disjoint(calls):
    a = split_calls(calls, (0.8, 0.1, 0.1), seed=7, stratify="attitude")
    b = split_calls(calls, (0.8, 0.1, 0.1), seed=7, stratify="attitude")
    c = split_calls(calls, (0.8, 0.1, 0.1), seed=8, stratify="attitude")
    assert a == b and a != c
    flat = [i for part in a for i in part]
    assert sorted(flat) == list(range(len(calls)))
    assert [len(p) for p in a] == pytest.approx([0.8 * len(calls), 0.1 * len(calls), 0.1 * len(calls)], abs=6)


def test_stratified_split_keeps_class_shares(calls):
    train, val, test = split_calls(calls, (0.6, 0.2, 0.2), seed=1, stratify="resolution")
    overall = Counter(majority_class(c, "resolution") for c in calls)
    for part in (train, val, test):
        share = Counter(majority_class(calls[i], "resolution") for i in part)
        for cls, n in overall.items():
            assert share[cls] / len(part) == pytest.approx(n / len(calls), abs=0.03), cls


def test_group_by_agent_keeps_each_agent_in_one_split(calls):
    parts = split_calls(calls, (0.7, 0.15, 0.15), seed=3, group_by_agent=True)
    agents = [{calls[i].agent_id for i in p} for p in parts]
    assert all(agents) and not (agents[0] & agents[1]) and not (agents[0] & agents[2]) and not (agents[1] & agents[2])
    assert sorted(i for p in parts for i in p) == list(range(len(calls)))


def test_bad_ratios_are_refused(calls):
    with pytest.raises(ValueError, match="sum to 1"):
        split_calls(calls, (0.5, 0.1, 0.1))


def test_split_cli_copies_lines_byte_for_byte(tmp_path):
    out = tmp_path / "splits"
    res = CliRunner().invoke(app, ["data", "split", str(SAMPLE), "-o", str(out), "--seed", "5", "--stratify", "attitude",
                                   "--group-by-agent"])
    assert res.exit_code == 0, res.output
    original = SAMPLE.read_text(encoding="utf-8").splitlines()
    written = [line for name in ("train", "validation", "test") for line in (out / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(written) == sorted(original)
    ids = {name: {json.loads(x)["agent_id"] for x in (out / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()}
           for name in ("train", "validation", "test")}
    assert not ids["train"] & ids["test"]


def test_split_cli_refuses_a_file_with_bad_lines(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(SAMPLE.read_text(encoding="utf-8").splitlines()[0] + "\n{oops\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["data", "split", str(bad), "-o", str(tmp_path / "o")])
    assert res.exit_code == 1 and f"{bad}:2:(line): not valid JSON" in res.output
    assert not (tmp_path / "o").exists()
