"""On-call schedules: a role held by whoever an iCalendar file (RFC 5545) puts on call at
the instant of the decision (docs/RULES.md, "On-call schedules").

The file is part of the rule set (read with the YAML, hashed into its version, stored with
it), and who is on call is asked at the decision's own instant, in event time: a replay,
or a late fact evaluated next week, finds the same person the live engine found.

Which event wins when several cover the instant: the shortest. A rotation is written as
long recurring shifts (a week each); an override is a shorter event laid over one (a day,
a night) and wins for as long as it lasts, with no convention to learn, as PagerDuty and
Opsgenie exports lay them. At equal length an event of its own wins over an occurrence of a
series, then the later start, then the UID, so the answer never depends on file order. An
occurrence moved or changed with RECURRENCE-ID (RFC 5545's own override) is that series'
occurrence, as the ``recurring-ical-events`` library expands it.

Who an event gives: its ATTENDEEs (``mailto:`` dropped), else its SUMMARY, each a holder as
a Roles document would write it (an address or a URL).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from schemas.holders import holder_problem
from schemas.values import format_instant

PREFIX = "oncall:"          # the recipient of the record kept when nobody is on call and no fallback is named
_CACHED = 256               # instants remembered per schedule: an outage's decisions share a few


class ScheduleError(ValueError):
    """Why a schedule file cannot be used, with the line of the file it is about."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


@dataclass(frozen=True)
class Shift:
    """The event that puts someone on call, and who it gives."""

    holders: tuple[str, ...]
    summary: str
    uid: str
    start: datetime
    end: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.summary, "uid": self.uid, "from": format_instant(self.start),
                "to": format_instant(self.end)}


@dataclass(frozen=True, eq=False)
class OnCall:
    """A role's holder written ``{oncall: FILE.ics}``: resolved per decision (engine/notify/route.py)."""

    schedule: Schedule
    fallback: tuple[str, ...]       # told when nobody is on call

    def __str__(self) -> str:
        return PREFIX + self.schedule.file


def holder_text(holder: str | OnCall) -> str:
    """A holder in words, for documents: an address as written, a schedule by its file."""
    return f"whoever {holder.schedule.file} puts on call" if isinstance(holder, OnCall) else holder


class Schedule:
    """One schedule file, parsed and checked once per rule-set load; :meth:`on_call` answers
    for any instant."""

    def __init__(self, file: str, text: str, timezone: str = "UTC"):
        """``file``: its path relative to the rules directory; ``timezone``: the zone of its
        floating times and all-day dates (an X-WR-TIMEZONE in the file takes precedence)."""
        import icalendar
        import recurring_ical_events

        self.file, self.timezone = file, timezone
        self._zone = ZoneInfo(timezone)
        try:
            calendar = icalendar.Calendar.from_ical(text)
        except (ValueError, IndexError, KeyError) as err:
            raise ScheduleError(1, f"is no iCalendar file: {_short(err)}") from None
        if isinstance(calendar, list) or calendar.name != "VCALENDAR":
            raise ScheduleError(1, "is no iCalendar file: expected one BEGIN:VCALENDAR … END:VCALENDAR")
        events = calendar.walk("VEVENT")
        if not events:
            raise ScheduleError(1, "has no events (VEVENT): nobody would ever be on call")
        lines = _event_lines(text)
        for number, event in enumerate(events):
            _check_event(event, lines[number] if number < len(lines) else 1)
        self._query = recurring_ical_events.of(calendar)
        self._lock = threading.Lock()      # the query keeps caches of its own; decisions route from many threads
        self._answers: OrderedDict[datetime, Shift | None] = OrderedDict()
        for number, event in enumerate(events):          # every series expands, or the file is refused now
            start = self._instant(event.decoded("DTSTART"))
            try:
                self._query.between(start, start + timedelta(days=1))
            except Exception as err:     # the library raises its own errors and dateutil's
                line = lines[number] if number < len(lines) else 1
                raise ScheduleError(line, f"event {_name(event)!r} cannot be expanded: {_short(err)}") from None

    def on_call(self, at: datetime) -> Shift | None:
        """The shift covering ``at`` that wins (module docstring), None if nobody is on call."""
        with self._lock:
            if at in self._answers:
                self._answers.move_to_end(at)
                return self._answers[at]
            local = at.astimezone(self._zone)
            covering = []
            for event in self._query.between(local, local + timedelta(seconds=1)):
                if str(event.get("STATUS", "")).upper() == "CANCELLED":
                    continue
                start, end = self._instant(event.start), self._instant(event.end)
                if start <= at < end:
                    covering.append((end - start, "RECURRENCE-ID" in event, -start.timestamp(),
                                     str(event.get("UID", "")), start, end, event))
            found = None
            if covering:
                *_, start, end, event = min(covering, key=lambda c: c[:4])
                found = Shift(holders_of(event), _name(event), str(event.get("UID", "")), start, end)
            self._answers[at] = found
            if len(self._answers) > _CACHED:
                self._answers.popitem(last=False)
            return found

    def _instant(self, value: date | datetime) -> datetime:
        """An event's start or end as an instant: all-day dates and floating times in the
        schedule's zone."""
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        if value.tzinfo is None:
            value = value.replace(tzinfo=self._zone)
        return value.astimezone(UTC)


def holders_of(event: Any) -> tuple[str, ...]:
    """Who an event puts on call: its ATTENDEEs' addresses, else its SUMMARY."""
    attendees = event.get("ATTENDEE")
    if attendees is not None:
        listed = attendees if isinstance(attendees, list) else [attendees]
        return tuple(_address(str(a)) for a in listed)
    summary = str(event.get("SUMMARY", "")).strip()
    return (summary,) if summary else ()


def _check_event(event: Any, line: int) -> None:
    if event.get("DTSTART") is None:
        raise ScheduleError(line, f"event {_name(event)!r} has no DTSTART")
    given = holders_of(event)
    if not given:
        raise ScheduleError(line, "an event with neither ATTENDEE nor SUMMARY gives nobody to notify")
    for holder in given:
        problem = holder_problem(holder)
        if problem:
            where = "ATTENDEE" if event.get("ATTENDEE") is not None else "SUMMARY"
            raise ScheduleError(line, f"event {_name(event)!r}: its {where} gives nobody to notify: {problem} "
                                      "(an ATTENDEE:mailto:… or a SUMMARY that is an address)")


def _address(value: str) -> str:
    return value[len("mailto:"):] if value.lower().startswith("mailto:") else value


def _name(event: Any) -> str:
    return str(event.get("SUMMARY") or event.get("UID") or "(unnamed)")


def _event_lines(text: str) -> list[int]:
    """The line of each BEGIN:VEVENT, in file order (as icalendar walks them)."""
    return [number for number, line in enumerate(text.splitlines(), 1) if line.strip().upper() == "BEGIN:VEVENT"]


def _short(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


