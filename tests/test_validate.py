"""Good and bad lines through the reader and `callqa data validate`."""

import json
from pathlib import Path

from typer.testing import CliRunner

from callqa.cli import app
from callqa.jsonl import CallFileError, load_calls, read_calls
from callqa.schema import load_schema

GOOD = {"call_id": "c-1", "agent_id": "a-1", "turns": [{"speaker": "agent", "text": "您好"}, {"speaker": "customer", "text": "宽带断了"}],
        "labels": {"attitude": 4, "empathy": {"votes": {"3": 2, "4": 1}}, "topics": ["network"]}}


def line(**changes) -> str:
    call = json.loads(json.dumps(GOOD))
    call.update(changes)
    return json.dumps(call, ensure_ascii=False)


def write_lines(tmp_path: Path, lines: list[str | bytes]) -> Path:
    path = tmp_path / "calls.jsonl"
    with open(path, "wb") as f:
        for item in lines:
            f.write((item if isinstance(item, bytes) else item.encode("utf-8")) + b"\n")
    return path


BAD_CASES = [
    (line(call_id="c-2", turns=[]), "turns", "at least 1 item"),
    (line(call_id="c-3", turns=[{"speaker": "robot", "text": "hi"}]), "turns.0.speaker", "'agent' or 'customer'"),
    (line(call_id="c-4", turns=[{"speaker": "agent", "text": "   "}]), "turns.0.text", "blank"),
    (line(call_id="c-5", labels={"attitude": 9}), "labels.attitude", "'9' is not a class"),
    (line(call_id="c-6", labels={"mood": 3}), "labels.mood", "unknown head"),
    (line(call_id="c-7", labels={"empathy": {"votes": {"3": 0}}}), "labels.empathy.Votes.votes", "at least one vote"),
    (line(call_id="c-8", started_at="yesterday"), "started_at", "datetime"),
    ('{"call_id": "c-9", "turns": [', "(line)", "not valid JSON"),
    (b'{"call_id": "c-10", "turns": [{"speaker": "agent", "text": "\xff\xfe"}]}', "(line)", "not valid UTF-8"),
    ("[1, 2]", "(line)", "a call is a JSON object"),
    (line(), "call_id", "duplicate call_id (first at line 1)"),
    (line(call_id="c-11", extra_field=1), "extra_field", "Extra inputs"),
]


def test_every_bad_line_is_reported_with_file_line_and_field(tmp_path):
    path = write_lines(tmp_path, [line()] + [case[0] for case in BAD_CASES] + ["", line(call_id="c-99")])
    result = read_calls(path, load_schema("callcenter"))
    assert [c.call.call_id for c in result.calls] == ["c-1", "c-99"]  # valid lines kept, the blank one skipped
    by_line = {}
    for e in result.errors:
        by_line.setdefault(e.line, []).append(e)
    assert sorted(by_line) == list(range(2, 2 + len(BAD_CASES)))
    for offset, (_, field, message) in enumerate(BAD_CASES):
        errors = by_line[2 + offset]
        assert any(e.field.startswith(field) and message in e.message for e in errors), (field, [str(e) for e in errors])
        assert all(str(e).startswith(f"{path}:{2 + offset}:") for e in errors)


def test_without_schema_labels_are_not_checked(tmp_path):
    path = write_lines(tmp_path, [line(labels={"mood": 3})])
    assert read_calls(path).ok


def test_validate_cli_counts_and_exit_code(tmp_path):
    good = write_lines(tmp_path, [line(), line(call_id="c-2")])
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "validate", str(good), "--schema", "callcenter"])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(line() + "\n" + line(call_id="c-2", labels={"attitude": 0}) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["data", "validate", str(good), str(bad), "--schema", "callcenter"])
    assert res.exit_code == 1
    assert f"{bad}:2:labels.attitude: '0' is not a class" in res.output
    assert "3 valid, 1 invalid line(s) in 2 file(s)" in res.output


def test_load_calls_raises_with_all_errors_and_catches_duplicates_across_files(tmp_path):
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text(line() + "\n", encoding="utf-8")
    b.write_text(line() + "\n" + line(call_id="c-2", turns=[]) + "\n", encoding="utf-8")
    try:
        load_calls([a, b])
    except CallFileError as err:
        text = str(err)
        assert f"{b}:1:call_id: duplicate call_id (also at {a}:1)" in text
        assert f"{b}:2:turns" in text
        assert len(err.errors) == 2
    else:
        raise AssertionError("expected CallFileError")


def test_bad_schema_on_the_command_line_is_a_clear_error(tmp_path):
    good = write_lines(tmp_path, [line()])
    res = CliRunner().invoke(app, ["data", "validate", str(good), "--schema", "nosuch"])
    assert res.exit_code == 1 and "no schema 'nosuch'" in res.output


def test_stats_with_a_schema_shows_chinese_names_and_classes_no_call_has(tmp_path):
    one = tmp_path / "one.jsonl"
    one.write_text('{"call_id": "x", "turns": [{"speaker": "agent", "text": "您好"}], "labels": {"attitude": 4}}\n',
                   encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "stats", str(one), "--schema", "callcenter"])
    assert result.exit_code == 0, result.output
    assert "attitude 服务态度" in result.output
    rows = [line for line in result.output.splitlines() if "很差" in line or "良好" in line]
    assert any("很差" in r and "0.0" in r for r in rows) and any("良好" in r and "1.0" in r for r in rows)
