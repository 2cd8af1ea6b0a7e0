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
