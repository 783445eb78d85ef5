"""How late a fact may be: ``--max-lateness``, the bound behind its subject's newest event time.

A fact far behind what is already known of its subject rewrites history: its clocks are
rebuilt from that time and every decision since is reconsidered (a batch of metric samples
dated hours back once retracted hundreds of decisions in one request). Like the
out-of-order window of a time-series database, a fact more than the bound behind the
newest event time of its subject is refused, naming the bound and that newest time. A
request's facts are judged in event-time order, each against what is stored and the
request's facts before it in that order, so one request may carry a ticket's history. A
repeat of a stored fact is a duplicate, never late.

The newest times come from the store (one grouped query per write for the subjects not
remembered yet) and are remembered for the most recently written subjects, updated after
each commit: nothing to rebuild on restart, and a write that rolled back leaves no trace.
"""
from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

from schemas.values import format_instant, format_whole_duration

DEFAULT_MAX_LATENESS = timedelta(days=7)
REMEMBERED = 100_000        # subjects whose newest time is kept in memory


class NewestTimes:
    """The newest event time of each subject: remembered for the most recent subjects,
    read from the store for the others."""

    def __init__(self, read, remembered: int = REMEMBERED):
        self._read = read                    # subjects -> {subject: newest}, from the store
        self._known: OrderedDict[str, datetime | None] = OrderedDict()
        self._size = remembered

    def of(self, subjects) -> dict[str, datetime]:
        """The newest time of each of ``subjects`` that has a fact."""
        missing = [s for s in subjects if s not in self._known]
        found = self._read(missing) if missing else {}
        out = {}
        for subject in subjects:
            if subject in self._known:
                self._known.move_to_end(subject)
                newest = self._known[subject]
            else:
                newest = found.get(subject)
                self._remember(subject, newest)
            if newest is not None:
                out[subject] = newest
        return out

    def note(self, subject: str, at: datetime) -> None:
        """A fact of ``subject`` at ``at`` was committed."""
        newest = self._known.get(subject)
        if subject in self._known and (newest is None or at > newest):
            self._remember(subject, at)
        # a subject not remembered is read from the store when next needed

    def forget(self) -> None:
        self._known.clear()

    def _remember(self, subject: str, at: datetime | None) -> None:
        self._known[subject] = at
        self._known.move_to_end(subject)
        while len(self._known) > self._size:
            self._known.popitem(last=False)


def late_problems(facts: list[dict], newest: dict[str, datetime], bound: timedelta) -> dict[int, str]:
    """Position → why, for each of ``facts`` (one request) more than ``bound`` behind the
    newest time of its subject before it: the facts are judged in event-time order, each
    against the newest time stored for its subject (``newest``) and of the request's facts
    before it in that order. One request may so hold a ticket's whole history (opened, and
    resolved eight days later), while a fact behind what is stored is still refused."""
    running = dict(newest)
    problems = {}
    for position in sorted(range(len(facts)), key=lambda p: facts[p]["time"]):
        fact = facts[position]
        subject = fact["subject"]
        if subject is None:
            continue
        latest = running.get(subject)
        if latest is not None and latest - fact["time"] > bound:
            problems[position] = (f"is {format_whole_duration(latest - fact['time'])} behind the newest event time "
                                  f"of subject {subject!r} ({format_instant(latest)}); a fact may be at most "
                                  f"{format_whole_duration(bound)} behind it (--max-lateness)")
        elif latest is None or fact["time"] > latest:
            running[subject] = fact["time"]
    return problems
