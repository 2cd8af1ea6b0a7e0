"""The Python versions pyproject.toml claims are the ones the code runs on: `requires-python`, ruff's target and
what the code actually uses (vermin reads every module for syntax and library members newer than the floor)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["callqa", "training", "serving", "benchmarks", "datasets", "scripts", "tests"]
VERMIN = str(Path(sys.executable).parent / "vermin")  # installed with the dev extra


def declared_floor() -> tuple[int, int]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    match = re.fullmatch(r">=\s*3\.(\d+)", project["project"]["requires-python"])
    assert match, "requires-python should read >=3.N"
    return 3, int(match.group(1))


def test_ruff_targets_the_declared_floor():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    major, minor = declared_floor()
    assert project["tool"]["ruff"]["target-version"] == f"py{major}{minor}"


def test_the_code_needs_no_python_newer_than_the_declared_floor():
    major, minor = declared_floor()
    paths = [str(ROOT / p) for p in PACKAGES if (ROOT / p).exists()]
    result = subprocess.run([VERMIN, "--no-tips", "--violations", "--eval-annotations",
                             f"-t={major}.{minor}-", *paths], capture_output=True, text=True)
    assert result.returncode == 0, f"code newer than Python {major}.{minor}:\n{result.stdout}{result.stderr}"


def test_the_check_catches_code_newer_than_the_floor(tmp_path):
    # The floor check itself: a 3.12 library member under a 3.11 floor is reported.
    (tmp_path / "new.py").write_text("from itertools import batched\n", encoding="utf-8")
    result = subprocess.run([VERMIN, "--no-tips", "--violations", "-t=3.11-",
                             str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "3.12" in result.stdout
