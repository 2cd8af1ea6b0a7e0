"""Where the shipped configs are: the checkout's ``configs/`` folder, or the copy a wheel installs inside the package
(``callqa/configs/``, what a Bento or a plain ``pip install callqa`` has)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def config_dir(kind: str) -> Path:
    """``configs/KIND`` (schemas, scorecards, serving, train)."""
    installed = _PACKAGE / "configs" / kind
    return installed if installed.is_dir() else _PACKAGE.parent / "configs" / kind
