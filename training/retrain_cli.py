"""`callqa retrain`: the command (the loop's steps are in training/retrain.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from callqa.console import console, fail

from .cli_output import library_bars, print_metrics


def retrain_cmd(
    run: Annotated[Path, typer.Option("--run", "-r", help="The run behind the bundle now serving.", exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The new run's folder.")],
    db: Annotated[str | None, typer.Option(help="The review store (default: the serving config's database).")] = None,
    heldout: Annotated[list[Path] | None, typer.Option("--heldout", help="Labeled calls both models are judged on "
                       "(default: the files the last run validated on).", exists=True, dir_okay=False)] = None,
    since: Annotated[str | None, typer.Option(help="Reviews saved on or after this day (YYYY-MM-DD; default: the day "
                     "the last run was made).")] = None,
    reviews: Annotated[Path | None, typer.Option(help="Where the reviews are written (default data/reviews/OUT_NAME"
                       ".jsonl); the new run lists it as training data, so the next retrain builds on it.")] = None,
    bundle: Annotated[Path | None, typer.Option(help="The new bundle's folder (default bundles/OUT_NAME/VERSION).")] = None,
    version: Annotated[str | None, typer.Option(help="The new bundle's version (default: a timestamp).")] = None,
    max_nmd_increase: Annotated[float, typer.Option(help="Largest allowed NMD increase, new against last, per ordinal head.")] = 0.005,
    max_macro_f1_drop: Annotated[float, typer.Option(help="Largest allowed macro-F1 drop, new against last, per other head.")] = 0.01,
    max_steps: Annotated[int | None, typer.Option(help="Override the recipe's optimizer steps (a quick check).", min=1)] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda … (default: cuda when present).")] = None,
    store: Annotated[bool, typer.Option(help="Save the new bundle to the BentoML model store.")] = True,
) -> None:
    """The review loop: export the reviews saved since the last run, train a new run on its data plus them, evaluate
    both on the same held-out calls and export a bundle only if the new model is no worse on every head."""
    import json
    import time

    from callqa.training.distill import DistillationTrainer
    from callqa.training.export import ExportError, GateConfig, export_run
    from callqa.training.retrain import (
        RetrainError,
        base_files,
        compare,
        export_reviews,
        held_out_files,
        since_of,
    )
    from callqa.training.run import RunDir
    from callqa.training.trainer import Trainer

    library_bars()
    info = RunDir(run).info()
    gate = GateConfig(max_nmd_increase=max_nmd_increase, max_macro_f1_drop=max_macro_f1_drop)
    reviews = reviews or Path("data") / "reviews" / f"{out.name}.jsonl"
    reviews.parent.mkdir(parents=True, exist_ok=True)
    since = since or since_of(info)
    try:
        judged_on, data = held_out_files(info, heldout), base_files(info)
        n = export_reviews(reviews, since, db)
    except RetrainError as err:
        raise fail(str(err)) from None
    if not n:
        console.print(f"no reviews since {since}: nothing to retrain on; the last model stays")
        return
    console.print(f"{n} reviewed calls since {since} → {reviews}; training {out} on "
                  f"{len(data)} file(s) of the last run plus them")
    cfg = info.config.overridden(max_steps, None)
    trainer = DistillationTrainer if cfg.distill is not None else Trainer
    trainer(cfg, device, True, console.print).train([*data, reviews], out, judged_on)
    result = compare(run, out, judged_on, out / "retrain", gate, device, log=console.print)
    print_metrics(info.label_schema, {"last": result.old, "new": result.new})
    summary = {"reviews": n, "reviews_file": str(reviews), "heldout": [str(p) for p in judged_on],
               "n_heldout": result.n_calls, "deltas": result.deltas, "failures": result.failures, "bundle": None}

    def write_summary() -> None:
        (out / "retrain" / "retrain.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")

    if not result.no_worse:
        write_summary()
        raise fail("the new model is worse than the last on the held-out calls, so no bundle was exported: "
                   + "; ".join(result.failures))
    version = version or time.strftime("%Y%m%d-%H%M%S")
    bundle = bundle or Path("bundles") / out.name / version
    try:
        exported = export_run(out, bundle, version=version, validation=judged_on, gate=gate, store=store,
                              log=console.print)
    except ExportError as err:
        raise fail(str(err)) from None
    summary["bundle"] = str(bundle)
    write_summary()
    console.print(f"the new model is no worse on every head ({result.n_calls} held-out calls): bundle {bundle}/; "
                  f"serve it with `callqa serve --bundle {exported.tag if store else bundle}`")
