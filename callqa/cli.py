"""The ``callqa`` command. The core owns the data commands; training and serving add their own commands through
the ``callqa.commands`` entry point group (training/cli.py, serving/cli.py), so this torch-free core never imports
them, and an installation without a part simply has no such commands."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from callqa import __version__
from callqa.console import SchemaOption, console, err_console, fail, schema_or_fail
from callqa.scorecard_cli import scorecard_app

app = typer.Typer(
    help="callqa — call-center quality inspection (智能质检): data tools, training, export and serving.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
data_app = typer.Typer(help="Validate, inspect, split, import and redact call files (JSONL).", no_args_is_help=True)
app.add_typer(data_app, name="data", rich_help_panel="Data")
app.add_typer(scorecard_app, name="scorecard", rich_help_panel="Data")


def _version(value: bool) -> None:
    if value:
        console.print(f"callqa {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """callqa — score every call on the QA scorecard, and learn from reviewers' corrections."""


@app.command("score", rich_help_panel="Scoring")
def score(
    inputs: Annotated[list[str], typer.Argument(help="JSONL call files, globs (quoted) or folders of *.jsonl.")],
    bundle: Annotated[str, typer.Option("--bundle", "-b", help="Bundle folder or tag in the BentoML model store "
                                        "(callqa-scorer:VERSION, or latest).")],
    into: Annotated[str, typer.Option(help="Where the scores go: parquet (flat columns, part-*.parquet), jsonl (each "
                                      "call's result as /score answers it) or store (the review store: the queue, "
                                      "reports and exports read them).")] = "parquet",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="--into parquet/jsonl: the output folder (parts and "
                                             "rejects-*.jsonl for bad lines).")] = None,
    db: Annotated[str | None, typer.Option(help="--into store: the database URL (default: the serving config's, "
                                           "sqlite:///var/callqa.db).")] = None,
    scorecard: Annotated[str, typer.Option(help="QA scorecard: a shipped name, a YAML path, or none.")] = "default",
    redact: Annotated[bool, typer.Option(help="Mask phone, ID, bank card numbers and e-mails before scoring and "
                                         "keeping the calls.")] = False,
    chunk_size: Annotated[int, typer.Option(help="Input lines per output part (the unit a rerun skips).", min=1)] = 2000,
    batch_size: Annotated[int, typer.Option(help="Calls per onnxruntime run.", min=1)] = 64,
    threads: Annotated[int | None, typer.Option(help="Cores the local engine uses: that many model runs side by side, "
                                                "one onnxruntime thread each (default: all cores).", min=1)] = None,
    engine: Annotated[str, typer.Option(help="local: this process, a model run per core; ray: a Ray "
                                        "Data job with an actor pool (pip install 'callqa\\[scale]').")] = "local",
    address: Annotated[str | None, typer.Option(help="--engine ray: an existing cluster (auto, or ray://host:10001); "
                                                "default: a local Ray on this machine.")] = None,
    workers: Annotated[int | None, typer.Option(help="--engine ray: actors (each loads the bundle once; default: "
                                                "one per CPU of the cluster).", min=1)] = None,
) -> None:
    """Score call files in bulk through the same pipeline as /score. [bold]--into parquet[/bold] (default): flat
    columns — per head the level, confidence, expected score and distribution (topics over threshold), the scorecard
    total, red line and item points, the model tag and the card's hash; [bold]--into jsonl[/bold]: /score's result
    per call; [bold]--into store[/bold]: the review queue. Bad lines are reported as file:line:field and counted;
    they never stop the job (exit 1 at the end). A killed job, run again, skips the parts already written."""
    from callqa.batch import ENGINES, RayEngine, input_files, make_sink
    from callqa.bundle import BundleError
    from callqa.scorecard import ScorecardError
    from callqa.session import ScoringSession

    if engine not in ENGINES:
        raise fail(f"--engine: {' or '.join(ENGINES)}, not {engine!r}")
    if into != "store" and out is None:
        raise fail(f"--into {into} writes a folder: give it with --out")
    try:
        files = input_files(inputs)
        # One onnxruntime thread per run; `threads` runs side by side use the cores.
        session = ScoringSession(bundle, scorecard, run_threads=1, runs=threads, redact=redact)
        # The store's sink takes "" for the serving config's database; a store behind or ahead of this callqa is
        # refused (SchemaVersionError, a RuntimeError) in one line naming the command that fixes it.
        sink = make_sink(into, str(out) if into != "store" else (db or ""))
    except (BundleError, ScorecardError, FileNotFoundError, ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    except ImportError as err:
        raise fail(f"--into {into} needs the serving side ({err.name}): pip install 'callqa[serve]'") from None
    try:
        runner = RayEngine(address, workers) if engine == "ray" else ENGINES[engine]()
        result = _run_with_progress(runner, session, files, sink, chunk_size, batch_size)
    except ImportError:
        raise fail("--engine ray needs Ray: pip install 'callqa[scale]'") from None
    for error in sink.kept_rejects():
        err_console.print(str(error), highlight=False, markup=False)
    console.print(f"{result.calls} calls scored by {session.tag} into {sink.where()} ({result.parts_written} parts "
                  f"written, {result.parts_skipped} already there{sink.summary()}; padding {result.padding_waste:.1%} "
                  f"of the tokens computed); {result.rejected_lines} bad lines{sink.rejects_where()}")
    if result.rejected_lines:
        raise typer.Exit(1)


def _run_with_progress(runner, session, files, sink, chunk_size: int, batch_size: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    lines = 0
    for path in files:
        with open(path, "rb") as handle:
            lines += sum(1 for _ in handle)
    columns = [TextColumn(f"scoring with {session.tag}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("score", total=lines)
        return runner.run(session, files, sink, chunk_size, batch_size, advance=lambda n: progress.advance(task, n))


@data_app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="JSONL call files.", exists=True, dir_okay=False)],
    schema: SchemaOption = None,
    max_errors: Annotated[int, typer.Option(help="Print at most this many errors per file (all are counted).")] = 200,
) -> None:
    """Check call files line by line. Every bad line is reported as [bold]file:line:field: message[/bold];
    exits non-zero when any line is bad."""
    from callqa.jsonl import read_calls

    label_schema = schema_or_fail(schema)
    table = Table(title="validation", show_lines=False)
    for col in ("file", "valid", "invalid lines", "errors"):
        table.add_column(col, justify="right" if col != "file" else "left")
    total_bad = total_good = 0
    for path in files:
        result = read_calls(path, label_schema)
        for error in result.errors[:max_errors]:
            err_console.print(str(error), highlight=False, markup=False)
        if len(result.errors) > max_errors:
            err_console.print(f"{path}: … {len(result.errors) - max_errors} more errors not shown")
        bad_lines = len({e.line for e in result.errors})
        total_bad += bad_lines
        total_good += len(result.calls)
        table.add_row(str(path), str(len(result.calls)), str(bad_lines), str(len(result.errors)))
    console.print(table)
    console.print(f"{total_good} valid, {total_bad} invalid line(s) in {len(files)} file(s)")
    if total_bad:
        raise typer.Exit(1)


@data_app.command("stats")
def stats(
    file: Annotated[Path, typer.Argument(help="A JSONL call file.", exists=True, dir_okay=False)],
    schema: SchemaOption = None,
    tokenizer: Annotated[Path | None, typer.Option(help="tokenizer.json, or a model folder holding one: adds "
                                                 "token-length percentiles and windows per call.")] = None,
    prefix: Annotated[str, typer.Option(help='Text put before every window (e5 encoders: "query: ").')] = "",
    max_length: Annotated[int, typer.Option(help="Tokens per window, for the windows-per-call count.")] = 256,
    stride: Annotated[int, typer.Option(help="Tokens shared by consecutive windows.")] = 64,
) -> None:
    """Label distributions per head, turn/character/token-length percentiles, and calls per agent and month.
    With --schema, heads and classes show their Chinese names, and classes no call has are listed (at 0)."""
    from callqa.jsonl import CallFileError, load_calls
    from callqa.render import CallEncoder, RenderSpec
    from callqa.stats import call_stats, stats_tables

    label_schema = schema_or_fail(schema)
    try:
        calls = load_calls(file, label_schema)
    except CallFileError as err:
        raise fail(str(err)) from None
    encoder = None
    if tokenizer is not None:
        try:
            encoder = CallEncoder.from_file(tokenizer, RenderSpec(prefix=prefix, max_length=max_length, stride=stride))
        except (FileNotFoundError, ValueError) as err:
            raise fail(str(err)) from None
    s = call_stats(calls, encoder)
    console.print(f"[bold]{file}[/bold]: {s.n_calls} calls")
    for table in stats_tables(s, label_schema, max_length):
        console.print(table)


@data_app.command("split")
def split(
    file: Annotated[Path, typer.Argument(help="A JSONL call file.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for train.jsonl, validation.jsonl, test.jsonl.")],
    ratios: Annotated[str, typer.Option(help="train,validation,test shares summing to 1.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and file give the same split.")] = 0,
    stratify: Annotated[str | None, typer.Option(help="Head to stratify on (its majority class per call).")] = None,
    group_by_agent: Annotated[bool, typer.Option(help="Keep each agent's calls within one split.")] = False,
) -> None:
    """Deterministic split of a call file. Lines are copied byte for byte; a file with bad lines is refused."""
    from callqa.jsonl import read_calls
    from callqa.split import SPLIT_NAMES, split_calls

    try:
        shares = [float(r) for r in ratios.split(",")]
    except ValueError:
        raise fail(f"--ratios must be numbers separated by commas, got {ratios!r}") from None
    if len(shares) != 3:
        raise fail(f"--ratios needs three shares (train,validation,test), got {len(shares)}")
    parsed = read_calls(file)
    if parsed.errors:
        for e in parsed.errors[:20]:
            err_console.print(str(e), markup=False, highlight=False)
        raise fail(f"{file} has {len(parsed.errors)} bad line(s); fix them first (callqa data validate)")
    calls = [c.call for c in parsed.calls]
    try:
        parts = split_calls(calls, shares, seed=seed, stratify=stratify, group_by_agent=group_by_agent)
    except ValueError as err:
        raise fail(str(err)) from None
    out.mkdir(parents=True, exist_ok=True)
    table = Table(title=f"split of {file} (seed {seed})")
    table.add_column("split")
    table.add_column("calls", justify="right")
    table.add_column("agents", justify="right")
    for name, indices in zip(SPLIT_NAMES, parts):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for i in indices:
                handle.write(parsed.calls[i].raw + "\n")
        table.add_row(name, str(len(indices)), str(len({calls[i].agent_id for i in indices if calls[i].agent_id})))
    console.print(table)
    console.print(f"written to {out}/")


@data_app.command("import-stc3")
def import_stc3(
    source: Annotated[Path, typer.Argument(help="STC-3 JSON file, e.g. ../shared/data/stc3/train_cn.json", exists=True)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file.")],
) -> None:
    """Convert STC-3 dialogues to the call format: A/S/E as annotator vote distributions, nuggets kept per turn."""
    from callqa.jsonl import write_calls
    from callqa.stc3 import Stc3FormatError, read_stc3

    try:
        n = write_calls(out, read_stc3(source))
    except Stc3FormatError as err:
        raise fail(str(err)) from None
    console.print(f"{n} calls written to {out}")


@data_app.command("import-csv")
def import_csv(
    source: Annotated[Path, typer.Argument(help="A CSV file, one row per turn.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file in the call format.")],
    mapping: Annotated[Path | None, typer.Option(help="YAML mapping of columns (keys as the options below; "
                       "docs/your-data.md); options given on the command line override it.", exists=True,
                       dir_okay=False)] = None,
    call_id: Annotated[str | None, typer.Option(help="Column with the call id.")] = None,
    speaker: Annotated[str | None, typer.Option(help="Column with the speaker (or the audio channel).")] = None,
    text: Annotated[str | None, typer.Option(help="Column with the utterance.")] = None,
    start: Annotated[str | None, typer.Option(help="Column with the turn's start time.")] = None,
    end: Annotated[str | None, typer.Option(help="Column with the turn's end time.")] = None,
    time_unit: Annotated[str | None, typer.Option(help="s or ms.")] = None,
    agent_id: Annotated[str | None, typer.Option(help="Column with the agent's id.")] = None,
    started_at: Annotated[str | None, typer.Option(help="Column with the call's start time (ISO 8601).")] = None,
    agent_values: Annotated[str | None, typer.Option(help="Comma list of speaker values meaning the agent "
                            "(default: agent,坐席,客服,A,0).")] = None,
    customer_values: Annotated[str | None, typer.Option(help="Comma list of speaker values meaning the customer "
                               "(default: customer,客户,用户,C,1).")] = None,
    label: Annotated[list[str] | None, typer.Option(help="HEAD=COLUMN: a per-call label column; repeat.")] = None,
    encoding: Annotated[str | None, typer.Option(help="File encoding (default utf-8-sig; gb18030 for GBK).")] = None,
    schema: SchemaOption = None,
) -> None:
    """Convert a CSV export (speech-to-text or a call-center platform: one row per utterance) to the call format.
    Bad rows are reported as [bold]file:line:column: message[/bold] and their calls left out; exit 1 if any."""
    from callqa.importers import CsvMapping, read_csv_calls
    from callqa.jsonl import write_calls

    given = {"call_id": call_id, "speaker": speaker, "text": text, "start": start, "end": end, "time_unit": time_unit,
             "agent_id": agent_id, "started_at": started_at, "encoding": encoding,
             "agent_values": tuple(agent_values.split(",")) if agent_values else None,
             "customer_values": tuple(customer_values.split(",")) if customer_values else None}
    if label:
        pairs = [item.partition("=") for item in label]
        if any(not head or not column for head, _, column in pairs):
            raise fail("--label takes HEAD=COLUMN, e.g. --label attitude=态度评分")
        given["labels"] = {head: column for head, _, column in pairs}
    try:
        base = CsvMapping.from_yaml(mapping).model_dump() if mapping else {}
        settings = CsvMapping.model_validate({**base, **{k: v for k, v in given.items() if v is not None}})
    except ValueError as err:
        raise fail(str(err).splitlines()[0] if not mapping else str(err)) from None
    try:
        calls, errors = read_csv_calls(source, settings, schema_or_fail(schema))
    except (UnicodeDecodeError, LookupError) as err:
        raise fail(f"{source}: cannot read as {settings.encoding} ({err}); try --encoding gb18030") from None
    for error in errors:
        err_console.print(str(error), highlight=False, markup=False)
    n = write_calls(out, calls)
    turns = sum(len(c.turns) for c in calls)
    console.print(f"{n} calls ({turns} turns) written to {out}"
                  + (f"; {len(errors)} problem(s), their calls left out" if errors else ""))
    if errors:
        raise typer.Exit(1)


@data_app.command("redact")
def redact_file(
    file: Annotated[Path, typer.Argument(help="A JSONL call file.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file with numbers replaced by tags.")],
) -> None:
    """Replace phone, ID-card and bank-card numbers and e-mail addresses in every turn by tags such as [手机号]."""
    from collections import Counter

    from callqa.jsonl import CallFileError, load_calls, write_calls
    from callqa.redact import TAGS, find_pii, redact_call

    try:
        calls = load_calls(file)
    except CallFileError as err:
        raise fail(str(err)) from None
    found: Counter = Counter(f.kind for call in calls for turn in call.turns for f in find_pii(turn.text))
    calls = [redact_call(call) for call in calls]
    write_calls(out, calls)
    summary = ", ".join(f"{TAGS[k]} {n}" for k, n in found.most_common()) or "nothing found"
    console.print(f"{len(calls)} calls written to {out}; redacted: {summary}")


@data_app.command("json-schema")
def json_schema(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")] = None,
) -> None:
    """The JSON Schema of one call line (datasets/call.schema.json is this output), for tools outside Python."""
    import json

    from callqa.calls import Call

    text = json.dumps(Call.model_json_schema(), ensure_ascii=False, indent=2) + "\n"
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"written to {out}")
    else:
        print(text, end="")


# Training's and serving's commands, in a fixed order (entry points come in no particular order): "training" before
# "serving", so `callqa --help` lists the panels in the order a data scientist uses them.
for _part in sorted(entry_points(group="callqa.commands"), key=lambda ep: ep.name, reverse=True):
    _part.load()(app)

if __name__ == "__main__":
    app()
