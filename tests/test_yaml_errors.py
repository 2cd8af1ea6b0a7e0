"""Every YAML file a user writes is read by one loader (callqa.yamlfile): its problems read `file:line: key: problem`,
with the line the key is written on, for configs, schemas, scorecards, CSV mappings, the serving config and agent
directories alike."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callqa.importers import CsvMapping
from callqa.schema import SchemaError, load_schema
from callqa.scorecard import SCORECARD_DIR, ScorecardError, load_scorecard
from callqa.serving.config import load_serving_config
from callqa.serving.directory import AgentDirectory, DirectoryError
from callqa.training.config import ConfigError, TrainConfig

SCHEMA = "name: mine\nheads:\n  a:\n    kind: ordinal\n    display: 甲\n    classes: {1: x, 2: y}\n  b:\n    kind: ordinl\n    display: 乙\n    classes: [p, q]\n"
CARD = (SCORECARD_DIR / "default.yaml").read_text(encoding="utf-8")


def _card_with_bad_points() -> str:
    lines = CARD.splitlines()
    at = next(i for i, line in enumerate(lines) if re.match(r"\s+points:\s*\d", line))
    lines[at] = re.sub(r"points:\s*\S+", "points: lots", lines[at])
    return "\n".join(lines) + "\n", at + 1


CASES = {
    "schema": (load_schema, SchemaError, SCHEMA, 8, r"heads\.b\.kind: unknown head kind 'ordinl'"),
    "config": (TrainConfig.from_yaml, ConfigError, "schema: callcenter\noptim:\n  epochs: 2\n  lr: -1\n", 4, r"optim\.lr: "),
    "mapping": (CsvMapping.from_yaml, ValueError, "call_id: id\nspeaker: who\ntext: what\ndelimiter: ';;'\n", 4,
                r"delimiter: "),
    "serving": (load_serving_config, ValueError, "bundle: x\ntime_zone: Asia/Shanghai\nappeal_days: -3\n", 3,
                r"appeal_days: "),
    "directory": (AgentDirectory.load, DirectoryError, "a-01:\n  name: 张三\n  team: 一组\na-02:\n  name: 李四\n  colour: red\n", 6,
                  r"a-02\.colour: "),
    "syntax": (load_schema, SchemaError, "name: x\nheads:\n  a: {kind: ordinal\n", 4, r"\(syntax\): not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_yaml_file_names_file_line_key_and_problem(tmp_path: Path, case: str):
    read, error, text, line, problem = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(error) as err:
        read(path)
    assert re.match(rf"{re.escape(str(path))}:{line}: {problem}", str(err.value)), str(err.value)


def test_a_scorecard_problem_names_the_line_and_the_ids_the_file_uses(tmp_path: Path):
    text, line = _card_with_bad_points()
    path = tmp_path / "card.yaml"
    path.write_text(text.replace("phrases: phrases.yaml", f"phrases: {SCORECARD_DIR / 'phrases.yaml'}"), encoding="utf-8")
    with pytest.raises(ScorecardError) as err:
        load_scorecard(path)
    first = str(err.value).splitlines()[0]
    assert re.match(rf"{re.escape(str(path))}:{line}: sections\.[a-z_]+\.(items\.[a-z_]+\.)?points: ", first), first


def test_every_problem_is_a_line_of_its_own(tmp_path: Path):
    path = tmp_path / "two.yaml"
    path.write_text("schema: callcenter\noptim:\n  lr: -1\n  epochs: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_yaml(path)
    lines = str(err.value).splitlines()
    assert sorted(re.match(rf"{re.escape(str(path))}:(\d+): optim\.(\w+): ", x).groups() for x in lines) == [("3", "lr"), ("4", "epochs")]


def test_a_missing_file_is_named_too(tmp_path: Path):
    with pytest.raises(ConfigError, match=rf"{re.escape(str(tmp_path / 'nope.yaml'))}:1: \(file\): no such config file"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")
