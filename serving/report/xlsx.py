"""The report as a workbook: one sheet per table."""

from __future__ import annotations

from pathlib import Path

from .model import Report


def write_xlsx(report: Report, path: Path) -> None:
    """One sheet per table, headers bold and frozen, column widths fitted to the text."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for t in report.tables:
        sheet = book.create_sheet(t.title[:31].replace("/", "／"))
        sheet.append(t.columns)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for n, row in enumerate(t.rows):
            sheet.append(row)
            if n in t.links:
                sheet.cell(row=n + 2, column=1).hyperlink = t.links[n]
        sheet.freeze_panes = "A2"
        for column in sheet.columns:
            width = max(len(str(c.value or "")) for c in column)
            sheet.column_dimensions[column[0].column_letter].width = min(60, 4 + 1.8 * width)
    book.save(path)
