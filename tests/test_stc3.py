import json

import numpy as np
from typer.testing import CliRunner

from callqa.cli import app
from callqa.jsonl import read_calls
from callqa.schema import load_schema
from callqa.stc3 import convert_dialogue

DIALOGUE = {
    "id": "42",
    "turns": [{"sender": "customer", "utterances": ["宽带又断了", "我的电话13812345678"]},
              {"sender": "helpdesk", "utterances": ["您好，已为您报修"]}],
    "annotations": [{"quality": {"A": 1, "S": 0, "E": 2}, "nugget": ["CNUG0", "HNUG"]},
                    {"quality": {"A": 1, "S": -1, "E": 2}, "nugget": ["CNUG0", "HNaN"]},
                    {"quality": {"A": -2, "S": 0, "E": 1}, "nugget": ["CNaN", "HNUG"]}],
}


def test_convert_keeps_votes_and_nuggets():
    call = convert_dialogue(DIALOGUE, "x[0]")
    assert call.call_id == "stc3-42" and [t.speaker for t in call.turns] == ["customer", "agent"]
    assert call.turns[0].text == "宽带又断了\n我的电话13812345678"
    assert call.labels["A"].votes == {"-2": 1, "1": 2}
    np.testing.assert_allclose(load_schema("stc3")["S"].target(call.labels["S"]), [0, 1 / 3, 2 / 3, 0, 0])
    assert call.turns[0].labels["customer_nugget"].votes == {"CNUG0": 2, "CNaN": 1}
    assert call.turns[1].labels["helpdesk_nugget"].votes == {"HNUG": 2, "HNaN": 1}


def test_import_of_the_shared_stc3_file(shared_stc3, tmp_path):
    out = tmp_path / "stc3.jsonl"
    res = CliRunner().invoke(app, ["data", "import-stc3", str(shared_stc3), "-o", str(out)])
    assert res.exit_code == 0, res.output
    parsed = read_calls(out, load_schema("stc3"))
    assert parsed.ok and len(parsed.calls) == len(json.loads(shared_stc3.read_text(encoding="utf-8")))
    first = parsed.calls[0].call
    assert sum(first.labels["A"].votes.values()) == 19
    assert all(sum(c.call.labels["S"].votes.values()) == 19 for c in parsed.calls)
    stats = CliRunner().invoke(app, ["data", "stats", str(out)])
    assert stats.exit_code == 0 and "labels · A" in stats.output


def test_import_refuses_a_file_that_is_not_stc3(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": 1, "turns": [{"who": "x"}]}]), encoding="utf-8")
    res = CliRunner().invoke(app, ["data", "import-stc3", str(bad), "-o", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1 and "bad.json[0]: not an STC-3 dialogue" in res.output
