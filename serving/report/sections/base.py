"""A section of the QA report: a small class that asks the report's context for its rows and returns its tables,
each with its Chinese title and notes. Every renderer (HTML, XLSX, CSV, the dashboard) walks the tables."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..context import ReportContext
from ..model import Table


class Section(ABC):
    @abstractmethod
    def tables(self, context: ReportContext) -> list[Table]:
        """This section's tables for the context's period and scope (none: the section has nothing to show)."""
