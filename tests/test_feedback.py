"""客户满意度: survey answers imported from a CSV (scales mapped to 1–5, comments redacted, bad rows named) and the
report's section, checked against numbers computed here."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.schema import load_schema
from callqa.serving.feedback_import import SurveyMapping, read_survey
from callqa.serving.report import ReportBuilder
from callqa.serving.store import FeedbackIn, Feedbacks, ReviewStore

from conftest import SAMPLE, score_randomly

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAPPING = """\
columns: {call_id: 通话ID, answered: 回访时间, rating: 满意度, comment: 客户意见}
channel: 回访
scale: {非常满意: 5, 满意: 4, 一般: 3, 不满意: 2, 非常不满意: 1}
"""


def test_a_survey_csv_imports_with_its_scale_mapped_comments_redacted_and_bad_rows_named(tmp_path):
    survey = tmp_path / "survey.csv"
    survey.write_text("通话ID,回访时间,满意度,客户意见\n"
                      "s-0001,2026-03-05 14:30,满意,挺好的\n"
                      "s-0002,2026-03-05 15:00,还行,\n"
                      "s-0003,昨天,非常满意,\n"
                      "s-0004,2026-03-06 09:00,非常不满意,打了三次 13812345678 都没人管\n", encoding="utf-8")
    mapping = tmp_path / "survey.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    answers, problems = read_survey(survey, SurveyMapping.from_yaml(mapping))
    assert [a.call_id for a in answers] == ["s-0001", "s-0004"]
    assert [a.satisfaction for a in answers] == [4.0, 1.0]
    assert problems == [f"{survey}:3: 满意度: '还行' is not on the scale (非常满意, 满意, 一般, 不满意, 非常不满意)",
                        f"{survey}:4: 回访时间: '昨天' is not a time like 2026-03-05 14:30"]
    db = f"sqlite:///{tmp_path / 'reviews.db'}"
    ReviewStore(db)  # a current store
    done = CliRunner().invoke(app, ["feedback", "import", str(survey), "--mapping", str(mapping), "--db", db])
    assert done.exit_code == 0, done.output
    assert "2 answers imported" in done.output and "2 bad rows skipped" in done.output
    numbered = SurveyMapping.model_validate({"columns": {"call_id": "id", "rating": "score"}, "channel": "短信",
                                             "numeric": [0, 10]})
    assert [numbered.satisfaction(x) for x in ("0", "5", "10")] == [1.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="outside 0–10"):
        numbered.satisfaction("11")


def test_the_satisfaction_section_matches_the_answers(tmp_path):
    schema = load_schema("callcenter")
    calls = [c.model_copy(update={"agent_id": f"a{i % 3}", "labels": {},
                                  "started_at": datetime(2026, 3, 3 + i, 10, tzinfo=SHANGHAI)})
             for i, c in enumerate(load_calls(SAMPLE)[:20])]
    scored = score_randomly(calls, seed=8)
    store = ReviewStore(f"sqlite:///{tmp_path / 'reviews.db'}")
    store.add_scored(calls, scored, "callqa-scorer:test", schema)
    rng = np.random.default_rng(4)
    answers = [FeedbackIn(call_id=c.call_id, channel="短信", rating=str(r), satisfaction=float(r),
                          comment="客服态度很好，电话13812345678")
               for c, r in zip(calls[:12], rng.integers(1, 6, size=12))]
    Feedbacks(store.engine).add(answers, "api")
    report = ReportBuilder(store, schema).build("2026-03")
    overview = dict(report.table("satisfaction").rows)
    values = [a.satisfaction for a in answers]
    assert overview["回访答复数"] == 12 and overview["有答复的通话"] == 12
    assert overview["回应率 %"] == pytest.approx(100 * 12 / 20, abs=0.05)
    assert overview["平均满意度（1–5）"] == pytest.approx(np.mean(values), abs=0.005)
    assert overview["满意率 %（4 分及以上）"] == pytest.approx(100 * np.mean([v >= 4 for v in values]), abs=0.05)
    expected = [s.scores["attitude"].expected for s in scored[:12]]
    rho = spearmanr(expected, values).statistic
    key = next(k for k in overview if k.startswith("模型「服务态度」"))
    assert overview[key] == pytest.approx(rho, abs=0.0005)
    confusion = report.table("satisfaction-vs-model")
    assert sum(sum(row[1:]) for row in confusion.rows) == 12
    agents = {row[0]: row[2] for row in report.table("satisfaction-agents").rows}
    assert agents == {f"a{k}": sum(1 for c in calls[:12] if c.agent_id == f"a{k}") for k in range(3)}
    disagreed = report.table("satisfaction-disagreed").rows
    assert [row[-1] for row in disagreed] == sorted((row[-1] for row in disagreed), reverse=True)
    with store.engine.connect() as conn:  # the comment was stored redacted
        from sqlalchemy import text

        assert all("13812345678" not in c for (c,) in conn.execute(text("select comment from feedback")))


def test_surveyed_calls_export_as_weak_labels_that_training_weighs_down(tmp_path, tiny_tokenizer_file):
    from callqa.render import CallEncoder, RenderSpec
    from callqa.training.config import TrainConfig
    from callqa.training.data import build_dataset, mask_column

    schema = load_schema("callcenter")
    calls = [c.model_copy(update={"labels": {}}) for c in load_calls(SAMPLE)[:4]]
    db = f"sqlite:///{tmp_path / 'reviews.db'}"
    store = ReviewStore(db)
    store.add_scored(calls, score_randomly(calls, seed=2), "callqa-scorer:test", schema)
    Feedbacks(store.engine).add([FeedbackIn(call_id=calls[0].call_id, channel="IVR", rating="1", satisfaction=1.0),
                                 FeedbackIn(call_id=calls[1].call_id, channel="回访", rating="满意", satisfaction=4.0),
                                 FeedbackIn(call_id=calls[1].call_id, channel="回访", rating="非常满意", satisfaction=5.0)],
                                "import")
    out = tmp_path / "survey.jsonl"
    done = CliRunner().invoke(app, ["feedback", "export", "--out", str(out), "--db", db])
    assert done.exit_code == 0 and "2 surveyed calls" in done.output, done.output
    weak = load_calls(out, schema)
    assert [(c.call_id, c.labels) for c in weak] == [(calls[0].call_id, {"attitude": 1}), (calls[1].call_id, {"attitude": 5})]
    assert all(c.meta["source"] == "survey" for c in weak) and weak[1].meta["survey"]["rating"] == "非常满意"

    encoder = CallEncoder.from_file(tiny_tokenizer_file, RenderSpec(max_length=128, stride=32))
    mixed = [*weak, calls[2].model_copy(update={"labels": {"attitude": 3}})]
    weights = TrainConfig.model_validate({"schema": "callcenter", "loss": {"source_weights": {"survey": 0.3}}})
    rows = build_dataset(mixed, encoder, schema, source_weights=weights.loss.source_weights).to_list()
    assert [r[mask_column("attitude")] for r in rows] == pytest.approx([0.3, 0.3, 1.0])
    assert [r[mask_column("empathy")] for r in rows] == [0.0, 0.0, 0.0]
    plain = build_dataset(mixed, encoder, schema).to_list()
    assert [r[mask_column("attitude")] for r in plain] == [1, 1, 1]  # without weights: as before


def test_the_queue_finds_the_calls_where_customer_and_model_disagree(tmp_path):
    """The queue's disputed filter and the report's count use one gap (callqa.analytics.survey_gap)."""
    from callqa.analytics import DISPUTED_GAP, predicted_satisfaction, survey_gap
    from callqa.serving.store import CallFilter

    schema = load_schema("callcenter")
    calls = [c.model_copy(update={"agent_id": "a1", "labels": {},
                                  "started_at": datetime(2026, 3, 5, 10, tzinfo=SHANGHAI)})
             for c in load_calls(SAMPLE)[:10]]
    scored = score_randomly(calls, seed=12)
    store = ReviewStore(f"sqlite:///{tmp_path / 'reviews.db'}")
    store.add_scored(calls, scored, "callqa-scorer:test", schema)
    ratings = [1, 5, 3, 1, 5, 2, 4, 1, 5, 3]
    Feedbacks(store.engine).add([FeedbackIn(call_id=c.call_id, channel="短信", rating=str(r), satisfaction=float(r))
                                 for c, r in zip(calls, ratings)], "api")
    gaps = {c.call_id: survey_gap(predicted_satisfaction(s, schema), r) for c, s, r in zip(calls, scored, ratings)}
    want = {c for c, g in gaps.items() if g >= DISPUTED_GAP}
    items, total = store.search(CallFilter(disputed=True), "rev-1", limit=100)
    assert {i.call_id for i in items} == want and total == len(want) and 0 < len(want) < len(calls)
    others, _ = store.search(CallFilter(disputed=False), "rev-1", limit=100)
    assert {i.call_id for i in others} == {c.call_id for c in calls} - want
    note = ReportBuilder(store, schema).build("2026-03").table("satisfaction-disagreed").note
    assert f"共 {len(want)} 条" in note
