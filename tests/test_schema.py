from pathlib import Path

import numpy as np
import pytest

from callqa.calls import Votes
from callqa.schema import LabelError, SchemaError, load_schema


def test_shipped_schemas_load_with_chinese_names():
    cc = load_schema("callcenter")
    assert cc.head_names == ["attitude", "empathy", "resolution", "topics", "call_type"]
    assert cc["attitude"].display == "服务态度"
    assert cc["resolution"].class_ids == ["unresolved", "partly", "resolved"]
    assert len(cc["topics"].classes) == 11 and cc["topics"].kind == "multilabel"
    assert cc["call_type"].display == "来电类型" and cc["call_type"].kind == "category"
    stc3 = load_schema("stc3")
    assert [h.name for h in stc3.heads] == ["A", "S", "E"]
    assert stc3["A"].values.tolist() == [-2, -1, 0, 1, 2]


def test_targets_one_hot_votes_missing_and_multilabel():
    cc = load_schema("callcenter")
    np.testing.assert_array_equal(cc["attitude"].target(4), [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(cc["attitude"].target("4"), [0, 0, 0, 1, 0])  # "4" and 4 name one level
    np.testing.assert_allclose(cc["empathy"].target(Votes(votes={"3": 2, "4": 1})), [0, 0, 2 / 3, 1 / 3, 0])
    assert cc["empathy"].target(None) is None
    np.testing.assert_array_equal(cc["resolution"].target("partly"), [0, 1, 0])
    t = cc["topics"].target(["email", "billing"])
    assert t.sum() == 2 and t[cc["topics"].index("email")] == 1 and t[cc["topics"].index("billing")] == 1
    stc3 = load_schema("stc3")
    np.testing.assert_allclose(stc3["A"].target(Votes(votes={"-2": 1, "0": 3})), [0.25, 0, 0.75, 0, 0])


@pytest.mark.parametrize(
    "label, message",
    [(7, "'7' is not a class of head 'attitude'"), (["4"], "not a list"), (Votes(votes={"9": 1}), "'9' is not a class")],
)
def test_target_rejects_labels_that_do_not_fit(label, message):
    with pytest.raises(LabelError, match=message):
        load_schema("callcenter")["attitude"].target(label)


def test_multilabel_rejects_votes_and_unknown_topics():
    topics = load_schema("callcenter")["topics"]
    with pytest.raises(LabelError, match="multilabel"):
        topics.target(Votes(votes={"email": 1}))
    with pytest.raises(LabelError, match="'weather' is not a class"):
        topics.target(["weather"])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("heads:\n  a: {kind: ordinal, display: 甲, classes: {1: x, 2: y}}\n  b: {kind: ordinl, display: 乙, classes: [p, q]}\n",
         r"heads\.b\.kind"),
        ("heads:\n  a: {kind: ordinal, display: 甲, classes: {1: x}}\n", r"heads\.a: .*at least 2 classes"),
        ("heads:\n  a: {kind: ordinal, classes: {1: x, 2: y}}\n", r"heads\.a\.display"),
        ("heads:\n  a: {kind: ordinal, display: 甲, classes: [1, 2], colour: red}\n", r"heads\.a\.colour"),
        ("heads: {}\n", "at least one head"),
        ("heads: [\n", "not valid YAML"),
        ("- just\n- a list\n", "a schema is a mapping"),
    ],
)
def test_bad_schema_yaml_gives_error_naming_file_and_field(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SchemaError, match=expected) as err:
        load_schema(path)
    assert str(path) in str(err.value)


def test_unknown_schema_name_lists_the_shipped_ones():
    with pytest.raises(SchemaError, match="callcenter, stc3"):
        load_schema("nope")


def test_schema_round_trips_through_json():
    cc = load_schema("callcenter")
    again = type(cc).model_validate_json(cc.model_dump_json())
    assert again == cc and again["attitude"].class_ids == ["1", "2", "3", "4", "5"]


def test_mean_gate_averages_each_heads_gate_metric_as_a_loss():
    """The metric a student can be selected by: what export's gate compares for each head's kind (NMD; macro-F1
    turned into 1 − F1 so lower is better throughout)."""
    from callqa.metrics import pick_metric

    schema = load_schema("callcenter")
    metrics = {"attitude": {"nmd": 0.1}, "empathy": {"nmd": 0.2}, "resolution": {"nmd": 0.3},
               "topics": {"macro_f1": 0.6, "micro_f1": 0.9}}
    assert pick_metric(metrics, "mean.gate", schema) == (pytest.approx((0.1 + 0.2 + 0.3 + 0.4) / 4), True)
    assert pick_metric(metrics, "mean.nmd") == (pytest.approx(0.2), True)
    with pytest.raises(ValueError, match="schema"):
        pick_metric(metrics, "mean.gate")
