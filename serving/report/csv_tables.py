"""The report as CSV files: one per table."""

from __future__ import annotations

import csv
from pathlib import Path

from .model import Report


def write_csv(report: Report, directory: Path) -> list[Path]:
    """One CSV per table (UTF-8 with BOM, which Excel opens as Chinese)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in report.tables:
        path = directory / f"{t.name}.csv"
        with open(path, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(t.columns)
            writer.writerows(t.rows)
        paths.append(path)
    return paths
