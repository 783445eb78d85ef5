"""Follow the sun: a target counted whenever any of several calendars is open
(``calendar: {any_of: [london-office, new-york-office, sydney-office]}``, docs/RULES.md
"Calendars per target"). Time open in two offices at once counts once.

It answers the calendar interface (engine.lang.calendar.Calendar) from its members' open
spans, merged. Days and months (a report's month, a window, a deadline's business days)
are those of its first member's time zone, its home.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from engine.lang.calendar import MAX_CLOSED_DAYS, ServiceCalendar, Span, instant_after_spans

ZERO = timedelta(0)


class AnyOfCalendar:
    """Open whenever any member is: the union of their service hours."""

    def __init__(self, members: list[ServiceCalendar]):
        if len(members) < 2:
            raise ValueError("any_of takes two calendars or more")
        self.members = members
        self.id = "any of " + ", ".join(m.id for m in members)
        home = members[0]
        self.timezone, self.zone = home.timezone, home.zone
        self.all_hours = any(m.all_hours for m in members)
        self.week = {day: spans for m in members for day, spans in m.week.items()}   # some hours on these days
        self.country: str | None = None
        self.subdivision: str | None = None
        self.dates: frozenset[date] = frozenset()

    def __repr__(self) -> str:
        return f"AnyOfCalendar({[m.id for m in self.members]!r})"

    def open_spans(self, start: datetime, end: datetime) -> Iterator[Span]:
        """The members' open intervals within [start, end), merged, in order."""
        pending: Span | None = None
        for a, b in heapq.merge(*(m.open_spans(start, end) for m in self.members)):
            if pending and pending[1] >= a:
                pending = (pending[0], max(pending[1], b))
            else:
                if pending:
                    yield pending
                pending = (a, b)
        if pending:
            yield pending

    def counted(self, start: datetime, end: datetime) -> timedelta:
        if end <= start:
            return ZERO
        return sum((b - a for a, b in self.open_spans(start, end)), ZERO)

    def instant_after(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant t >= start with counted(start, t) >= amount."""
        return instant_after_spans(self.open_spans, start, amount,
                                   f"calendar '{self.id}' stays closed for {MAX_CLOSED_DAYS} days after {start}")

    def is_open(self, at: datetime) -> bool:
        return any(m.is_open(at) for m in self.members)

    def closed_days(self, start: datetime, end: datetime) -> list[tuple[date, datetime, datetime]]:
        """Home-zone dates on which every member is closed all day by a holiday."""
        closed = [set(d for d, _, _ in m.closed_days(start, end)) for m in self.members]
        out = []
        for day, a, b in self.members[0].closed_days(start, end):
            if all(day in c for c in closed):
                out.append((day, a, b))
        return out

    def business_day_end(self, start: datetime, days: int) -> datetime:
        """The close of the ``days``-th home-zone date after the start's on which any member
        is open: the end of that date's last open span (as ServiceCalendar's)."""
        if days < 1:
            raise ValueError(f"days counts business days after the start's, from 1; got {days}")
        day, left = start.astimezone(self.zone).date(), days
        for _ in range(MAX_CLOSED_DAYS):
            day += timedelta(days=1)
            first = datetime.combine(day, time(), self.zone).astimezone(UTC)
            last = datetime.combine(day + timedelta(days=1), time(), self.zone).astimezone(UTC)
            spans = list(self.open_spans(first, last))
            if spans:
                left -= 1
                if left == 0:
                    return spans[-1][1]
        raise ValueError(f"calendar '{self.id}' stays closed for {MAX_CLOSED_DAYS} days after {start}")
