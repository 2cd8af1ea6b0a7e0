"""The ``callqa`` command. Subcommands that need torch import it lazily, so the core CLI stays torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from callqa import __version__

app = typer.Typer(
    help="callqa — call-center quality inspection (智能质检): data tools, training, export and serving.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
data_app = typer.Typer(help="Validate, inspect, split, import and redact call files (JSONL).", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
# Error lines stay one line each (soft_wrap) so they can be grepped and clicked as file:line.
err_console = Console(stderr=True, soft_wrap=True)

SchemaOption = Annotated[
    str | None,
    typer.Option("--schema", "-s", help="Label schema: a YAML path or a shipped name (callcenter, stc3). "
                 "With a schema, labels are checked against its heads and classes."),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"callqa {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """callqa — score every call on the QA scorecard, and learn from reviewers' corrections."""


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _schema(name: str | None):
    from callqa.schema import SchemaError, load_schema

    if name is None:
        return None
    try:
        return load_schema(name)
    except SchemaError as err:
        raise _fail(str(err)) from None


@data_app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="JSONL call files.", exists=True, dir_okay=False)],
    schema: SchemaOption = None,
    max_errors: Annotated[int, typer.Option(help="Print at most this many errors per file (all are counted).")] = 200,
) -> None:
    """Check call files line by line. Every bad line is reported as [bold]file:line:field: message[/bold];
    exits non-zero when any line is bad."""
    from callqa.jsonl import read_calls

    label_schema = _schema(schema)
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
    tokenizer: Annotated[Path | None, typer.Option(help="tokenizer.json, or a model folder holding one: adds "
                                                 "token-length percentiles and windows per call.")] = None,
    prefix: Annotated[str, typer.Option(help='Text put before every window (e5 encoders: "query: ").')] = "",
    max_length: Annotated[int, typer.Option(help="Tokens per window, for the windows-per-call count.")] = 256,
    stride: Annotated[int, typer.Option(help="Tokens shared by consecutive windows.")] = 64,
) -> None:
    """Label distributions per head, turn/character/token-length percentiles, and calls per agent and month."""
    from callqa.jsonl import CallFileError, load_calls
    from callqa.render import CallEncoder, RenderSpec
    from callqa.stats import PERCENTILES, call_stats

    try:
        calls = load_calls(file)
    except CallFileError as err:
        raise _fail(str(err)) from None
    encoder = None
    if tokenizer is not None:
        try:
            encoder = CallEncoder.from_file(tokenizer, RenderSpec(prefix=prefix, max_length=max_length, stride=stride))
        except (FileNotFoundError, ValueError) as err:
            raise _fail(str(err)) from None
    s = call_stats(calls, encoder)
    console.print(f"[bold]{file}[/bold]: {s.n_calls} calls")

    for name, h in s.heads.items():
        t = Table(title=f"labels · {name}", caption=f"{h.labeled} labeled · {h.voted} as votes · {s.n_calls - h.labeled} missing")
        t.add_column("class")
        t.add_column("calls", justify="right")
        t.add_column("share", justify="right")
        total = sum(h.mass.values())
        for class_id, mass in sorted(h.mass.items(), key=lambda kv: _sort_key(kv[0])):
            t.add_row(class_id, f"{mass:.1f}", f"{mass / total:.1%}")
        console.print(t)

    lengths = Table(title="lengths per call (percentiles)")
    lengths.add_column("measure")
    for p in PERCENTILES:
        lengths.add_column("max" if p == 100 else f"p{p}", justify="right")
    rows = [("turns", s.turns), ("characters", s.chars)]
    if s.tokens is not None:
        rows += [("tokens", s.tokens), (f"windows of {max_length}", s.windows)]
    for label, values in rows:
        lengths.add_row(label, *(f"{v:.0f}" for v in s.percentiles(values).values()))
    console.print(lengths)
    if s.tokens is not None:
        over = int((s.windows > 1).sum())
        console.print(f"{over} calls ({over / s.n_calls:.1%}) need more than one window of {max_length} tokens")

    for title, counter in (("calls per agent", s.per_agent), ("calls per month", s.per_month)):
        t = Table(title=title)
        t.add_column(title.split()[-1])
        t.add_column("calls", justify="right")
        items = sorted(counter.items()) if "month" in title else counter.most_common(15)
        for key, n in items:
            t.add_row(key, str(n))
        if "agent" in title and len(counter) > 15:
            t.add_row(f"… {len(counter) - 15} more", "")
        console.print(t)


def _sort_key(class_id: str) -> tuple[int, float, str]:
    try:
        return (0, float(class_id), "")
    except ValueError:
        return (1, 0.0, class_id)


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
        raise _fail(f"--ratios must be numbers separated by commas, got {ratios!r}") from None
    if len(shares) != 3:
        raise _fail(f"--ratios needs three shares (train,validation,test), got {len(shares)}")
    parsed = read_calls(file)
    if parsed.errors:
        for e in parsed.errors[:20]:
            err_console.print(str(e), markup=False, highlight=False)
        raise _fail(f"{file} has {len(parsed.errors)} bad line(s); fix them first (callqa data validate)")
    calls = [c.call for c in parsed.calls]
    try:
        parts = split_calls(calls, shares, seed=seed, stratify=stratify, group_by_agent=group_by_agent)
    except ValueError as err:
        raise _fail(str(err)) from None
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
        raise _fail(str(err)) from None
    console.print(f"{n} calls written to {out}")


@data_app.command("redact")
def redact_file(
    file: Annotated[Path, typer.Argument(help="A JSONL call file.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file with numbers replaced by tags.")],
) -> None:
    """Replace phone, ID-card and bank-card numbers and e-mail addresses in every turn by tags such as [手机号]."""
    from collections import Counter

    from callqa.jsonl import CallFileError, load_calls, write_calls
    from callqa.redact import TAGS, find_pii, redact

    try:
        calls = load_calls(file)
    except CallFileError as err:
        raise _fail(str(err)) from None
    found: Counter = Counter()
    for call in calls:
        for turn in call.turns:
            found.update(f.kind for f in find_pii(turn.text))
            turn.text = redact(turn.text)
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


@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training recipe YAML (configs/train/*.yaml).", exists=True, dir_okay=False)],
    data: Annotated[list[Path], typer.Option("--data", "-d", help="Labeled JSONL; repeat to combine files (base + reviews).", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder; an unfinished run there is resumed.")],
    validation: Annotated[list[Path] | None, typer.Option("--validation", "-v", help="Validation JSONL for early "
                          "stopping and thresholds; default: a stratified share of --data.", exists=True, dir_okay=False)] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 … (default: cuda when present).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fine-tune an encoder with one head per schema head on labeled calls; writes model, tokenizer and run.json."""
    from callqa.jsonl import CallFileError
    from callqa.training.config import ConfigError, TrainConfig
    from callqa.training.encoder import EncoderNotFound
    from callqa.training.trainer import train

    try:
        cfg = TrainConfig.from_yaml(config)
        info = train(cfg, data, out, validation=validation or None, device=device, progress=not quiet, log=console.print)
    except (ConfigError, CallFileError, EncoderNotFound, ValueError) as err:
        raise _fail(str(err)) from None
    _print_metrics({"validation": info["validation_metrics"]})
    console.print(f"run written to {out}/ ({info['steps']} steps, best at step {info['best_step']}, "
                  f"{info['train_seconds']:.0f} s); next: callqa evaluate --run {out} --data TEST.jsonl")


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Option("--run", "-r", help="A run folder written by `callqa train`.", exists=True, file_okay=False)],
    data: Annotated[list[Path], typer.Option("--data", "-d", help="Labeled JSONL to evaluate on (a held-out split).", exists=True, dir_okay=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where metrics.json and report.html go (default RUN/eval).")] = None,
    baselines: Annotated[bool, typer.Option(help="Also score the prior and TF-IDF + LR baselines.")] = True,
    device: Annotated[str | None, typer.Option(help="cpu, cuda … (default: cuda when present).")] = None,
) -> None:
    """Per-head metrics (NMD, RSNOD, QWK, MAE, accuracy, F1, ECE) next to the baselines; metrics.json + report.html."""
    from callqa.jsonl import CallFileError
    from callqa.schema import LabelError
    from callqa.training.evaluate import evaluate_run

    try:
        result = evaluate_run(run, data, out, device=device, with_baselines=baselines, log=console.print)
    except (FileNotFoundError, CallFileError, LabelError) as err:
        raise _fail(str(err)) from None
    _print_metrics(result["metrics"])
    console.print(f"written to {(out or run / 'eval')}/metrics.json and report.html")


def _print_metrics(by_system: dict[str, dict[str, dict]]) -> None:
    """One table per kind of head, so each fits a terminal: lower is better for NMD, RSNOD, MAE and ECE."""
    columns = {"ordinal": ["nmd", "rsnod", "qwk", "mae", "accuracy", "ece"],
               "multiclass": ["accuracy", "macro_f1", "ece"],
               "multilabel": ["micro_f1", "macro_f1", "ece"]}
    first = next(iter(by_system.values()))
    for kind, keys in columns.items():
        heads = [h for h, m in first.items() if m.get("n") and all(k in m for k in keys[:2])
                 and (kind != "multiclass" or "nmd" not in m)]
        if not heads:
            continue
        table = Table(title=f"{kind} heads")
        for col in ["head", "system", "n", *keys]:
            table.add_column(col, justify="left" if col in ("head", "system") else "right")
        for head in heads:
            for system, metrics in by_system.items():
                m = metrics[head]
                table.add_row(head, system, str(m.get("n", 0)), *(f"{m[k]:.4f}" if k in m else "-" for k in keys))
        console.print(table)
