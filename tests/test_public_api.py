"""The `callqa` package's public API: what a user imports from the top level, torch-free until training is asked
for, and the same objects the commands use."""

from __future__ import annotations

import subprocess
import sys

import callqa


def test_every_public_name_resolves_and_importing_callqa_loads_no_torch():
    code = ("import sys, callqa; assert 'torch' not in sys.modules, 'import callqa loaded torch'; "
            "[getattr(callqa, n) for n in callqa.__all__ if n not in callqa._TRAINING]; "
            "assert 'torch' not in sys.modules, 'a torch-free name loaded torch'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    for name in callqa.__all__:
        assert getattr(callqa, name).__doc__, f"callqa.{name} has no docstring"


def test_the_training_entry_points_are_the_commands_own():
    from callqa.training.evaluate import evaluate_run
    from callqa.training.export import export_run
    from callqa.training.trainer import train

    assert callqa.train is train and callqa.evaluate is evaluate_run and callqa.export is export_run
    try:
        callqa.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("an unknown name resolved")


def test_score_calls_gives_what_a_scoring_session_gives(tiny_bundle):
    from conftest import SAMPLE

    calls = callqa.load_calls(SAMPLE)[:6]
    quick = callqa.score_calls(calls, tiny_bundle, precision="fp32")
    session = callqa.ScoringSession(tiny_bundle, "default", precision="fp32", run_threads=None)
    for a, b in zip(quick, session.score(calls), strict=True):
        assert a.call_id == b.call_id and a.scorecard.total == b.scorecard.total
        assert a.scores["attitude"].distribution == b.scores["attitude"].distribution


def test_notebooks_and_benchmarks_take_public_names_from_the_top_level():
    """A name `callqa` exports is imported as `from callqa import …` in the notebooks and benchmarks (what a user
    copies), not from the module that happens to define it."""
    import importlib
    import re

    from conftest import REPO

    found = []
    for path in [*(REPO / "notebooks").glob("*.ipynb"), *(REPO / "benchmarks").glob("*.py")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.search(r"from (callqa\.[\w.]+) import ([\w, ]+)", line)
            if not m:
                continue
            for name in (n.strip() for n in m[2].split(",")):
                if name in callqa.__all__ and getattr(importlib.import_module(m[1]), name, None) is getattr(callqa, name):
                    found.append(f"{path.name}: {m[1]}.{name}")
    assert not found, found
