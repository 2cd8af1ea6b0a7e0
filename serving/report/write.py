"""Writing a report where a user asks: an .html, .xlsx or .csv path, or a folder of all three."""

from __future__ import annotations

from pathlib import Path

from .csv_tables import write_csv
from .html import write_html
from .model import Report
from .xlsx import write_xlsx


def write_report(report: Report, out: Path) -> list[Path]:
    """``out`` ending in .html, .xlsx or .csv (a folder of CSVs named after it) writes that; anything else is a
    folder that gets all three."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".html":
        write_html(report, out)
        return [out]
    if suffix == ".xlsx":
        write_xlsx(report, out)
        return [out]
    if suffix == ".csv":
        return write_csv(report, out.with_suffix(""))
    out.mkdir(parents=True, exist_ok=True)
    write_html(report, out / "report.html")
    write_xlsx(report, out / "report.xlsx")
    return [out / "report.html", out / "report.xlsx", *write_csv(report, out / "csv")]
