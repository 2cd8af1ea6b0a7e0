"""The code's shape, held by `make test`: ruff's rules with C901 at max-complexity 15 (pyproject.toml) over every
package, so a function no one can hold in their head fails the suite, not a later review."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_ruff_with_complexity_15_passes_on_every_package():
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run([str(ruff), "check", "callqa", "training", "serving", "tests", "datasets", "benchmarks"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-1000:]
    config = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"C901"' in config and "max-complexity = 15" in config
