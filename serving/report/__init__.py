"""QA reports (质检月报) from the review store: what a QA lead hands up every month.

The figures follow a call center's monthly report: calls monitored in total and per category (the model's topics);
per agent the calls, average total, red lines and per-item averages against the item's standard points; section
subtotals; the trend over the last six periods; the most frequent deductions with example spans (PII redacted); the
worst calls with links into the review UI; appeals; and model–reviewer agreement for the period.

Which score counts: a call's score of record (serving/store/record.py) — the model's card until a reviewer judges
it, then the card as the reviews and appeal rulings leave it. The report says how many calls each source gave.

Layout: ``builder.py`` turns a period and scope into a :class:`ReportContext` (context.py) whose rows come from the
store's SQL aggregates (serving/store/report_rows.py, on the ``started_at`` index; only agreement reads reviewed
calls one by one); ``sections/`` holds one class per section and the registry that orders them; ``html.py``,
``xlsx.py`` and ``csv_tables.py`` each walk the tables once (the dashboard does the same in serving/ui/dashboard.js).
This package may import the store's public API and ``report_rows``, never its tables.
"""

from __future__ import annotations

from .builder import DEFAULT_TZ, ReportBuilder, UnknownTeam
from .context import ReportContext
from .csv_tables import write_csv
from .html import REPORT_STYLE, render_html, write_html
from .model import Report, Table
from .period import PERIOD_PATTERN, Period
from .write import write_report
from .xlsx import write_xlsx

__all__ = ["DEFAULT_TZ", "PERIOD_PATTERN", "REPORT_STYLE", "Period", "Report", "ReportBuilder", "ReportContext", "Table",
           "UnknownTeam", "render_html", "write_csv", "write_html", "write_report", "write_xlsx"]
