"""`callqa serve / bench-serve / report / bundles / keys / reviews`: the serving part's commands (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from callqa.console import SchemaOption, console, err_console, fail, schema_or_fail

from .db_cli import db_app

bundles_app = typer.Typer(help="Model bundles in the BentoML model store.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the scoring API and review UI (stored hashed; shown once).",
                       no_args_is_help=True)
reviews_app = typer.Typer(help="The review store: add scored calls, export reviewers' labels, model–reviewer agreement.",
                          no_args_is_help=True)
DbOption = Annotated[str | None, typer.Option(help="Database URL (default: the serving config's, sqlite:///var/callqa.db).")]


def register(app: typer.Typer) -> None:
    """Add the serving commands to the `callqa` command (callqa/cli.py finds this through an entry point)."""
    panel = "Serving and review"
    app.command("serve", rich_help_panel=panel)(serve_cmd)
    app.command("bench-serve", rich_help_panel=panel)(bench_serve_cmd)
    app.command("report", rich_help_panel=panel)(report_cmd)
    app.add_typer(bundles_app, name="bundles", rich_help_panel=panel)
    app.add_typer(keys_app, name="keys", rich_help_panel=panel)
    app.add_typer(reviews_app, name="reviews", rich_help_panel=panel)
    app.add_typer(db_app, name="db", rich_help_panel=panel)




@bundles_app.command("list")
def bundles_list() -> None:
    """Bundles in the BentoML model store ($BENTOML_HOME), newest first, with their gate and validation NMD."""
    import bentoml

    from callqa.bundle import BENTO_MODEL_NAME, BundleError, read_bundle_info

    models = sorted((m for m in bentoml.models.list() if m.tag.name == BENTO_MODEL_NAME),
                    key=lambda m: m.info.creation_time, reverse=True)
    if not models:
        console.print("no bundles in the store; make one with `callqa export --run RUN`")
        return
    table = Table(title=f"{BENTO_MODEL_NAME} bundles")
    table.add_column("tag", no_wrap=True)
    for col in ("created", "run", "int8", "gate", "validation NMD (int8)", "MB"):
        table.add_column(col)
    for m in models:
        try:
            info = read_bundle_info(Path(m.path))
        except BundleError as err:
            table.add_row(str(m.tag), "", "", "", f"[red]unreadable: {err}[/red]", "", "")
            continue
        gate = "passed" if info.gate.passed else ("[yellow]forced[/yellow]" if info.gate.forced else "[red]failed[/red]")
        int8 = info.metrics.get("validation", {}).get("int8", {})
        nmd = "\n".join(f"{h} {m_['nmd']:.3f}" for h, m_ in int8.items() if "nmd" in m_)
        size = sum(p.stat().st_size for p in Path(m.path).iterdir() if p.is_file()) / 1e6
        table.add_row(str(m.tag), m.info.creation_time.strftime("%Y-%m-%d %H:%M"), Path(info.run).name, info.quantization, gate,
                      nmd, f"{size:.0f}")
    console.print(table)


@bundles_app.command("bento")
def bundles_bento(
    bundle: Annotated[str, typer.Option("--bundle", "-b", help="Bundle folder or tag; its version must be in the "
                      "store (callqa export puts it there).")] = "callqa-scorer:latest",
    work: Annotated[Path, typer.Option(help="Build context: the callqa wheel and bentofile.yaml go here.")] = Path("var/bento"),
) -> None:
    """Build a Bento (BentoML's deployable unit) of the scoring service and the bundle: the callqa wheel, the serving
    dependencies pinned as installed here (no torch), the model. `bentoml containerize TAG` makes an image of it."""
    from callqa.serving.bento import BentoError, build_bento

    try:
        tag = build_bento(bundle, work)
    except (BentoError, FileNotFoundError) as err:
        raise fail(str(err)) from None
    console.print(f"built {tag}; run it with `bentoml serve {tag}` (set CALLQA_DB), or make an image with "
                  f"`bentoml containerize {tag}` (needs Docker; docs/scale.md)")


def _port_free(host: str, port: int) -> None:
    """Fail in one line when the port is taken (BentoML's process manager would print a 56-line traceback)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as err:
            raise fail(f"cannot listen on {host}:{port}: {err.strerror or err} (another server? choose --port)") from None


def serve_cmd(
    bundle: Annotated[str | None, typer.Option("--bundle", "-b", help="Bundle folder or BentoML tag "
                      "(callqa-scorer:VERSION; default: the config's, callqa-scorer:latest).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback requires auth.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Serving settings YAML (default "
                      "configs/serving/default.yaml).", exists=True, dir_okay=False)] = None,
    db: Annotated[str | None, typer.Option(help="Database URL for API keys and reviews (default: the config's).")] = None,
    auth: Annotated[bool, typer.Option(help="Require API keys. --no-auth is for a local demo and is refused "
                    "unless --host is loopback.")] = True,
    agents: Annotated[Path | None, typer.Option(help="Agent directory (CSV agent_id,name,team or YAML): the names "
                      "and teams the dashboard, reports and queue show (default: the config's).", exists=True,
                      dir_okay=False)] = None,
) -> None:
    """Serve a bundle: POST /score, GET /api/model, /healthz, /metrics, OpenAPI docs at /."""
    import os
    import sys

    from callqa.bundle import BundleError, load_bundle, resolve_bundle
    from callqa.pipeline import ScoringPipeline
    from callqa.scorecard import ScorecardError, load_scorecard
    from callqa.serving.config import load_serving_config
    from callqa.serving.middleware import is_loopback

    if not auth and not is_loopback(host):
        raise fail(f"--no-auth serves without API keys, so it only binds loopback (127.0.0.1), not {host}")
    try:
        settings = load_serving_config(config)
        folder = resolve_bundle(bundle or settings.bundle)
        info, _ = load_bundle(folder)  # refuse a failed-gate or altered bundle here, with its reason
        # A card for another schema is refused here, in one line, not by a worker that fails to start.
        ScoringPipeline(info, load_scorecard(settings.scorecard) if settings.scorecard else None)
    except (BundleError, ScorecardError, FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    _review_store(db or settings.database)  # a database behind or ahead of this callqa: refused here, in one line
    _port_free(host, port)
    if info.gate.forced:
        err_console.print(f"[yellow]warning:[/yellow] {info.tag} was exported past a failed gate: "
                          + "; ".join(info.gate.failures), highlight=False)
    env = dict(os.environ, CALLQA_BUNDLE=str(folder), BENTOML_DO_NOT_TRACK="True")
    if config:
        env["CALLQA_SERVING_CONFIG"] = str(config.resolve())
    if db:
        env["CALLQA_DB"] = db
    if agents:
        env["CALLQA_AGENTS"] = str(agents.resolve())
    if not auth:
        env["CALLQA_AUTH"] = "off"
    console.print(f"serving {info.tag} on http://{host}:{port} (auth {'on' if auth else 'OFF: local demo'})")
    os.execve(sys.executable, [sys.executable, "-m", "bentoml", "serve", "callqa.serving.service:ScoringAPI",
                               "--host", host, "--port", str(port)], env)



def bench_serve_cmd(
    url: Annotated[str, typer.Option(help="A running scoring API, e.g. http://127.0.0.1:3000.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Calls to send, one per request.", exists=True, dir_okay=False)],
    key: Annotated[str | None, typer.Option(envvar="CALLQA_KEY", help="A scorer key (or $CALLQA_KEY); none for --no-auth demos.")] = None,
    concurrency: Annotated[str, typer.Option(help="Comma list of client counts.")] = "1,8,32",
    requests: Annotated[int, typer.Option(help="Requests per concurrency level.")] = 96,
    baseline: Annotated[Path | None, typer.Option(help="A `callqa bench` result: report served throughput as a "
                        "share of raw onnxruntime batch-32 throughput.", exists=True, dir_okay=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Result JSON (default benchmarks/results/serve-DATE.json).")] = None,
) -> None:
    """Load a running scoring API at several concurrency levels: calls/s, p50/p99 latency, errors."""
    import json
    import time

    from callqa.serving.loadtest import load_test

    levels = tuple(int(x) for x in concurrency.split(","))
    result = load_test(url, data, key, levels, requests, log=console.print)
    if baseline:
        bench = json.loads(baseline.read_text(encoding="utf-8"))
        served = bench["engines"][2]  # the bundle's int8 graph, what the server runs
        raw = served["batch"]["32"]["calls_per_s"]
        result["baseline"] = {"file": str(baseline), "engine": served["engine"], "calls_per_s_batch32": raw}
        for entry in result["levels"].values():
            entry["ratio_to_raw_ort"] = entry["calls_per_s"] / raw
    out = out or Path("benchmarks/results") / f"serve-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = Table("concurrency", "requests", "errors", "calls/s", "p50 ms", "p99 ms", "× raw ORT b=32")
    for level, e in result["levels"].items():
        table.add_row(level, str(e["requests"]), str(e["errors"]), f"{e['calls_per_s']:.1f}", f"{e['p50_ms']:.0f}",
                      f"{e['p99_ms']:.0f}", f"{e['ratio_to_raw_ort']:.2f}" if "ratio_to_raw_ort" in e else "-")
    console.print(table)
    console.print(f"written to {out}")



def _key_store(db: str | None):
    from callqa.serving.auth import KeyStore
    from callqa.serving.config import load_serving_config
    from callqa.serving.migrations import SchemaVersionError

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
        key, row = _key_store(db).create(role, name, agent)
    except ValueError as err:
        raise fail(str(err)) from None
    err_console.print(f"created {row.role} key {row.id}… (shown once; store it now):", highlight=False)
    print(key)


@keys_app.command("list")
def keys_list(db: DbOption = None) -> None:
    """Keys by id (their first characters), role, name and state; never the keys themselves."""
    table = Table("id", "role", "name", "created", "state")
    for row in _key_store(db).list():
        table.add_row(row.id + "…", row.role, row.name, row.created.strftime("%Y-%m-%d %H:%M"),
                      "revoked" if row.revoked else "active")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id as `keys list` shows it.")], db: DbOption = None) -> None:
    """Revoke a key; servers stop accepting it within 30 seconds."""
    if not _key_store(db).revoke(key_id.rstrip("…")):
        raise fail(f"no key with id {key_id}")
    console.print(f"revoked {key_id}")



def report_cmd(
    period: Annotated[str, typer.Option(help="A calendar month (2026-03) or an ISO week (2026-W10), in --tz.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="report.html, report.xlsx or report.csv (a folder of CSVs "
                                      "named after it); a path without one of these suffixes is a folder for all three.")],
    db: DbOption = None,
    team: Annotated[str | None, typer.Option(help="Only this team's agents (needs --agents).")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's calls.")] = None,
    agents: Annotated[Path | None, typer.Option(help="Agent directory: CSV agent_id,name,team or YAML id → {name, team}.",
                                                exists=True, dir_okay=False)] = None,
    tz: Annotated[str, typer.Option(help="Time zone of the calendar periods (started_at is stored in UTC).")] = "Asia/Shanghai",
    schema: SchemaOption = "callcenter",
    ui_base: Annotated[str, typer.Option(help="Base URL of the review UI, for links to the worst calls.")] = "http://127.0.0.1:3000",
) -> None:
    """The QA report (质检月报/周报) of a period from the review store: calls per category, per agent the average
    total, red lines and per-item averages against the standard points, a 6-period trend, the most frequent
    deductions with redacted examples, the worst calls with links, and model–reviewer agreement. Reviewed calls
    count with the reviewer's points; the report says how many."""
    from zoneinfo import ZoneInfoNotFoundError

    from callqa.serving.directory import AgentDirectory, DirectoryError
    from callqa.serving.report import ReportBuilder, write_report

    try:
        directory = AgentDirectory.load(agents) if agents else AgentDirectory()
        builder = ReportBuilder(_review_store(db), schema_or_fail(schema), directory, tz=tz, ui_base=ui_base)
        report = builder.build(period, team=team, agent=agent)
    except (DirectoryError, ValueError, LookupError, ZoneInfoNotFoundError) as err:
        raise fail(str(err)) from None
    paths = write_report(report, out)
    table = Table(*report.table("agents").columns[:7], title=f"{report.title} · {report.scope}")
    for row in report.table("agents").rows:
        table.add_row(*("–" if v is None else str(v) for v in row[:7]))
    console.print(table)
    console.print(report.source)
    for path in paths[:3]:
        console.print(f"written {path}")


def _review_store(db: str | None):
    from callqa.serving.config import load_serving_config
    from callqa.serving.migrations import SchemaVersionError
    from callqa.serving.reviews import ReviewStore

    settings = load_serving_config()
    try:
        return ReviewStore(db or settings.database, settings.review)
    except SchemaVersionError as err:  # behind or ahead: one line naming the command that fixes it
        raise fail(str(err)) from None


@reviews_app.command("ingest")
def reviews_ingest(
    file: Annotated[Path, typer.Argument(help="A JSONL call file (labels, if any, are ignored).", exists=True, dir_okay=False)],
    bundle: Annotated[str | None, typer.Option("--bundle", "-b", help="Bundle folder or tag that scores the calls "
                      "(default: the serving config's, callqa-scorer:latest).")] = None,
    db: DbOption = None,
    batch_size: Annotated[int, typer.Option(help="Calls scored and stored per transaction.", min=1)] = 32,
    redact: Annotated[bool, typer.Option(help="Mask phone, ID, bank card numbers and e-mails before storing.")] = False,
    scorecard: Annotated[str | None, typer.Option(help="QA scorecard to grade the calls on: a shipped name or a "
                         "YAML path (default: the serving config's, default); 'none' skips it.")] = None,
) -> None:
    """Score a call file with a bundle (onnxruntime) and the QA scorecard, and add the calls, predictions and
    scorecards to the review queue. Bad lines are reported as file:line:field and skipped; the valid calls are
    stored; exit 1 if any line was bad."""
    from rich.progress import Progress

    from callqa.bundle import BundleError, resolve_bundle
    from callqa.jsonl import read_calls
    from callqa.pipeline import ScoringPipeline
    from callqa.redact import redact_call
    from callqa.scorecard import ScorecardError, load_scorecard
    from callqa.scorer import OnnxScorer, ScoringThreads
    from callqa.serving.config import load_serving_config
    from callqa.serving.reviews import ingest

    settings = load_serving_config()
    card_name = settings.scorecard if scorecard is None else (None if scorecard == "none" else scorecard)
    try:
        scorer = OnnxScorer.from_bundle(resolve_bundle(bundle or settings.bundle), threads=1)  # a run per core
        pipeline = ScoringPipeline(scorer.info, load_scorecard(card_name) if card_name else None)
    except (BundleError, ScorecardError, FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    parsed = read_calls(file)
    for error in parsed.errors:
        err_console.print(str(error), highlight=False, markup=False)
    store, info = _review_store(db), scorer.info
    calls = [redact_call(line.call) if redact else line.call for line in parsed.calls]
    with Progress(console=err_console, transient=True) as progress, ScoringThreads(scorer) as threads:
        task = progress.add_task(f"scoring with {info.tag}", total=len(calls))
        added = ingest(store, threads, pipeline, calls, batch_size, advance=lambda n: progress.advance(task, n))
    counts = store.counts()
    console.print(f"{len(calls)} calls scored by {info.tag}, {added} new predictions stored "
                  f"({counts['calls']} calls in the store, {counts['reviewed']} reviewed)"
                  + (f"; {len(parsed.errors)} bad line(s) skipped" if parsed.errors else ""))
    if parsed.errors:
        raise typer.Exit(1)


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
    meta.source = review (or appeal, when the latest change was a lead's ruling on an agent's appeal),
    meta.reviewer = the key id of the latest review, meta.scorecard = the card as reviewers left it. Retrain with
    [bold]callqa train --data base.jsonl --data reviews.jsonl[/bold]."""
    from callqa.jsonl import write_calls
    from callqa.serving.record import item_points

    fallback = schema_or_fail(schema_name)
    unknown: set[str] = set()

    def labeled():
        for r in _review_store(db).reviewed(_date(since)):
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
    reviewers confirmed / hits reviewed), and per item, how often reviewers gave the scorecard's points."""
    from callqa.serving.agreement import agreement, agreement_html, group_by_model, scorecard_agreement

    fallback = schema_or_fail(schema)
    reviewed = list(_review_store(db).reviewed(_date(since)))
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
            table.add_row(week, str(a.n), f"{a.accuracy:.3f}", "–" if a.kappa is None else f"{a.kappa:.3f}")
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
        rules = Table("rule", "hits reviewed", "误判", "precision", title=f"scorecard rules ({card.calls} reviewed calls)")
        for r in card.rules:
            rules.add_row(f"{r.rule} {r.title}", str(r.reviewed), str(r.wrong), f"{r.precision:.3f}")
        console.print(rules)
        items = Table("item", "n", "same points", "mean |Δ|", title="scorecard items: reviewer vs scorecard")
        for i in card.items:
            items.add_row(f"{i.item} {i.title}", str(i.n), f"{i.exact:.3f}", f"{i.mae:.2f}")
        console.print(items)
    if html:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(agreement_html(report, "callqa 模型与复核员一致性", card), encoding="utf-8")
        console.print(f"written to {html}")
