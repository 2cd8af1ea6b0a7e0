"""A report as every renderer reads it: its tables (name, Chinese title, columns, rows, note, links) and the
series its charts draw."""

from __future__ import annotations

from pydantic import BaseModel


class Table(BaseModel):
    name: str  # sheet and CSV file name
    title: str
    columns: list[str]
    rows: list[list[str | int | float | None]]
    note: str = ""
    links: dict[int, str] = {}  # row index → URL of the row's call in the review UI (HTML only)


class Report(BaseModel):
    title: str
    period: str
    time_zone: str
    generated: str
    source: str  # which scores were used
    scope: str  # all agents, a team, or an agent
    tables: list[Table]
    trend: dict[str, list[float | None]]  # "全部" and each agent → average total per period (charts)
    trend_periods: list[str]
    items: list[tuple[str, float, float]]  # (item title, average points, standard points) (charts)
    charts: list[str] = []  # the trend and item charts as SVG documents (HTML inlines them; the dashboard shows images)

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)
