"""Maintenance windows: planned downtime a target's agreement leaves out of its count.

Declared windows (``kind: Maintenance``) are one-off ``[from, to)`` instants and weekly
local hours in a time zone. A target that says ``exclude: maintenance`` counts on an
:class:`ExcludingCalendar`: its service calendar with the service's declared windows taken
out, so down time inside them is not counted and the window's service time (the
denominator of availability, and so the error budget) leaves them out too. Windows posted
as facts (``maintenance.started`` / ``maintenance.ended``) are not known in advance: they
only stop counting (engine.eval.clock.WindowClock), the budget stays as it was.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.lang.calendar import MAX_CLOSED_DAYS, ServiceCalendar, instant_after_spans
from engine.lang.followsun import AnyOfCalendar

UTC = UTC
ZERO = timedelta(0)
DAY = timedelta(days=1)

Span = tuple[datetime, datetime]
Week = dict[int, list[tuple[int, int]]]      # weekday (Mon = 0) -> sorted spans in minutes


@dataclass
class MaintenanceWindows:
    """The declared windows of one service: one-off spans and weekly local hours, each
    with the Maintenance document it comes from."""

    service: str
    once: list[tuple[datetime, datetime, str]] = field(default_factory=list)     # (from, to, document id)
    weekly: list[tuple[str, str, Week]] = field(default_factory=list)            # (document id, zone, week)

    def spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
        """Every window overlapping [start, end), clipped to it, with the document it comes
        from, in order (overlapping ones are not merged: a report lists each)."""
        out = [(max(a, start), min(b, end), ref) for a, b, ref in self.once if a < end and b > start]
        for ref, timezone_name, week in self.weekly:
            zone = ZoneInfo(timezone_name)
            day, last = start.astimezone(zone).date() - DAY, end.astimezone(zone).date() + DAY
            while day <= last:
                for first, final in week.get(day.weekday(), ()):
                    a, b = _instant(day, first, zone), _instant(day, final, zone)
                    if a < end and b > start and a < b:
                        out.append((max(a, start), min(b, end), ref))
                day += DAY
        return sorted(out)


def merged(spans: Iterable[tuple[datetime, datetime, *tuple[object, ...]]]) -> list[Span]:
    """Spans (start, end, …) as sorted, disjoint (start, end) pairs."""
    out: list[list[datetime]] = []
    for a, b, *_ in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    return (datetime.combine(day, time(), zone) + timedelta(minutes=minute)).astimezone(UTC) if minute < 1440 \
        else datetime.combine(day + DAY, time(), zone).astimezone(UTC)


class ExcludingCalendar:
    """A service calendar with declared maintenance windows taken out: what counts is
    service hours outside every window. Everything else is the calendar's own."""

    all_hours = False

    def __init__(self, base: ServiceCalendar | AnyOfCalendar, windows: MaintenanceWindows):
        self.base = base
        self.windows = windows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)        # id, timezone, zone, closed_days, …

    def __repr__(self) -> str:
        return f"ExcludingCalendar({self.base!r}, maintenance of {self.windows.service!r})"

    def open_spans(self, start: datetime, end: datetime) -> Iterator[Span]:
        holes = merged(self.windows.spans(start, end))
        for a, b in self.base.open_spans(start, end):
            for hole_a, hole_b in holes:
                if hole_b <= a or hole_a >= b:
                    continue
                if hole_a > a:
                    yield a, hole_a
                a = max(a, hole_b)
                if a >= b:
                    break
            if a < b:
                yield a, b

    def counted(self, start: datetime, end: datetime) -> timedelta:
        return sum((b - a for a, b in self.open_spans(start, end)), ZERO)

    def excluded(self, start: datetime, end: datetime) -> timedelta:
        """Service time of the base calendar that the windows take out of [start, end)."""
        return self.base.counted(start, end) - self.counted(start, end)

    def is_open(self, at: datetime) -> bool:
        return self.counted(at, at + timedelta(microseconds=1)) > ZERO

    def instant_after(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant t >= start with counted(start, t) >= amount."""
        return instant_after_spans(self.open_spans, start, amount,
                                   f"calendar '{self.base.id}' minus maintenance stays closed for "
                                   f"{MAX_CLOSED_DAYS} days after {start}")
