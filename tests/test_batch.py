"""`callqa score`: batch scoring through one ScoringSession on an engine (local, Ray) into a sink (Parquet, JSONL, the
review store); bad lines to rejects; a rerun resumes; every sink keeps the same scores."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from callqa.batch import JsonlSink, LocalEngine, ParquetSink, RayEngine, input_files, read_scores
from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.session import ScoringSession

from conftest import SAMPLE


@pytest.fixture(scope="module")
def session(tiny_bundle):
    # fp32: dynamic int8 quantizes activations per batch, so an int8 score moves by ~1e-4 with what it is batched with.
    return ScoringSession(tiny_bundle, "default", precision="fp32", run_threads=None, runs=1)


def score_files(files, out, session: ScoringSession, chunk_size=2000, batch_size=64, sink=ParquetSink):
    return LocalEngine().run(session, list(files), sink(str(out)), chunk_size, batch_size)


@pytest.fixture
def files(tmp_path):
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:45]
    first, second = tmp_path / "in" / "a.jsonl", tmp_path / "in" / "b.jsonl"
    first.parent.mkdir()
    bad = ['{"call_id": "x-1", "turns": []}', "not json", '{"call_id": "x-2", "turns": [{"speaker": "robot", "text": "您好"}]}']
    first.write_text("\n".join(lines[:25]) + "\n", encoding="utf-8")
    second.write_text("\n".join(lines[25:30] + bad + lines[30:]) + "\n", encoding="utf-8")
    return first, second


@pytest.mark.parametrize("workers", [1, 2])
def test_batch_scores_equal_the_pipelines_and_bad_lines_land_in_rejects(session, files, tmp_path, workers):
    """Also with two workers: each chunk's two batches (10 lines, 7 calls a batch) run side by side."""
    scorer, pipeline = session.scorer, session.pipeline
    found = input_files([str(tmp_path / "in")])
    assert found == list(files)
    session.runs = workers
    result = score_files(found, tmp_path / "out", session, chunk_size=10, batch_size=7)
    session.runs = 1
    assert result.calls == 45 and result.rejected_lines == 3 and result.parts_written == 3 + 3  # 25 and 23 lines
    table = read_scores(tmp_path / "out").to_pylist()
    calls = load_calls(SAMPLE)[:45]
    # Every worker's tokens are counted: the real ones are the calls' windows, wherever they ran.
    assert result.real_tokens == sum(len(w) for e in scorer.encode(calls) for w in e.windows)
    expected = {c.call_id: s for c, s in zip(calls, pipeline.score(scorer, calls))}
    assert {r["call_id"] for r in table} == set(expected)
    for row in table:
        s = expected[row["call_id"]]
        assert row["attitude.level"] == s.scores["attitude"].level
        assert row["attitude.expected"] == pytest.approx(s.scores["attitude"].expected, abs=1e-5)
        assert row["attitude.distribution"] == pytest.approx(list(s.scores["attitude"].distribution.values()), abs=1e-5)
        assert sorted(row["topics.predicted"]) == sorted(s.scores["topics"].predicted)
        assert row["scorecard.total"] == pytest.approx(s.scorecard.total) and row["scorecard.hash"] == s.scorecard.hash
        assert row["item.opening"] == s.scorecard.items()["opening"].points and row["model"] == scorer.info.tag
    rejects = [json.loads(line) for p in sorted((tmp_path / "out").glob("rejects-*.jsonl")) for line in p.read_text().splitlines()]
    assert {(r["line"], r["field"]) for r in rejects} >= {(6, "turns"), (7, "(line)"), (8, "turns.0.speaker")}
    assert all(r["file"] == str(files[1]) for r in rejects)
    assert not any("您好" in json.dumps(r, ensure_ascii=False) for r in rejects)  # never the line's text


def test_a_rerun_after_a_kill_writes_only_the_missing_parts(session, files, tmp_path):
    out = tmp_path / "out"
    score_files(list(files), out, session, chunk_size=10)
    before = read_scores(out).sort_by("call_id")
    parts = sorted(out.glob("part-*.parquet"))
    stamps = {p: p.stat().st_mtime_ns for p in parts}
    parts[2].unlink()  # the job died before this part was renamed into place
    (out / (parts[2].name + ".tmp")).write_bytes(b"half a file")
    result = score_files(list(files), out, session, chunk_size=10)
    assert result.parts_written == 1 and result.parts_skipped == len(parts) - 1
    assert all(p.stat().st_mtime_ns == stamps[p] for p in parts if p != parts[2])
    assert read_scores(out).sort_by("call_id").equals(before)


def test_the_cli_reports_counts_and_exits_1_on_bad_lines(tiny_bundle, files, tmp_path):
    result = CliRunner().invoke(app, ["score", str(files[0]), str(files[1]), "-b", str(tiny_bundle), "-o",
                                      str(tmp_path / "out")])
    assert result.exit_code == 1 and "45 calls scored" in result.output and "3 bad lines" in result.output
    result = CliRunner().invoke(app, ["score", str(tmp_path / "nothing-*.jsonl"), "-b", str(tiny_bundle), "-o", "x"])
    assert result.exit_code != 0 and "no files match" in result.output


def test_ray_gives_the_local_engines_scores_and_resumes_too(tiny_bundle, files, tmp_path):
    """A real local Ray (2 CPUs): an actor pool of onnxruntime sessions writes the same parts as the local engine."""
    pytest.importorskip("ray", reason="Ray is the scale extra (make install installs it)")
    int8 = ScoringSession(tiny_bundle, "default")  # int8, as the job serves: chunks are batched alike in both engines
    local = score_files(list(files), tmp_path / "local", int8, chunk_size=10)
    (tmp_path / "ray").mkdir()
    # A part left by an earlier run is not scored again.
    first = sorted((tmp_path / "local").glob("part-*.parquet"))[0]
    (tmp_path / "ray" / first.name).write_bytes(first.read_bytes())
    result = RayEngine(workers=2).run(int8, list(files), ParquetSink(str(tmp_path / "ray")), chunk_size=10)
    assert result.parts_skipped == 1 and result.parts_written == local.parts_written - 1
    assert result.calls + 10 == local.calls and result.rejected_lines == local.rejected_lines
    a, b = read_scores(tmp_path / "local").sort_by("call_id"), read_scores(tmp_path / "ray").sort_by("call_id")
    assert a.column_names == b.column_names and a.num_rows == b.num_rows == 45
    for name in a.column_names:
        left, right = a[name].to_pylist(), b[name].to_pylist()
        assert left == pytest.approx(right, abs=1e-6) if isinstance(left[0], float) else left == right, name
    assert sorted(p.name for p in (tmp_path / "ray").glob("rejects-*")) == sorted(
        p.name for p in (tmp_path / "local").glob("rejects-*"))


def test_every_sink_keeps_the_scores_score_answers(session, tiny_bundle, files, tmp_path):
    """Parquet, JSONL and the review store take the same chunks from the same session: the JSONL lines are the
    session's ScoredCalls as /score answers them, the store's predictions equal them, the Parquet rows flatten
    them; `--into store` on the command line stores the same."""
    from callqa.pipeline import ScoredCall
    from callqa.serving.store import ReviewStore
    from callqa.serving.store_sink import StoreSink

    score_files(files, tmp_path / "jsonl", session, chunk_size=10, sink=JsonlSink)
    lines = [ScoredCall.model_validate_json(line) for p in sorted((tmp_path / "jsonl").glob("part-*.jsonl"))
             for line in p.read_text(encoding="utf-8").splitlines()]
    calls = [c for c in load_calls(SAMPLE)[:45]]
    assert [s.call_id for s in lines] == [c.call_id for c in calls]
    expected = session.score(calls)
    for got, want in zip(lines, expected):
        assert got.scorecard.total == pytest.approx(want.scorecard.total)
        assert got.scores["attitude"].distribution == pytest.approx(want.scores["attitude"].distribution, abs=1e-5)
    sink = StoreSink(f"sqlite:///{tmp_path / 'store.db'}")
    result = LocalEngine().run(session, list(files), sink, chunk_size=10)
    assert result.calls == sink.added == 45 and len(sink.rejects) == 3
    stored = ReviewStore(sink.target)
    for got in lines[:5]:
        view = stored.view(got.call_id)
        assert view.scores.scorecard.total == pytest.approx(got.scorecard.total) and view.model == session.tag
    # The same file again: nothing new is stored, nothing doubles.
    assert LocalEngine().run(session, list(files), sink, chunk_size=10).calls == 45 and sink.added == 45
    assert stored.counts()["calls"] == 45


def test_a_session_names_its_card_so_a_ray_actor_opens_the_same(session, tiny_bundle):
    """An actor rebuilds the session from ``scorecard_name``: a card passed loaded is named by its YAML file (it was
    None, so the Ray engine scored without it), a named card by its name, no card by None."""
    from callqa.scorecard import load_scorecard

    loaded = ScoringSession(tiny_bundle, load_scorecard("default"), precision="fp32", run_threads=None)
    again = ScoringSession(tiny_bundle, loaded.scorecard_name, precision="fp32", run_threads=None)
    assert loaded.scorecard_name.endswith("default.yaml")
    assert again.pipeline.scorecard.hash == loaded.pipeline.scorecard.hash == session.pipeline.scorecard.hash
    assert session.scorecard_name == "default"
    assert ScoringSession(tiny_bundle, "none").scorecard_name is None
