"""The sections of the QA report, in the order it shows them: a new section is a module here and a line below, and
appears in the HTML, the XLSX, the CSVs and the dashboard."""

from __future__ import annotations

from .agents import Agents
from .agreement import Agreement
from .appeals import Appeals
from .base import Section
from .calibration import CalibrationSection
from .call_analytics import CallAnalytics
from .categories import Categories
from .coaching import CoachingSection
from .coverage import Coverage
from .deductions import Deductions
from .double_review import DoubleReview
from .items import Items
from .overview import Overview
from .rule_precision import RulePrecision
from .satisfaction import Satisfaction
from .section_subtotals import SectionSubtotals
from .trend import Trend
from .worst import WorstCalls

SECTIONS: list[Section] = [
    Overview(),
    Categories(),
    Agents(),
    SectionSubtotals(),
    Items(),
    Trend(),
    Coverage(),
    CallAnalytics(),
    Deductions(),
    WorstCalls(),
    Appeals(),
    Satisfaction(),
    CoachingSection(),
    Agreement(),
    CalibrationSection(),
    DoubleReview(),
    RulePrecision(),
]

__all__ = ["SECTIONS", "Section"]
