"""`callqa retrain`: the review loop, run for real — the reviews saved since the last model, a new run trained on that
model's data plus them, both models evaluated on the same held-out calls, and a new bundle only when the new model is
no worse on any head (the export gate's limits).

Steps, each its own module's work: ``callqa reviews export`` (the serving store, in a process of its own: training
never imports serving), :class:`~callqa.training.trainer.Trainer` (the last run's recipe, its data files plus the
reviews), :func:`~callqa.training.evaluate.evaluate_run` on both runs, :func:`~callqa.training.export.gate.
quality_deltas` (the gate's comparison, new against old), :func:`~callqa.training.export.export_run`.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .evaluate import evaluate_run
from .export import GateConfig, quality_deltas
from .run import RunDir, RunInfo


class RetrainError(RuntimeError):
    """The loop cannot run as asked (no held-out calls to compare on, the reviews export failed)."""


@dataclass(frozen=True)
class Comparison:
    """Both models' metrics on the same held-out calls, the per-head deltas and what the gate refuses."""

    old: dict
    new: dict
    deltas: dict
    failures: list[str]
    n_calls: int

    @property
    def no_worse(self) -> bool:
        return not self.failures


def held_out_files(info: RunInfo, given: list[Path] | None) -> list[Path]:
    """The calls both models are judged on: ``given``, or the files the last run validated on."""
    if given:
        return given
    if not info.validation.files:
        raise RetrainError("the last run validated on a held-out share of its training files, which the new run "
                           "would train on; pass --heldout FILE (labeled calls neither model trains on)")
    return [Path(f.path) for f in info.validation.files]


def export_reviews(out: Path, since: str, db: str | None) -> int:
    """``callqa reviews export --since`` into ``out``; the number of reviewed calls written."""
    command = [sys.executable, "-m", "callqa.cli", "reviews", "export", "-o", str(out), "--since", since]
    if db:
        command += ["--db", db]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RetrainError(f"callqa reviews export failed: {done.stderr.strip()[-500:]}")
    if not out.exists():
        return 0
    with out.open(encoding="utf-8") as lines:  # one call per line, as the exporter wrote them: counted, not parsed
        return sum(1 for line in lines if line.strip())


def since_of(info: RunInfo) -> str:
    """The day the last run was made (UTC): reviews saved on or after it are new to it."""
    return datetime.fromisoformat(info.created.replace("Z", "+00:00")).date().isoformat()


def compare(old_run: Path, new_run: Path, heldout: list[Path], out: Path, gate: GateConfig, device: str | None,
            log=print) -> Comparison:
    """Both runs evaluated on ``heldout`` (metrics under ``out``/old and ``out``/new) and compared by the gate."""
    old = evaluate_run(old_run, heldout, out / "old", device=device, with_baselines=False, log=log)
    new = evaluate_run(new_run, heldout, out / "new", device=device, with_baselines=False, log=log)
    schema = RunDir(new_run).info().label_schema
    deltas, failures = quality_deltas(schema, old["metrics"]["model"], new["metrics"]["model"], gate,
                                      names=("the new model", "the last model"))
    return Comparison(old["metrics"]["model"], new["metrics"]["model"], deltas, failures, new["n_calls"])


def base_files(info: RunInfo) -> list[Path]:
    """The last run's training files, unchanged since it read them (a changed one would make a different model)."""
    changed = [f.path for f in info.data if f.changed()]
    if changed:
        raise RetrainError(f"{changed[0]}: the last run's training data is missing or changed since it trained; "
                           "restore it, or train afresh with `callqa train`")
    return [Path(f.path) for f in info.data]
