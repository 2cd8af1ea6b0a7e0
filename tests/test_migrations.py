"""The review store's schema in versions (serving/migrations, Alembic): a store written by the code before versions
(tests/fixtures/store-96be4ab.sqlite, built by that code from git history: make_legacy_store.py) is refused until
`callqa db upgrade`, then upgrades in place with nothing lost; a database behind or ahead is refused in one line
naming the command that fixes it; PostgreSQL runs the same revisions both ways."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from alembic import command
from typer.testing import CliRunner

from callqa.cli import app
from callqa.schema import load_schema
from callqa.serving.store import (
    Appeals,
    CallFilter,
    KeyStore,
    ReviewStore,
    ScorecardReview,
    migrations,
    open_engine,
)
from callqa.serving.store.history import canonical as _canonical
from callqa.serving.store.migrations import SchemaVersionError
from callqa.serving.store.reviews import ReviewRow

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCHEMA = load_schema("callcenter")


@pytest.fixture
def legacy(tmp_path) -> tuple[str, dict]:
    db = tmp_path / "legacy.sqlite"
    shutil.copyfile(FIXTURES / "store-96be4ab.sqlite", db)
    return f"sqlite:///{db}", json.loads((FIXTURES / "store-96be4ab.json").read_text(encoding="utf-8"))


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_a_store_from_before_versions_is_refused_then_upgrades_in_place_with_nothing_lost(legacy):
    url, expected = legacy
    with pytest.raises(SchemaVersionError, match="callqa db upgrade"):
        ReviewStore(url)
    refused = CliRunner().invoke(app, ["reviews", "export", "-o", "/dev/null", "--db", url])
    assert refused.exit_code == 1 and "callqa db upgrade --db" in one_line(refused.output)

    done = CliRunner().invoke(app, ["db", "upgrade", "--db", url])
    assert done.exit_code == 0 and f"to revision {migrations.head()}" in done.output, done.output
    assert "up to date" in CliRunner().invoke(app, ["db", "current", "--db", url]).output
    assert "already at" in CliRunner().invoke(app, ["db", "upgrade", "--db", url]).output  # a second run: nothing

    store = ReviewStore(url)
    for call_id, call in expected["calls"].items():
        view = store.view(call_id)
        assert view.call.model_dump(mode="json", exclude={"labels"}, exclude_none=True) == call
        history = [{"reviewer_name": r.reviewer_name, "comment": r.comment, "source": r.source,
                    "changes": [c.model_dump(mode="json") for c in r.changes],
                    "scorecard": r.scorecard.model_dump(mode="json") if r.scorecard else None, "reasons": r.reasons}
                   for r in view.history]
        assert history == [_as_read(r) for r in expected["reviews"][call_id]], call_id
    # Totals: unreviewed calls as they were; reviewed ones rewritten as their score of record, on every reader.
    found = {r.call_id: r for r in store.search(CallFilter(), "x", 100)[0]}
    assert set(found) == set(expected["totals"])
    for call_id, (total, red_line) in expected["totals"].items():
        view = store.view(call_id)
        if view.revision == 0:
            assert (found[call_id].total, found[call_id].red_line) == (total, red_line)
        assert (found[call_id].total, found[call_id].red_line) == (view.record.total, view.record.red_line)
    assert [{"call_id": a.call_id, "reason": a.reason,
             "decisions": [e.ruling.decision if e.ruling else None for e in a.entries]}
            for a in Appeals(store, SCHEMA).list(open_only=False)] == expected["appeals"]
    # Keys: every key kept; the one whose id was cut from the key itself got a random id, and its reviews follow.
    keys = KeyStore(url)
    assert sorted([k.name, k.role] for k in keys.list()) == expected["keys"]
    old = keys.lookup(expected["old_key"])
    assert old is not None and not expected["old_key"].startswith(old.id)
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    with Session(store.engine) as session:
        reviewers = set(session.scalars(select(ReviewRow.reviewer).where(ReviewRow.source == "review")))
    assert reviewers == {old.id}
    # And the store is used as any other: a bundle's schema is recorded with its next prediction.
    assert store.models() == {}


def _as_read(review: dict) -> dict:
    """A review as the old code listed it, as this code reads it back: label spellings canonical, verdicts with
    the fields they have gained (a 漏扣's points: none given, so its item's default)."""
    changes = [{**c, "previous": _canonical(c["previous"])} for c in review["changes"]]
    card = review["scorecard"]
    return {**review, "changes": changes,
            "scorecard": ScorecardReview.model_validate(card).model_dump(mode="json") if card else None}


def test_a_database_behind_or_ahead_is_refused_in_one_line(tmp_path, tiny_bundle):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    ReviewStore(url)  # new: created at the newest revision
    engine = open_engine(url)
    assert migrations.current(engine) == migrations.head()
    with engine.begin() as connection:
        command.downgrade(migrations._config(connection), "0002")
    with pytest.raises(SchemaVersionError, match=rf"revision 0002, behind this callqa's {migrations.head()}: "
                                                 r"callqa db upgrade"):
        ReviewStore(url)
    refused = CliRunner().invoke(app, ["keys", "list", "--db", url])
    assert refused.exit_code == 1 and "callqa db upgrade" in one_line(refused.output)
    assert CliRunner().invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    ReviewStore(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaVersionError, match="newer than this callqa knows"):
        KeyStore(url)
    refused = CliRunner().invoke(app, ["serve", "--bundle", str(tiny_bundle), "--db", url, "--port", "1"])
    assert refused.exit_code == 1 and "newer than this callqa" in refused.output


def test_postgresql_runs_every_revision_up_and_down(postgres):
    url = postgres.new_database()
    store = ReviewStore(url)  # a new database: created by running the revisions
    engine = open_engine(url)
    assert migrations.current(engine) == migrations.head()
    assert store.counts() == {"calls": 0, "reviewed": 0, "reviews": 0}
    with engine.begin() as connection:
        command.downgrade(migrations._config(connection), "0001")
    with pytest.raises(SchemaVersionError, match="behind"):
        ReviewStore(url)
    before, after = migrations.upgrade(engine)
    assert (before, after) == ("0001", migrations.head())
    ReviewStore(url).add_scored([], [], "callqa-scorer:x", SCHEMA)
    engine.dispose()


def test_db_commands_default_to_the_serving_configs_database(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'configured.sqlite'}"
    monkeypatch.setenv("CALLQA_DB", url)  # what `database:` in the serving config would say
    done = CliRunner().invoke(app, ["db", "upgrade"])
    assert done.exit_code == 0 and f"to revision {migrations.head()}" in done.output, done.output
    assert "up to date" in CliRunner().invoke(app, ["db", "current"]).output
    history = CliRunner().invoke(app, ["db", "history"]).output
    assert all(revision in history for revision, _, _ in migrations.history())
