"""`callqa reviews`: the review store from the command line — export reviewers' labels as training data, and
model–reviewer agreement. Calls go in with `callqa score FILE --into store` (callqa/batch, serving/store_sink.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from callqa.console import console, err_console, fail, schema_or_fail

from .db_cli import DbOption

reviews_app = typer.Typer(help="The review store: export reviewers' labels, model–reviewer agreement (calls go in with callqa score --into store).",
                          no_args_is_help=True)


def open_review_store(db: str | None):
    from callqa.serving.config import load_serving_config
    from callqa.serving.store import ReviewStore, SchemaVersionError

    settings = load_serving_config()
    try:
        return ReviewStore(db or settings.database, settings.review)
    except SchemaVersionError as err:  # behind or ahead: one line naming the command that fixes it
        raise fail(str(err)) from None


def _date(value: str | None):
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-11-01") from None


@reviews_app.command("export")
def reviews_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Labeled JSONL to write (the project's call format).")],
    since: Annotated[str | None, typer.Option(help="Only calls last reviewed on or after this date (YYYY-MM-DD, UTC).")] = None,
    schema_name: Annotated[str | None, typer.Option("--schema", "-s", help="Only for calls whose bundle the store "
                           "has no schema of (stores written before it recorded them): the label schema their reviews "
                           "follow. Otherwise each call's own bundle's schema is used.")] = None,
    db: DbOption = None,
) -> None:
    """Reviewed calls with their current labels (each head's latest correction) as labeled JSONL:
    meta.source = review (or appeal, when the latest change was a lead's ruling on an agent's appeal; adjudication,
    when it was a lead's 仲裁 of a 双评 whose two reviews differed),
    meta.reviewer = the key id of the latest review, meta.scorecard = the card as reviewers left it. Retrain with
    [bold]callqa train --data base.jsonl --data reviews.jsonl[/bold]."""
    from callqa.jsonl import write_calls
    from callqa.serving.store import item_points

    fallback = schema_or_fail(schema_name)
    unknown: set[str] = set()

    def labeled():
        for r in open_review_store(db).reviewed(_date(since)):
            schema = r.schema or fallback
            if schema is None:
                unknown.add(r.model)

            def typed(head: str, label, schema=schema):
                # Levels in the schema's own type (attitude 4, not "4"), as a labeled file written by hand has them.
                if schema is not None and isinstance(label, str) and head in schema.head_names:
                    return schema[head].typed(label)
                return label

            meta = {**r.call.meta, "source": r.source, "reviewer": r.reviewer,
                    "reviewed_at": r.reviewed_at.isoformat(), "model": r.model,
                    "schema": schema.name if schema is not None else None}
            if (record := r.record) is not None:
                # The score of record (the card as reviewers and appeal rulings left it): points per item, and the
                # deductions marked wrong or missed — labels for tuning rules and phrase lists.
                verdicts = r.scorecard_review.model_dump(exclude={"points"}) if r.scorecard_review else {}
                meta["scorecard"] = {"name": record.name, "hash": record.hash, "points": item_points(record),
                                     "total": record.total, "red_line": record.red_line, **verdicts}
            labels = {head: typed(head, label) for head, label in r.labels.items()}
            turns = r.call.turns
            if r.reasons:
                # A turn a reviewer marked as the reason for a head's label carries that head in its `reason` label
                # (a multilabel turn label), so corrections can teach turn-level heads.
                marked: dict[int, list[str]] = {}
                for head, indices in r.reasons.items():
                    for i in indices:
                        marked.setdefault(i, []).append(head)
                turns = [t.model_copy(update={"labels": {**t.labels, "reason": sorted(marked[i])}}) if i in marked else t
                         for i, t in enumerate(turns)]
            yield r.call.model_copy(update={"labels": labels, "meta": meta, "turns": turns})

    n = write_calls(out, labeled())
    console.print(f"{n} reviewed calls written to {out}")
    if unknown:
        err_console.print(f"warning: the store has no label schema for {', '.join(sorted(unknown))} (scored before "
                          f"callqa recorded it): their levels are written as stored; pass --schema to type them",
                          highlight=False, markup=False)


@reviews_app.command("agreement")
def reviews_agreement(
    schema: Annotated[str | None, typer.Option("--schema", "-s", help="Only for bundles the store has no schema of "
                      "(stores written before it recorded them); otherwise each bundle's own.")] = None,
    since: Annotated[str | None, typer.Option(help="Only calls last reviewed on or after this date (YYYY-MM-DD).")] = None,
    html: Annotated[Path | None, typer.Option(help="Also write the report as an HTML page here.")] = None,
    db: DbOption = None,
) -> None:
    """Per head, how well the model agrees with reviewers, overall and per ISO week: QWK (ordinal heads) or kappa,
    accuracy, and a confusion matrix (rows: reviewer, columns: model). For the scorecard: per rule, precision (hits
    reviewers confirmed / hits reviewed), the 漏扣 marked on its items and recall (confirmed / (confirmed + 漏扣)), and
    per item, how often reviewers gave the scorecard's points."""
    from callqa.serving.agreement import (
        agreement,
        agreement_html,
        group_by_model,
        measure_text,
        scorecard_agreement,
    )

    fallback = schema_or_fail(schema)
    reviewed = list(open_review_store(db).reviewed(_date(since)))
    card = scorecard_agreement(reviewed)
    report = []
    # Per bundle: each model is compared with reviewers on its own heads and classes.
    for model, calls in group_by_model(reviewed).items():
        label_schema = calls[0].schema or fallback
        if label_schema is None:
            err_console.print(f"{model}: {len(calls)} reviewed calls, but the store has no label schema for this bundle; "
                              f"pass --schema", highlight=False, markup=False)
            continue
        found = agreement(calls, label_schema)
        report += found
        for h in found:
            h.display = f"{h.display} · {model}"
    if not report:
        console.print("no reviewed calls yet")
    for h in report:
        table = Table(title=f"{h.display} ({h.head})")
        for col in ("week", "n", "accuracy", h.metric):
            table.add_column(col, justify="left" if col == "week" else "right")
        for week, a in [*h.weeks.items(), ("all", h.overall)]:
            table.add_row(week, str(a.n), f"{a.accuracy:.3f}", measure_text(a.kappa))
        console.print(table)
        if h.confusion is not None:
            matrix = Table(title="confusion (rows: reviewer, columns: model)", show_header=True)
            matrix.add_column("")
            for name in h.classes:
                matrix.add_column(name, justify="right")
            for name, row in zip(h.classes, h.confusion):
                matrix.add_row(name, *map(str, row))
            console.print(matrix)
    if card.calls:
        rules = Table("rule", "hits reviewed", "误判", "precision", "漏扣", "recall",
                      title=f"scorecard rules ({card.calls} reviewed calls)")
        for r in card.rules:
            rules.add_row(f"{r.rule} {r.title}", str(r.reviewed), str(r.wrong), measure_text(r.precision), str(r.missed),
                          measure_text(r.recall))
        console.print(rules)
        items = Table("item", "n", "same points", "mean |Δ|", title="scorecard items: reviewer vs scorecard")
        for i in card.items:
            items.add_row(f"{i.item} {i.title}", str(i.n), f"{i.exact:.3f}", f"{i.mae:.2f}")
        console.print(items)
    if html:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(agreement_html(report, "callqa 模型与复核员一致性", card), encoding="utf-8")
        console.print(f"written to {html}")


@reviews_app.command("export-calibration")
def export_calibration(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL of labeled calls to write.", metavar="<file>")],
    db: DbOption = None,
) -> None:
    """The calls of every closed calibration session (校准) with the reviewers' labels as votes (meta.source =
    calibration): targets that carry how split the inspectors were, for `callqa train --data`."""
    from callqa.jsonl import write_calls
    from callqa.serving.store import Calibrations

    store = open_review_store(db)
    n = write_calls(out, Calibrations(store.engine, None).consensus_calls())
    console.print(f"{n} calibrated calls written to {out} (labels as the reviewers' votes, meta.source = calibration)")
