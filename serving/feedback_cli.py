"""`callqa feedback`: customer survey answers into the review store, where the report's 客户满意度 section sets them
against the model's scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from callqa.console import console, err_console, fail

from .db_cli import DbOption

feedback_app = typer.Typer(help="Customer feedback (客户满意度): import survey answers about calls.", no_args_is_help=True)


@feedback_app.command("import")
def import_survey(
    survey: Annotated[Path, typer.Argument(help="A survey export: CSV, one answer per row.", exists=True,
                                           dir_okay=False, metavar="FILE")],
    mapping: Annotated[Path, typer.Option("--mapping", "-m", help="YAML naming the file's columns and mapping its "
                                          "rating scale to 1–5 (serving/feedback_import.py).", exists=True,
                                          dir_okay=False, metavar="<file>")],
    db: DbOption = None,
) -> None:
    """Import survey answers (回访 / 短信 / IVR / 在线): comments are redacted like transcripts; every bad row is named
    by file:line: field: problem and the good rows are kept."""
    from callqa.serving.store import Feedbacks

    from .feedback_import import MAX_ERRORS, SurveyMapping, read_survey
    from .reviews_cli import open_review_store

    try:
        survey_mapping = SurveyMapping.from_yaml(mapping)
    except ValueError as err:
        raise fail(str(err)) from None
    answers, problems = read_survey(survey, survey_mapping)
    for problem in problems[:MAX_ERRORS]:
        err_console.print(problem, markup=False, highlight=False)
    if len(problems) > MAX_ERRORS:
        err_console.print(f"… and {len(problems) - MAX_ERRORS} more bad rows")
    store = open_review_store(db)
    added = Feedbacks(store.engine).add(answers, "import") if answers else 0
    console.print(f"{added} answers imported from {survey.name}" + (f"; {len(problems)} bad rows skipped" if problems else ""))
    if problems and not answers:
        raise typer.Exit(1)


@feedback_app.command("export")
def export_labels(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL of labeled calls to write.", metavar="<file>")],
    db: DbOption = None,
) -> None:
    """Surveyed calls as weak training labels: each call labelled on its model's role: satisfaction head at the level
    the customer's rating falls on, meta.source = survey. Train with them beside reviewed calls and weigh them down:
    loss.source_weights: {survey: 0.3} in the training recipe."""
    from callqa.jsonl import write_calls
    from callqa.serving.store import Feedbacks

    from .reviews_cli import open_review_store

    store = open_review_store(db)
    n = write_calls(out, Feedbacks(store.engine).weak_labels())
    console.print(f"{n} surveyed calls written to {out}")
