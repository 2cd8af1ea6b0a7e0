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


def test_no_python_file_in_callqa_training_or_serving_is_over_400_lines():
    long = {str(p.relative_to(REPO)): n for folder in ("callqa", "training", "serving")
            for p in (REPO / folder).rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, f"over 400 lines: {long}"


def test_only_the_store_package_touches_the_database():
    """No module outside serving/store builds SQL, opens a Session or imports a row class: the store's API (what
    its __init__ exports) is the one way in (tests and benchmarks may look underneath)."""
    import ast

    offenders = []
    for path in [*(REPO / "serving").rglob("*.py"), *(REPO / "callqa").rglob("*.py"), *(REPO / "training").rglob("*.py")]:
        if (REPO / "serving" / "store") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = [a.name for a in node.names]
                # The store's public API is the package itself (its __init__ exports no row class).
                if module.split(".")[0] in ("sqlalchemy", "alembic") or "store." in module:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: from {module} import {', '.join(names)}")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.relative_to(REPO)}:{node.lineno}: import {a.name}" for a in node.names
                              if a.name.split(".")[0] in ("sqlalchemy", "alembic")]
    assert not offenders, "\n".join(offenders)
    from callqa.serving import store

    assert not [name for name in store.__all__ if name.endswith("Row") or name in ("ApiKey", "Base", "Session")]


def test_every_package_folder_is_in_the_wheel():
    """pyproject lists packages by hand (package-dir maps training/ and serving/ under callqa): a new subpackage
    missing from the list works in a checkout and is absent from a wheel, a Bento and `make smoke`."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    roots = {folder: name for name, folder in project["package-dir"].items()}
    found = set()
    for folder, name in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join([name, *relative]))
    assert found <= set(project["packages"]), sorted(found - set(project["packages"]))


def test_the_web_app_reads_head_descriptors_not_kinds():
    """serving/ui shows each head as /api/model's descriptor says (widget, multiple, expected): a new kind of head
    needs no change there."""
    import re

    for script in (REPO / "serving" / "ui").glob("*.js"):
        text = script.read_text(encoding="utf-8")
        found = re.findall(r"\.kind\b|multilabel|ordinal|multiclass", text)
        assert not found, f"{script.name} branches on a head's kind: {found}"


def test_only_the_head_kinds_branch_on_a_kind():
    """What differs between kinds of heads lives in callqa/heads (one class per kind): no other module of the
    product, the benchmarks or the notebooks names a kind or asks which kind a head is; they ask the kind."""
    import re

    from callqa.heads import KINDS

    names = "|".join(KINDS)
    pattern = re.compile(rf"""spec\.(?:ordinal|multilabel)\b|\bkind\s*[!=]=\s*["'](?:{names})["']|["'](?:{names})["']\s*[!=]=|"""
                         rf"""["'](?:{names})["']\s*:""")
    roots = [REPO / folder for folder in ("callqa", "training", "serving", "benchmarks", "notebooks", "scripts")]
    offenders = []
    for root in roots:
        for path in [*root.rglob("*.py"), *root.rglob("*.ipynb"), *root.rglob("*.js")]:
            if (REPO / "callqa" / "heads") in path.parents:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_no_import_cycle_between_modules_lazy_imports_included():
    """Every import statement — a function's lazy ones too — is an edge; no two modules of callqa, training or
    serving may reach each other (trainer and distill did: distillation now uses the trainer one way)."""
    import ast

    roots = {"callqa": REPO / "callqa", "callqa.training": REPO / "training", "callqa.serving": REPO / "serving"}
    files = {}
    for package, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            files[".".join([package, *parts])] = path

    def targets(module: str, path: Path, node: ast.AST) -> set[str]:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = module.split(".")[: len(module.split(".")) - (path.name != "__init__.py") - (node.level - 1)] \
                if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            names = [origin, *(f"{origin}.{a.name}" for a in node.names)]
        return {n for n in names if n in files and n != module}

    graph = {m: set().union(*(targets(m, p, n) for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                              if isinstance(n, (ast.Import, ast.ImportFrom))))
             for m, p in files.items()}
    # A module in a cycle reaches itself: search from each module over the graph.
    cycles = []
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m == start:
                cycles.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo += graph[m]
    assert not cycles, f"modules in an import cycle: {sorted(cycles)}"


def test_only_run_dir_knows_a_run_folders_layout():
    """training/run.py's RunDir names the files of a run (run.json, model/, checkpoint/, eval/ …); no other module of
    training or the benchmarks joins them by hand."""
    import re

    layout = re.compile(r'/ "(run\.json|model|checkpoint|student-init|eval)"')
    found = [f"{p.relative_to(REPO)}:{n}" for folder in ("training", "benchmarks") for p in (REPO / folder).rglob("*.py")
             if p != REPO / "training" / "run.py"
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if layout.search(line)]
    assert not found, found
