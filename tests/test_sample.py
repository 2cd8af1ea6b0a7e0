"""The committed sample set: reproducible from its generator, and as varied as the issue asks."""

import json
import subprocess
import sys

import jsonschema

from callqa.calls import Votes
from callqa.jsonl import load_calls
from callqa.render import CallEncoder, RenderSpec
from callqa.schema import load_schema

from conftest import REPO, SAMPLE


def test_committed_sample_matches_its_seeded_generator():
    res = subprocess.run([sys.executable, str(REPO / "datasets" / "make_sample.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_sample_is_varied():
    schema = load_schema("callcenter")
    calls = load_calls(SAMPLE, schema)
    assert len(calls) >= 300
    assert len({c.agent_id for c in calls}) >= 5 and len({c.started_at.strftime("%Y-%m") for c in calls}) >= 4
    for head in schema.heads:
        seen = set()
        for c in calls:
            label = c.labels.get(head.name)
            if isinstance(label, Votes):
                seen.update(label.votes)
            elif isinstance(label, list):
                seen.update(label)
            elif label is not None:
                seen.add(str(label))
        assert seen == set(head.class_ids), head.name
        # Every head but attitude and the call type (derived from the topics, so always known) is missing somewhere.
        assert any(head.name not in c.labels for c in calls) or head.name in ("attitude", "call_type")
    assert sum(isinstance(c.labels.get("attitude"), Votes) for c in calls) >= 20


def test_some_sample_calls_are_longer_than_512_tokens(tiny_tokenizer_file):
    enc = CallEncoder.from_file(tiny_tokenizer_file, RenderSpec())
    lengths = [enc.encode(c).n_tokens for c in load_calls(SAMPLE)]
    assert sum(n > 512 for n in lengths) >= 10


BAD_LINES = {  # what `callqa data validate` refuses, each for another reason
    "no turns": {"call_id": "c-1", "turns": []},
    "speaker": {"call_id": "c-1", "turns": [{"speaker": "bot", "text": "您好"}]},
    "unknown field": {"call_id": "c-1", "turns": [{"speaker": "agent", "text": "您好"}], "extra": 1},
    "slash in the id": {"call_id": "a/b", "turns": [{"speaker": "agent", "text": "您好"}]},
    "blank text": {"call_id": "c-1", "turns": [{"speaker": "agent", "text": "   "}]},
    "year 1": {"call_id": "c-1", "started_at": "0001-01-01T00:00:00Z", "turns": [{"speaker": "agent", "text": "您好"}]},
    "month 13": {"call_id": "c-1", "started_at": "2026-13-01T00:00:00Z", "turns": [{"speaker": "agent", "text": "您好"}]},
    "negative time": {"call_id": "c-1", "turns": [{"speaker": "agent", "text": "您好", "start": -1}]},
}


def test_json_schema_command_writes_the_committed_schema_which_judges_lines_as_validate_does(tmp_path):
    from typer.testing import CliRunner

    from callqa.cli import app

    out = tmp_path / "call.schema.json"
    res = CliRunner().invoke(app, ["data", "json-schema", "-o", str(out)])  # `make sample` runs this
    assert res.exit_code == 0, res.output
    committed = (REPO / "datasets" / "call.schema.json").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == committed, "regenerate: make sample"
    checker = jsonschema.Draft202012Validator(json.loads(committed))
    for n, line in enumerate(SAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        assert not list(checker.iter_errors(json.loads(line))), f"sample line {n}"
    for why, line in BAD_LINES.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
        res = CliRunner().invoke(app, ["data", "validate", str(bad)])
        assert res.exit_code != 0 and "bad.jsonl:1" in res.output, why
        assert list(checker.iter_errors(line)), f"the JSON Schema accepts a line validate refuses: {why}"


def test_stats_cli_reports_labels_token_percentiles_agents_and_months(tiny_tokenizer_file):
    from typer.testing import CliRunner

    from callqa.cli import app

    res = CliRunner().invoke(app, ["data", "stats", str(SAMPLE), "--tokenizer", str(tiny_tokenizer_file), "--max-length", "256"])
    assert res.exit_code == 0, res.output
    for expected in ("labels · attitude", "labels · topics", "tokens", "windows of 256", "calls per agent", "2026-03", "a-22", "… 21 more"):
        assert expected in res.output, expected


def test_redact_cli_rewrites_turns_and_counts_findings(tmp_path):
    from typer.testing import CliRunner

    from callqa.cli import app

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"call_id": "c", "turns": [{"speaker": "customer", "text": "回电13812345678，邮箱a@b.cn"}]},
                              ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["data", "redact", str(src), "-o", str(out)])
    assert res.exit_code == 0 and "[手机号] 1" in res.output
    assert json.loads(out.read_text(encoding="utf-8"))["turns"][0]["text"] == "回电[手机号]，邮箱[邮箱]"


def test_the_data_card_counts_what_the_file_holds():
    card = (REPO / "datasets" / "README.md").read_text(encoding="utf-8")
    calls = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    assert f"{len(calls)} synthetic" in card
    assert f"between one of {len({c['agent_id'] for c in calls})}\n" in card


def test_help_and_errors_print_brackets_as_written():
    import re

    from typer.testing import CliRunner

    from callqa.cli import app

    res = CliRunner().invoke(app, ["score", "--help"])
    text = re.sub(r"[\s│]+", " ", res.output)  # the help box, unwrapped
    assert "pip install 'callqa[scale]'" in text  # rich markup ate [scale] on main
    res = CliRunner().invoke(app, ["scorecard", "check", "no[such]card"])
    assert res.exit_code == 1 and "no[such]card" in res.output
