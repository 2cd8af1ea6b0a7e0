"""The service's database: SQLite (one file, WAL) by default, PostgreSQL by URL. A new database is created at the
newest schema revision on first use; an existing one must be at it (`callqa db upgrade`: serving/store/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase

from .migrations import check


class Base(DeclarativeBase):
    pass


def make_engine(url: str) -> Engine:
    """The engine of a database at this callqa's schema revision (a new one is created so; SchemaVersionError
    otherwise, naming the command that fixes it)."""
    engine = open_engine(url)
    check(engine, url)
    return engine


def open_engine(url: str) -> Engine:
    """The engine, without looking at the schema (`callqa db` upgrades and inspects through this)."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:
            # WAL: readers never block the writer; synchronous=FULL: an acknowledged write survives a crash.
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()
    return engine


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored moment as an aware UTC datetime: SQLite hands back naive ones, and everything stored is UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment
