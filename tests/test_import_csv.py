"""`callqa data import-csv`: a speech-to-text export (one row per utterance, channels, millisecond times) becomes
valid calls; every bad row is named by file:line:column and only its call is left out."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from callqa.cli import app

from conftest import REPO

EXPORT = """session_id,channel,begin_ms,end_ms,content,seat,态度评分
c-001,0,10200,15000,非常抱歉给您带来不便，我马上帮您查一下,A12,
c-001,0,0,4200,您好，很高兴为您服务，请问有什么可以帮您,A12,4
c-001,1,5100,9800,我的宽带断了三天了,A12,
c-002,0,0,3000,你好,A13,2
c-002,2,3500,6000,我要投诉,A13,
c-003,1,2000,4000,喂？,A12,x
c-003,0,0,1500,您好,A12,
c-004,0,0,abc,您好,A12,
"""
FLAGS = ["--call-id", "session_id", "--speaker", "channel", "--text", "content", "--start", "begin_ms", "--end",
         "end_ms", "--time-unit", "ms", "--agent-id", "seat", "--label", "attitude=态度评分", "--schema", "callcenter"]


def run(*args):
    return CliRunner().invoke(app, ["data", "import-csv", *map(str, args)])


def test_an_asr_export_becomes_calls_and_bad_rows_are_named(tmp_path):
    source, out = tmp_path / "asr.csv", tmp_path / "calls.jsonl"
    source.write_text(EXPORT, encoding="utf-8-sig")  # with Excel's BOM
    result = run(source, "-o", out, *FLAGS)
    assert result.exit_code == 1
    assert f"{source}:6:channel: '2' is neither an agent value" in result.output
    assert f"{source}:7:态度评分: 'x' is not a class of head 'attitude'" in result.output
    assert f"{source}:9:end_ms: 'abc' is not a time in milliseconds" in result.output
    [call] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert call["call_id"] == "c-001" and call["agent_id"] == "A12" and call["labels"] == {"attitude": 4}
    # sorted by start time (the export listed the third utterance first), milliseconds → seconds
    assert [(t["speaker"], t["start"], t["end"]) for t in call["turns"]] == [
        ("agent", 0.0, 4.2), ("customer", 5.1, 9.8), ("agent", 10.2, 15.0)]
    assert CliRunner().invoke(app, ["data", "validate", str(out), "--schema", "callcenter"]).exit_code == 0


def test_a_mapping_file_and_a_gbk_export(tmp_path):
    source, out, mapping = tmp_path / "gbk.csv", tmp_path / "calls.jsonl", tmp_path / "mapping.yaml"
    source.write_text("通话ID;角色;内容\nk1;客服;您好\nk1;客户;查话费\n", encoding="gb18030")
    mapping.write_text("call_id: 通话ID\nspeaker: 角色\ntext: 内容\nencoding: gb18030\ndelimiter: ';'\n", encoding="utf-8")
    result = run(source, "-o", out, "--mapping", mapping)
    assert result.exit_code == 0, result.output
    call = json.loads(out.read_text(encoding="utf-8"))
    assert [(t["speaker"], t["text"]) for t in call["turns"]] == [("agent", "您好"), ("customer", "查话费")]
    # The same file read as UTF-8 says what to do.
    result = run(source, "-o", out, "--call-id", "x", "--speaker", "y", "--text", "z")
    assert result.exit_code == 1 and "--encoding gb18030" in result.output


def test_a_missing_column_is_named_with_the_columns_there_are(tmp_path):
    source = tmp_path / "asr.csv"
    source.write_text(EXPORT, encoding="utf-8")
    result = run(source, "-o", tmp_path / "out.jsonl", *FLAGS[:4], "--text", "utterance")
    assert result.exit_code == 1
    assert "1:header: no column 'utterance'" in result.output and "content" in result.output


def test_the_guides_example_imports_and_grades_as_docs_your_data_says(tmp_path):
    from callqa.jsonl import load_calls

    from conftest import default_card

    examples = REPO / "datasets" / "examples"
    out = tmp_path / "calls.jsonl"
    result = run(examples / "asr-export.csv", "--mapping", examples / "asr-mapping.yaml", "-o", out,
                 "--schema", examples / "mycenter.yaml")
    assert result.exit_code == 0, result.output
    calls = {c.call_id: c for c in load_calls(out)}
    assert calls["c-1002"].labels == {"attitude": 2, "compliance": "minor"}
    stats = CliRunner().invoke(app, ["data", "stats", str(out), "--schema", str(examples / "mycenter.yaml")])
    assert stats.exit_code == 0 and "compliance 合规性" in stats.output and "严重违规" in stats.output

    card = default_card()
    clean, rude = card.score(calls["c-1001"]), card.score(calls["c-1002"])
    assert clean.total == 100 and not clean.red_line
    assert rude.red_line and rude.total == 0
    deductions = {d.rule: d for s in rude.sections for i in s.items for d in i.deductions}
    assert deductions["forbidden"].text == "你急什么"
    assert deductions["interrupt"].seconds == 0.7 and deductions["silence"].seconds == 19.0
