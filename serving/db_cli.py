"""`callqa db`: the review store's schema versions (serving/store/migrations) — upgrade in place, and where a database
stands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from callqa.console import console, fail

DbOption = Annotated[str | None, typer.Option(help="Database URL (default: the serving config's, sqlite:///var/callqa.db).")]
db_app = typer.Typer(help="The review store's schema: upgrade a database in place, and see its revision.",
                     no_args_is_help=True)


def _url(db: str | None) -> str:
    from callqa.serving.config import load_serving_config

    return db or load_serving_config().database


def _engine(db: str | None):
    from callqa.serving.store import open_engine

    url = _url(db)
    return url, open_engine(url)


DbUrl = Annotated[str | None, typer.Option("--db", help="Database URL (default: the serving config's, "
                                                         "sqlite:///var/callqa.db).")]


@db_app.command("upgrade")
def upgrade(db: DbUrl = None) -> None:
    """Upgrade the database in place to this callqa's newest schema revision, data included (a store written before
    revisions existed is first brought to the baseline). Back up the file (or dump the database) first."""
    from callqa.serving.store import migrations

    url, engine = _engine(db)
    try:
        before, after = migrations.upgrade(engine)
    except Exception as err:  # a failed migration rolls back its transaction; say which and why, in one line
        raise fail(f"upgrade failed ({type(err).__name__}): {str(err).splitlines()[0][:300]}") from None
    if before == after:
        console.print(f"already at revision {after}")
    else:
        console.print(f"upgraded from {before or '(no revision: a new store, or one from before revisions)'} to "
                      f"revision {after}")


@db_app.command("current")
def current(db: DbUrl = None) -> None:
    """The database's schema revision, and this callqa's newest."""
    from callqa.serving.store import migrations

    _, engine = _engine(db)
    at = migrations.current(engine)
    state = {"current": "up to date", "behind": "behind: callqa db upgrade", "ahead": "newer than this callqa",
             "unversioned": "not versioned (empty, or written before revisions): callqa db upgrade"}
    console.print(f"revision {at or '(none)'}; this callqa's newest: {migrations.head()} — "
                  f"{state[migrations.standing(at)]}")


@db_app.command("history")
def history() -> None:
    """Every schema revision, oldest first."""
    from callqa.serving.store import migrations

    table = Table("revision", "after", "what changed")
    for revision, down, doc in migrations.history():
        table.add_row(revision, down or "–", doc)
    console.print(table)
