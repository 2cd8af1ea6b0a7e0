"""Report periods: a calendar month (2026-03) or an ISO week (2026-W10) in a time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

# A month or an ISO week, exactly (the OpenAPI document states the same pattern, so what it allows, the server reads):
# years 1970-2099, week 53 only in the years that have one. [0-9], not \d: \d takes full-width digits.
_LONG_YEARS = "|".join(str(y) for y in range(1970, 2100) if date(y, 12, 28).isocalendar()[1] == 53)
PERIOD_PATTERN = (rf"^(?:(?P<year>19[7-9][0-9]|20[0-9]{{2}})-(?:(?P<month>0[1-9]|1[0-2])|W(?P<week>0[1-9]|[1-4][0-9]|5[0-2]))"
                  rf"|(?P<long>{_LONG_YEARS})-W(?P<w53>53))$")

@dataclass(frozen=True)
class Period:
    """A calendar month (``2026-03``) or ISO week (``2026-W10``) in a time zone; ``start``/``end`` are aware."""

    kind: Literal["month", "week"]
    label: str
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo) -> Period:
        """``2026-03`` or ``2026-W10`` exactly as :data:`PERIOD_PATTERN` spells it (ASCII digits, no sign, no
        whitespace), years 1970–2099; ValueError otherwise."""
        found = re.fullmatch(PERIOD_PATTERN.strip("^$"), text)
        try:
            if found is None:
                raise ValueError(text)
            if found["w53"]:
                return cls._week(date.fromisocalendar(int(found["long"]), 53, 1), tz)
            if found["week"]:
                return cls._week(date.fromisocalendar(int(found["year"]), int(found["week"]), 1), tz)
            return cls._month(int(found["year"]), int(found["month"]), tz)
        except ValueError:
            raise ValueError(f"period: {text[:20]!r} is not a period; write a month as 2026-03 or an ISO week as "
                             f"2026-W10 (years 1970–2099)") from None

    @classmethod
    def _month(cls, year: int, month: int, tz: ZoneInfo) -> Period:
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return cls("month", f"{year:04d}-{month:02d}", start, end)

    @classmethod
    def _week(cls, monday: date, tz: ZoneInfo) -> Period:
        start = datetime.combine(monday, datetime.min.time(), tzinfo=tz)
        year, week, _ = monday.isocalendar()
        return cls("week", f"{year:04d}-W{week:02d}", start, datetime.combine(monday + timedelta(days=7),
                                                                               datetime.min.time(), tzinfo=tz))

    @property
    def utc(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC, as the store keeps started_at (SQLite compares the stored text, so offsets must match)."""
        return self.start.astimezone(UTC), self.end.astimezone(UTC)

    def previous(self) -> Period:
        if self.kind == "week":
            return self._week(self.start.date() - timedelta(days=7), self.start.tzinfo)
        month = self.start.month - 1 or 12
        return self._month(self.start.year - (self.start.month == 1), month, self.start.tzinfo)

    def last(self, n: int) -> list[Period]:
        """This period and the n − 1 before it, oldest first."""
        periods = [self]
        while len(periods) < n:
            periods.append(periods[-1].previous())
        return periods[::-1]


