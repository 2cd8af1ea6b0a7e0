"""A Bento of the scoring service and one bundle: the unit a cluster deploys (``bentoml containerize`` makes it an
OCI image; docs/scale.md).

The Bento holds the callqa wheel built from this checkout (configs and review UI inside; torch is not among its
dependencies), the serving dependencies pinned to the versions installed here, and the bundle, taken from the BentoML
model store, which the service loads by tag (``CALLQA_BUNDLE``). The database is the deployment's to choose
(``CALLQA_DB``: one PostgreSQL behind every replica).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

from callqa.bundle import BENTO_MODEL_NAME, read_bundle_info, resolve_bundle

BENTO_NAME = "callqa-scoring"
SERVICE = "callqa.serving.service:ScoringAPI"
# What the service imports at run time (the `serve` extra and the core), pinned as installed here.
SERVING_PACKAGES = ("bentoml", "onnxruntime", "tokenizers", "numpy", "pydantic", "pyyaml", "typer", "rich",
                    "scikit-learn", "pyarrow", "sqlalchemy", "alembic", "psutil", "openpyxl", "matplotlib",
                    "psycopg[binary]", "httptools", "uvloop")
CHECKOUT = Path(__file__).resolve().parent.parent


class BentoError(RuntimeError):
    """A Bento that cannot be built; the message says why."""


def pinned(packages: tuple[str, ...] = SERVING_PACKAGES) -> list[str]:
    """``name==version`` of each package as installed in this environment."""
    return [f"{name}=={version(name.partition('[')[0])}" for name in packages]


def bentofile(bundle_tag: str, wheel: str) -> dict:
    return {
        "service": SERVICE,
        "name": BENTO_NAME,
        "description": "callqa scoring API, review UI and reports on one model bundle (docs/scale.md).",
        "labels": {"callqa": version("callqa"), "bundle": bundle_tag},
        "include": ["bentofile.yaml"],
        "models": [bundle_tag],
        "envs": [{"name": "CALLQA_BUNDLE", "value": bundle_tag}, {"name": "BENTOML_DO_NOT_TRACK", "value": "True"}],
        "python": {"wheels": [wheel], "packages": pinned(), "lock_packages": False},
    }


def build_bento(bundle: str, work: Path) -> str:
    """Build the Bento of ``bundle`` (a store tag, or a folder whose version is in the store) in the BentoML store
    ($BENTOML_HOME); returns its tag. ``work`` receives the wheel and the bentofile (the build context)."""
    folder = resolve_bundle(bundle)
    tag = f"{BENTO_MODEL_NAME}:{read_bundle_info(folder).version}"
    try:
        resolve_bundle(tag)
    except FileNotFoundError:
        raise BentoError(f"{bundle}: its version is not in the BentoML store; `callqa export` stores it") from None
    if not (CHECKOUT / "pyproject.toml").exists():
        raise BentoError("a Bento is built from a checkout of callqa (its wheel goes in); this install has none")
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("callqa-*.whl"):
        old.unlink()
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir",
          str(work), str(CHECKOUT)], "building the callqa wheel")
    wheel = next(work.glob("callqa-*.whl")).name
    (work / "bentofile.yaml").write_text(yaml.safe_dump(bentofile(tag, wheel), allow_unicode=True, sort_keys=False),
                                         encoding="utf-8")
    # The build imports the service, which opens its bundle and database: the bundle by tag, a throwaway database.
    env = dict(os.environ, CALLQA_BUNDLE=tag, CALLQA_DB=f"sqlite:///{work / 'build.db'}", BENTOML_DO_NOT_TRACK="True")
    bentoml = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or "bentoml"
    out = _run([bentoml, "build", "--output", "tag", "."], "bentoml build", env=env, cwd=work)
    built = out.strip().splitlines()[-1].removeprefix("__tag__:")
    if ":" not in built:
        raise BentoError(f"bentoml build did not say which Bento it built: {out[-300:]}")
    return built


def _run(command: list[str], what: str, env: dict | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    if done.returncode:
        raise BentoError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    return done.stdout
