"""`callqa keys`: API keys for the scoring API and the web app, one role each, stored hashed and shown once."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from callqa.console import console, err_console, fail

from .db_cli import DbOption

keys_app = typer.Typer(help="API keys for the scoring API and review UI (stored hashed; shown once).",
                       no_args_is_help=True)


def open_key_store(db: str | None):
    from callqa.serving.config import load_serving_config
    from callqa.serving.store import KeyStore, SchemaVersionError

    try:
        return KeyStore(db or load_serving_config().database)
    except SchemaVersionError as err:  # behind or ahead: one line naming the command that fixes it
        raise fail(str(err)) from None


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="scorer (POST /score), reviewer (review UI), lead (review UI, dashboard, "
                    "rulings on appeals), agent (one agent's own scorecards and appeals; needs --agent), metrics "
                    "(GET /metrics, for a Prometheus scraper), or admin (everything).")],
    name: Annotated[str, typer.Option(help="Who or what uses the key, for `keys list`.")] = "",
    agent: Annotated[str | None, typer.Option(help="For --role agent: the agent id (as in the calls' agent_id) whose "
                     "calls the key may see.")] = None,
    db: DbOption = None,
) -> None:
    """Create a key and print it once: only its SHA-256 is stored."""
    try:
        key, row = open_key_store(db).create(role, name, agent)
    except ValueError as err:
        raise fail(str(err)) from None
    err_console.print(f"created {row.role} key {row.id}… (shown once; store it now):", highlight=False)
    print(key)


@keys_app.command("list")
def keys_list(db: DbOption = None) -> None:
    """Keys by id (their first characters), role, name and state; never the keys themselves."""
    table = Table("id", "role", "name", "created", "state")
    for row in open_key_store(db).list():
        table.add_row(row.id + "…", row.role, row.name, row.created.strftime("%Y-%m-%d %H:%M"),
                      "revoked" if row.revoked else "active")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id as `keys list` shows it.")], db: DbOption = None) -> None:
    """Revoke a key; servers stop accepting it within 30 seconds."""
    if not open_key_store(db).revoke(key_id.rstrip("…")):
        raise fail(f"no key with id {key_id}")
    console.print(f"revoked {key_id}")
