"""What an error budget has seen: bad and total amounts over time, and the sums of any
window of them (docs/RULES.md, "Error budgets").

Two kinds of amount, one interface:

- *time* (availability and threshold targets): bad time is service time on the target's
  calendar while a subject is down (and no posted maintenance window is open); total
  time is the calendar's service time. Both grow continuously: the sums of a window
  ending at ``t`` are piecewise linear in ``t``.
- *counts* (ratio targets): each ``sli.counts`` fact adds its bad (total − good) and total
  events at its time, the end of its interval, scaled by the share of the interval that
  is counted time (service hours, minus declared and posted maintenance). The sums are
  step functions of ``t``.

Instants are whole microseconds since the epoch and amounts are exact (int or Fraction),
so every decision drawn from here is the same on replay, restart and what-if.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from engine.lang.calendar import Calendar

US = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(at: datetime) -> int:
    return (at - EPOCH) // US


def instant(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _whole(value: int | Fraction) -> int | Fraction:
    """An amount as an int when it is a whole number (int arithmetic is many times faster)."""
    return value.numerator if isinstance(value, Fraction) and value.denominator == 1 else value


class Ledger:
    """Bad and total amounts of one budget clock, and window sums over them."""

    def __init__(self, calendar: Calendar, counts: bool):
        self.calendar = calendar
        self.counts = counts
        self.version = 0                     # changes with every amount added (caches key on it)
        # time: the spans a subject was down and counting, [start, end) (end None: still)
        self.starts: list[int] = []
        self.ends: list[int | None] = []
        self.cumulative: list[int] = [0]     # counted bad time before each closed span
        # counts: events added at instants, with running sums
        self.times: list[int] = []
        self.bad_sums: list[int | Fraction] = [0]      # whole numbers as int: the common case, and fast
        self.total_sums: list[int | Fraction] = [0]
        self.held: list[list[int | None]] = []     # posted maintenance windows, [start, end)

    # -- adding ---------------------------------------------------------------------------
    def set_bad(self, at: int, bad: bool) -> None:
        """Time: bad time counts from ``at`` (``bad``) or stops counting."""
        open_span = bool(self.ends) and self.ends[-1] is None
        if bad and not open_span:
            self.starts.append(at)
            self.ends.append(None)
        elif not bad and open_span:
            self.ends[-1] = at
            self.cumulative.append(self.cumulative[-1] + self.counted(self.starts[-1], at))
        else:
            return
        self.version += 1

    def set_held(self, at: int, held: bool) -> None:
        """Counts: a posted maintenance window opens or closes at ``at``."""
        open_span = bool(self.held) and self.held[-1][1] is None
        if held and not open_span:
            self.held.append([at, None])
        elif not held and open_span:
            self.held[-1][1] = at

    def add_counts(self, at: int, start: int, good: Fraction, total: Fraction) -> Fraction:
        """Counts: ``good`` of ``total`` events in [start, at), added at ``at`` in proportion
        to the interval's counted time; the share counted."""
        share = Fraction(self.counted(start, at) - self._held_within(start, at), at - start) if at > start \
            else Fraction(0)
        share = max(share, Fraction(0))
        self.times.append(at)
        self.bad_sums.append(_whole(self.bad_sums[-1] + (total - good) * share))
        self.total_sums.append(_whole(self.total_sums[-1] + total * share))
        self.version += 1
        return share

    def _held_within(self, start: int, end: int) -> int:
        """Counted time inside posted maintenance windows between ``start`` and ``end``."""
        held = 0
        for begins, ends in self.held:
            low, high = max(begins or 0, start), end if ends is None else min(ends, end)
            if high > low:
                held += self.counted(low, high)
        return held

    # -- reading --------------------------------------------------------------------------
    def counted(self, start: int, end: int) -> int:
        """Service time on the calendar between two instants, in microseconds."""
        if end <= start:
            return 0
        if getattr(self.calendar, "all_hours", False):      # every instant counts: no dates needed
            return end - start
        return self.calendar.counted(instant(start), instant(end)) // US

    def _bad_before(self, at: int) -> int | Fraction:
        """Bad amount up to ``at`` (counts: those added at ``at`` included)."""
        if self.counts:
            return self.bad_sums[bisect.bisect_right(self.times, at)]
        index = bisect.bisect_right(self.starts, at) - 1
        if index < 0:
            return self.cumulative[0]          # (what was forgotten: see forget)
        end = self.ends[index]
        return self.cumulative[index] + self.counted(self.starts[index], at if end is None else min(end, at))

    def bad(self, start: int, end: int) -> int | Fraction:
        """Bad amount in the window (start, end]."""
        return self._bad_before(end) - self._bad_before(start)

    def total(self, start: int, end: int) -> int | Fraction:
        """Total amount in the window (start, end]: service time, or events."""
        if self.counts:
            return self.total_sums[bisect.bisect_right(self.times, end)] - \
                self.total_sums[bisect.bisect_right(self.times, start)]
        return self.counted(start, end)

    def knots(self, low: int, high: int) -> Iterable[int]:
        """Instants in [low, high] where a sum's slope may change: amounts added, spans begun
        or ended, and (for time) the calendar opening or closing."""
        if self.counts:
            yield from self.times[bisect.bisect_left(self.times, low):bisect.bisect_right(self.times, high)]
            return
        for at in self.starts[bisect.bisect_left(self.starts, low):]:
            if at > high:
                break
            yield at
        ends = self.ends
        closed = len(ends) - (1 if ends and ends[-1] is None else 0)     # (sorted: spans follow each other)
        first = bisect.bisect_left(ends, low, 0, closed)                # type: ignore[type-var]
        for end in ends[first:closed]:
            if end is None or end > high:
                break
            yield end
        spans = getattr(self.calendar, "open_spans", None)      # every calendar has them; the Protocol not
        if high > low and spans is not None:
            for begins, ends in spans(instant(low), instant(high)):
                yield micros(begins)
                yield micros(ends)

    # -- forgetting -------------------------------------------------------------------------
    def entries(self) -> int:
        """How many amounts and spans it holds."""
        return len(self.times) + len(self.starts) + len(self.held)

    def forget(self, before: int) -> None:
        """Drop what lies wholly before ``before``: no window read from then on reaches it.
        Sums stay as they were (each a running total), so every window after ``before``
        reads the same; one reaching further back reads less."""
        counted = bisect.bisect_left(self.times, before)
        del self.times[:counted], self.bad_sums[:counted], self.total_sums[:counted]
        closed = len(self.ends) - (1 if self.ends and self.ends[-1] is None else 0)
        ended = bisect.bisect_left(self.ends, before, 0, closed)             # type: ignore[type-var]
        del self.starts[:ended], self.ends[:ended], self.cumulative[:ended]
        self.held = [span for span in self.held if span[1] is None or span[1] >= before]

    def bad_spans(self) -> list[tuple[int, int | None]]:
        return list(zip(self.starts, self.ends, strict=True))

    def copy(self) -> Ledger:
        """A copy that shares nothing that changes (undoing a write puts it back)."""
        other = Ledger(self.calendar, self.counts)
        other.version = self.version
        other.starts, other.ends, other.cumulative = list(self.starts), list(self.ends), list(self.cumulative)
        other.times, other.bad_sums, other.total_sums = list(self.times), list(self.bad_sums), list(self.total_sums)
        other.held = [list(span) for span in self.held]
        return other

    def dump(self) -> dict[str, object]:
        """Plain data for a snapshot (Fractions as text)."""
        return {"version": self.version, "starts": self.starts, "ends": self.ends, "cumulative": self.cumulative,
                "times": self.times, "bad": [str(v) for v in self.bad_sums],
                "total": [str(v) for v in self.total_sums], "held": self.held}

    def load(self, saved: dict[str, object]) -> None:
        """Take back what :meth:`dump` gave."""
        self.version = int(saved["version"])                                 # type: ignore[call-overload]
        self.starts = [int(v) for v in saved["starts"]]                       # type: ignore[attr-defined]
        self.ends = [None if v is None else int(v) for v in saved["ends"]]    # type: ignore[attr-defined]
        self.cumulative = [int(v) for v in saved["cumulative"]]               # type: ignore[attr-defined]
        self.times = [int(v) for v in saved["times"]]                         # type: ignore[attr-defined]
        self.bad_sums = [_whole(Fraction(v)) for v in saved["bad"]]           # type: ignore[attr-defined]
        self.total_sums = [_whole(Fraction(v)) for v in saved["total"]]       # type: ignore[attr-defined]
        self.held = [list(span) for span in saved["held"]]                    # type: ignore[attr-defined]
