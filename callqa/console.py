"""Terminal output and option types shared by every part's commands (callqa/cli.py, training/cli.py,
serving/cli.py): one console, one way to fail, one --schema option."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

# soft_wrap: a printed command or path is never broken across lines, whatever the terminal width (copy-paste works).
console = Console(soft_wrap=True)
# Error lines stay one line each (soft_wrap) so they can be grepped and clicked as file:line.
err_console = Console(stderr=True, soft_wrap=True)

SchemaOption = Annotated[
    str | None,
    typer.Option("--schema", "-s", help="Label schema: a YAML path or a shipped name (callcenter, stc3). "
                 "With a schema, labels are checked against its heads and classes."),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise (``raise fail(...) from None``)."""
    # The message is text, not markup: "callqa[scale]" and "calls[0]" are printed as written.
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def schema_or_fail(name: str | None):
    """The named schema, or None for no name; a bad schema ends the command with its one-line reason."""
    from callqa.schema import SchemaError, load_schema

    if name is None:
        return None
    try:
        return load_schema(name)
    except SchemaError as err:
        raise fail(str(err)) from None
