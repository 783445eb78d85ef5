"""Service calendars: when the clock of a target counts.

A calendar is weekly service hours in a time zone, minus public holidays (via the
``holidays`` package) and extra closed dates. Hours are local wall-clock times, so they are
converted to UTC day by day with zoneinfo: a 00:00-24:00 day lasts 23 h when the clocks
go forward and 25 h when they go back. All arithmetic is on exact timedeltas, never floats,
so a deadline computed here is the instant a later ``counted`` agrees with.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package

from schemas.values import parse_date

UTC = UTC
ZERO = timedelta(0)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
SECOND = timedelta(seconds=1)
FULL_DAY = [(0, 1440)]
# instant_after gives up when a calendar stays closed this long (e.g. no usable hours).
MAX_CLOSED_DAYS = 3660

Span = tuple[datetime, datetime]


def instant_after_spans(open_spans: Callable[[datetime, datetime], Iterable[Span]], start: datetime,
                        amount: timedelta, closed: str) -> datetime:
    """The earliest instant t >= ``start`` with ``amount`` of open time in [start, t), the
    open time read a week at a time from ``open_spans``; ValueError ``closed`` when the
    calendar stays closed for :data:`MAX_CLOSED_DAYS` (for calendars made of others, whose
    open time is known only as spans)."""
    if amount < ZERO:
        raise ValueError(f"amount of service time must not be negative, got {amount}")
    start = start.astimezone(UTC)
    if amount == ZERO:
        return start
    left, at = amount, start
    for _ in range(MAX_CLOSED_DAYS // 7 + 1):
        for a, b in open_spans(at, at + WEEK):
            if b - a >= left:
                return a + left
            left -= b - a
        at += WEEK
    raise ValueError(closed)


class Calendar(Protocol):
    """What a clock counts on: a :class:`ServiceCalendar`, or one with maintenance windows
    taken out (engine.lang.maintenance.ExcludingCalendar)."""

    id: str

    def counted(self, start: datetime, end: datetime) -> timedelta: ...

    def instant_after(self, start: datetime, amount: timedelta) -> datetime: ...


class ServiceCalendar:
    """Weekly service hours in a time zone, minus public holidays and extra closed dates."""

    def __init__(self, id: str, timezone: str, week: dict[int, list[tuple[int, int]]],
                 country: str | None = None, subdivision: str | None = None,
                 dates: Iterable[date] = ()):
        self.id = id
        self.timezone = timezone
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"unknown time zone '{timezone}' (examples: Europe/London, UTC)") from None
        self.week = {day: sorted(spans) for day, spans in week.items() if spans}
        self.country = country
        self.subdivision = subdivision
        self.dates = frozenset(parse_date(d) for d in dates)
        if subdivision and not country:
            raise ValueError(f"holiday subdivision '{subdivision}' needs a country")
        if country:
            # Validate now, so a typo is reported when the rules load, not at the first deadline.
            try:
                holidays_package.country_holidays(country, subdiv=subdivision)
            except NotImplementedError:
                known = holidays_package.list_supported_countries().get(country)
                if subdivision and known is not None:
                    codes = ", ".join(known) if known else "none: give the country alone"
                    raise ValueError(f"the holidays package knows no subdivision '{subdivision}' of "
                                     f"country '{country}' (its subdivisions: {codes})") from None
                raise ValueError(f"the holidays package knows no country '{country}' "
                                 f"(use an ISO 3166 code, e.g. GB, US, DE)") from None
        # Open every minute of every day and never closed: counting is plain subtraction.
        self.all_hours = (not country and not self.dates
                          and all(self.week.get(day) == FULL_DAY for day in range(7)))
        self._holiday_years: dict[int, frozenset[date]] = {}
        self._day = functools.lru_cache(maxsize=8192)(self._open_on)

    @classmethod
    def always(cls) -> ServiceCalendar:
        """The built-in ``24x7`` calendar: every instant counts."""
        return cls("24x7", "UTC", {day: list(FULL_DAY) for day in range(7)})

    def __repr__(self) -> str:
        return f"ServiceCalendar({self.id!r}, {self.timezone!r})"

    # -- queries -----------------------------------------------------------------------
    def counted(self, start: datetime, end: datetime) -> timedelta:
        """Service time inside [start, end); zero if end <= start."""
        if end <= start:
            return ZERO
        if self.all_hours:
            return end - start
        # The sum of open_spans(start, end), without making them (every stop of a clock asks)
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total, first, last = ZERO, None, None          # (first, last): the span being merged
        day, final = self._local_date(start) - DAY, self._local_date(end) + DAY
        while day <= final:
            for a, b in self._day(day):
                a, b = max(a, start), min(b, end)
                if b <= a:
                    continue
                if last is not None and last >= a:
                    last = max(last, b)
                else:
                    if first is not None and last is not None:
                        total += last - first
                    first, last = a, b
            day += DAY
        if first is not None and last is not None:
            total += last - first
        return total

    def instant_after(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant t >= start with counted(start, t) >= amount, in UTC."""
        if amount < ZERO:
            raise ValueError(f"amount of service time must not be negative, got {amount}")
        start = start.astimezone(UTC)
        if amount == ZERO:
            return start
        if self.all_hours:
            return start + amount
        if not self.week:
            raise ValueError(f"calendar '{self.id}' has no service hours")
        left = amount
        day = self._local_date(start) - DAY
        closed_days = 0
        while closed_days < MAX_CLOSED_DAYS:
            spans = self._day(day)
            closed_days = 0 if spans else closed_days + 1
            for a, b in spans:
                a = max(a, start)
                if b <= a:
                    continue
                if b - a >= left:
                    return a + left
                left -= b - a
            day += DAY
        raise ValueError(f"calendar '{self.id}' stays closed for {MAX_CLOSED_DAYS} days after {day}")

    def business_day_end(self, start: datetime, days: int) -> datetime:
        """The close of the ``days``-th business day after the local date of ``start`` (a
        business day: a local date with service hours): the end of that day's last span, in
        UTC. ``days`` 1 is "the end of the next business day" (docs/RULES.md, Deadline goals)."""
        if days < 1:
            raise ValueError(f"days counts business days after the start's, from 1; got {days}")
        if not self.week:
            raise ValueError(f"calendar '{self.id}' has no service hours")
        day, left, closed_days = self._local_date(start), days, 0
        while closed_days < MAX_CLOSED_DAYS:
            day += DAY
            spans = self._day(day)
            if not spans:
                closed_days += 1
                continue
            closed_days = 0
            left -= 1
            if left == 0:
                return spans[-1][1]
        raise ValueError(f"calendar '{self.id}' stays closed for {MAX_CLOSED_DAYS} days after {day}")

    def is_open(self, at: datetime) -> bool:
        """Whether service hours are running at ``at``."""
        return self.counted(at, at + timedelta(microseconds=1)) > ZERO

    def open_spans(self, start: datetime, end: datetime) -> Iterator[Span]:
        """The open intervals (UTC) within [start, end), in order, adjacent ones merged."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return
        if self.all_hours:
            yield start, end
            return
        pending: Span | None = None
        # One day either side: where local midnight is ambiguous an instant's local date
        # can be the day before the one whose hours contain it.
        day, last = self._local_date(start) - DAY, self._local_date(end) + DAY
        while day <= last:
            for a, b in self._day(day):
                a, b = max(a, start), min(b, end)
                if b <= a:
                    continue
                if pending and pending[1] >= a:
                    pending = (pending[0], max(pending[1], b))
                else:
                    if pending:
                        yield pending
                    pending = (a, b)
            day += DAY
        if pending:
            yield pending

    def closed_days(self, start: datetime, end: datetime) -> list[tuple[date, datetime, datetime]]:
        """Local dates within [start, end) closed all day by a holiday or an extra closed
        date, each with its UTC span (local midnight to midnight): what a timeline shades."""
        out = []
        day, last = self._local_date(start), self._local_date(end)
        while day <= last:
            if self._is_closed(day):
                a = datetime.combine(day, time(), self.zone).astimezone(UTC)
                b = datetime.combine(day + DAY, time(), self.zone).astimezone(UTC)
                out.append((day, max(a, start), min(b, end)))
            day += DAY
        return out

    # -- one local day ------------------------------------------------------------------
    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def _is_closed(self, day: date) -> bool:
        """A public holiday or an extra closed date: closed all day whatever the hours."""
        if day in self.dates:
            return True
        if not self.country:
            return False
        if day.year not in self._holiday_years:
            found = holidays_package.country_holidays(self.country, subdiv=self.subdivision, years=day.year)
            self._holiday_years[day.year] = frozenset(found)
        return day in self._holiday_years[day.year]

    def _open_on(self, day: date) -> tuple[Span, ...]:
        """The UTC intervals of the hours of local date ``day`` (cached per day)."""
        if self._is_closed(day):
            return ()
        spans = []
        for first, last in self.week.get(day.weekday(), ()):
            a, b = self._instant(day, first), self._instant(day, last)
            if a < b:   # a span wholly inside a DST gap has no instants
                spans.append((a, b))
        return tuple(spans)

    def _instant(self, day: date, minute: int) -> datetime:
        """Local ``day`` at ``minute`` (1440 = next midnight) as a UTC instant.

        A repeated wall time (clocks going back) means its first occurrence (fold=0). A wall
        time the clocks skip means the instant they skip it, so the missing hour counts
        nothing and a span only partly in the gap keeps the local times that do exist.
        """
        wall = datetime.combine(day, time()) + timedelta(minutes=minute)
        moment = wall.replace(tzinfo=self.zone).astimezone(UTC)
        if moment.astimezone(self.zone).replace(tzinfo=None) == wall:
            return moment
        # In a gap: fold=1 maps before the transition, fold=0 after it.
        return self._transition(wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC), moment)

    def _transition(self, before: datetime, after: datetime) -> datetime:
        """The instant in (before, after] where the zone's UTC offset changes (tz data is in
        whole seconds, so a bisection to the second is exact)."""
        offset = before.astimezone(self.zone).utcoffset()
        while after - before > SECOND:
            middle = before + (after - before) // SECOND // 2 * SECOND
            if middle.astimezone(self.zone).utcoffset() == offset:
                before = middle
            else:
                after = middle
        return after
