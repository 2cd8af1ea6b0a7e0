"""`callqa serve / bench-serve / report / bundles / keys / reviews`: the serving part's commands (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from callqa.console import SchemaOption, console, err_console, fail, schema_or_fail

from .db_cli import DbOption, db_app
from .feedback_cli import feedback_app
from .keys_cli import keys_app
from .reviews_cli import open_review_store, reviews_app

bundles_app = typer.Typer(help="Model bundles in the BentoML model store.", no_args_is_help=True)


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
    app.add_typer(feedback_app, name="feedback", rich_help_panel=panel)




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

    from callqa.bundle import BundleError
    from callqa.scorecard import ScorecardError
    from callqa.serving.config import load_serving_config
    from callqa.serving.middleware import is_loopback
    from callqa.session import ScoringSession

    if not auth and not is_loopback(host):
        raise fail(f"--no-auth serves without API keys, so it only binds loopback (127.0.0.1), not {host}")
    try:
        settings = load_serving_config(config)
        # A failed-gate or altered bundle, or a card for another schema, is refused here in one line, not by a
        # worker that fails to start.
        folder, info = ScoringSession.check(bundle or settings.bundle, settings.scorecard)
    except (BundleError, ScorecardError, FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    open_review_store(db or settings.database)  # a database behind or ahead of this callqa: refused here, in one line
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
        builder = ReportBuilder(open_review_store(db), schema_or_fail(schema), directory, tz=tz, ui_base=ui_base)
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


