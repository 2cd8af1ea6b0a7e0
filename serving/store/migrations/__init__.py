"""The review store's schema, in versions (Alembic): `versions/` holds one revision per change of shape or data, the
way MLflow's tracking store keeps `db_migrations/versions/`.

- A new (empty) database is brought to the newest revision when it is first opened.
- Any other database must be at the code's revision: opening one that is behind (or was written by an older callqa
  before versions existed) or ahead (a newer callqa) raises :class:`SchemaVersionError`, one line naming the command
  that fixes it. Nothing changes a database's shape silently on open any more.
- ``callqa db upgrade`` upgrades in place (a store from before versions first gets what that code added on every
  open, then is stamped at the baseline), ``callqa db current`` and ``callqa db history`` say where it stands.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Index, MetaData, Table, inspect, text

HERE = Path(__file__).resolve().parent
BASELINE = "0001"  # the schema as callqa wrote it before versions


class SchemaVersionError(RuntimeError):
    """The database is not at the code's schema revision; the message names the command that fixes it."""


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    # The revision files do not change while callqa runs: read them once, not at every store's open.
    return ScriptDirectory.from_config(_config())


def head() -> str:
    return _script().get_current_head()


def history() -> list[tuple[str, str | None, str]]:
    """(revision, the one before, its first docstring line), oldest first."""
    out = [(r.revision, r.down_revision, (r.doc or "").strip().splitlines()[0] if r.doc else "")
           for r in _script().walk_revisions()]
    return out[::-1]


def standing(at: str | None) -> str:
    """Where a database at revision ``at`` stands against this code: current, unversioned, behind or ahead."""
    if at == head():
        return "current"
    if at is None:
        return "unversioned"
    return "behind" if at in {r for r, _, _ in history()} else "ahead"


def current(engine: Engine) -> str | None:
    """The database's revision; None for an empty database or one written before versions."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _has_store_tables(engine: Engine) -> bool:
    return bool({"review_calls", "api_keys"} & set(inspect(engine).get_table_names()))


def upgrade(engine: Engine, to: str = "head") -> tuple[str | None, str]:
    """Upgrade in place; returns (revision before, revision after)."""
    before = current(engine)
    if before is None and _has_store_tables(engine):
        _bring_legacy_to_baseline(engine)
    with engine.begin() as connection:
        command.upgrade(_config(connection), to)
    return before, current(engine)


def check(engine: Engine, url: str) -> None:
    """A new database is created at the newest revision; any other must be at it already."""
    at, want = current(engine), head()
    where = standing(at)
    if where == "current":
        return
    if where == "unversioned" and not _has_store_tables(engine):
        upgrade(engine)
        return
    fix = f"callqa db upgrade --db {_shown(url)}"
    if where == "unversioned":
        raise SchemaVersionError(f"the database {_shown(url)} was written by a callqa from before schema versions; "
                                 f"upgrade it in place first: {fix}")
    if where == "ahead":
        raise SchemaVersionError(f"the database {_shown(url)} is at schema revision {at}, newer than this callqa "
                                 f"knows (newest {want}): upgrade callqa, or use the callqa that wrote it")
    raise SchemaVersionError(f"the database {_shown(url)} is at schema revision {at}, behind this callqa's {want}: "
                             f"{fix}")


def _shown(url: str) -> str:
    """The URL without a password (it goes into error lines and logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: say nothing of it
        return "(this database)"


def _bring_legacy_to_baseline(engine: Engine) -> None:
    """A store written before versions, by any earlier callqa: what that code did on every open — create missing
    tables, add missing nullable columns and indexes — up to the baseline's shape, then the baseline stamp. The later
    revisions do the rest."""
    metadata = baseline_metadata()
    metadata.create_all(engine)
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                with engine.begin() as connection:
                    connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} "
                                            f"{column.type.compile(engine.dialect)}"))
        for index in table.indexes:
            index.create(engine, checkfirst=True)
    with engine.begin() as connection:
        command.stamp(_config(connection), BASELINE)


class _Recorder:
    """Stands in for Alembic's ``op`` while revision 0001's upgrade runs: its tables and indexes become a MetaData."""

    def __init__(self) -> None:
        self.metadata = MetaData()

    @staticmethod
    def f(name: str) -> str:
        return name

    def create_table(self, name: str, *items, **_) -> None:
        Table(name, self.metadata, *items)

    def create_index(self, name: str, table: str, columns: list[str], unique: bool = False, **_) -> None:
        Index(name, *(self.metadata.tables[table].c[c] for c in columns), unique=unique)


def baseline_metadata() -> MetaData:
    """The baseline schema (revision 0001) as a MetaData, read from the revision itself."""
    spec = importlib.util.spec_from_file_location("callqa_migration_0001", HERE / "versions" / "0001_baseline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recorder = _Recorder()
    module.op = recorder
    module.upgrade()
    return recorder.metadata


__all__ = ["SchemaVersionError", "baseline_metadata", "check", "current", "head", "history", "standing", "upgrade"]
