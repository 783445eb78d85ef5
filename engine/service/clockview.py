"""The clocks read model: what the clocks stand at, published after every write so that
readers never take the write lock.

The service calls :meth:`ClockReadModel.publish` while it still holds the write lock, after
a write is committed: the clocks that write added, changed or forgot (the clock book keeps
their keys, see ``ClockBook.touched``) are copied into immutable views, and a new
:class:`ClockView` replaces the old one in a single assignment. A reader takes whichever
view is current and never sees one half made; it sees what the store holds, never what a
write in progress has not committed yet.

What depends on "now" (time counted, time remaining) is not stored: a view keeps what the
engine decided (time counted before the clock last started running, since when it runs,
on which calendar) and a reader counts on from there. Counting is additive on a calendar,
so each calendar gets a :class:`Ruler` (service time counted from a fixed instant) and a
clock's time at ``t`` is one subtraction: reading every clock costs one calendar walk per
calendar, not one per clock, and gives exactly what ``Engine.clocks`` gives.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import immutables

from engine.eval.budget import BudgetClock, FrozenBudget
from engine.eval.engine import Engine
from engine.eval.reads import quiet_window
from engine.lang.calendar import Calendar
from engine.lang.model import RuleSet
from engine.service.sortedkeys import EMPTY_KEYS, SortedKeys, SortedKeysMutation
from schemas.values import format_instant, format_remaining, format_whole_duration

UTC = UTC
ZERO = timedelta(0)
DAY = timedelta(days=1)
EMPTY: immutables.Map = immutables.Map()


class Ruler:
    """Service time of one calendar counted from a fixed UTC midnight (negative before it):
    ``at(b) - at(a)`` is ``calendar.counted(a, b)`` for any ``a <= b``, to the microsecond.
    What a day adds is remembered, so a reading walks only the days it has not seen."""

    def __init__(self, calendar: Calendar, anchor: datetime):
        self.calendar = calendar
        self.first = self.last = _midnight(anchor)
        self._days = {self.first: ZERO}             # UTC midnight -> service time since the anchor
        self._lock = threading.Lock()               # readers and the writer extend it alike

    def at(self, instant: datetime) -> timedelta:
        instant = instant.astimezone(UTC)
        day = _midnight(instant)
        return self._day(day) + self.calendar.counted(day, instant)

    def _day(self, day: datetime) -> timedelta:
        found = self._days.get(day)
        if found is not None:
            return found
        with self._lock:
            days, counted = self._days, self.calendar.counted
            while day > self.last:
                days[self.last + DAY] = days[self.last] + counted(self.last, self.last + DAY)
                self.last += DAY
            while day < self.first:
                days[self.first - DAY] = days[self.first] - counted(self.first - DAY, self.first)
                self.first -= DAY
            return days[day]


def _midnight(instant: datetime) -> datetime:
    return datetime.combine(instant.astimezone(UTC).date(), time(), UTC)


@dataclass(frozen=True, slots=True)
class Counting:
    """A meter as the engine left it: ``counted_at(t)`` as ``Meter.counted_at`` gives it."""

    counted_before: timedelta
    running_since: datetime | None
    base: timedelta              # counted_before − ruler.at(running_since), while it runs
    ruler: Ruler | None

    def counted_at(self, at: datetime, rulings: dict | None = None) -> timedelta:
        if self.running_since is None or at <= self.running_since:
            return self.counted_before
        assert self.ruler is not None       # a running meter has one (ClockReadModel._counting)
        if rulings is None:
            return self.base + self.ruler.at(at)
        found = rulings.get(self.ruler)
        if found is None:
            found = rulings[self.ruler] = self.ruler.at(at)
        return self.base + found


@dataclass(frozen=True, slots=True)
class RunningClock:
    """One running clock: what ``GET /v1/clocks`` shows of it, less what "now" decides."""

    key: str
    target: str
    subject: str
    service: str
    agreement: str
    cycle: int
    state: str
    budget: timedelta
    budget_text: str
    next_deadline: str | None
    shadow: bool
    counting: Counting
    error_budget: FrozenBudget | None = None      # a budget clock's figures (engine.eval.budget)

    def at(self, instant: datetime, rulings: dict) -> dict:
        counted = self.counting.counted_at(instant, rulings)
        return {"clock": self.key, "target": self.target, "subject": self.subject, "service": self.service,
                "agreement": self.agreement, "cycle": self.cycle, "state": self.state,
                "counted": format_whole_duration(counted), "budget": self.budget_text,
                "remaining": format_remaining(self.budget, counted),
                "next_deadline": self.next_deadline, "shadow": self.shadow,
                "error_budget": None if self.error_budget is None else self.error_budget.reading(instant)}


@dataclass(frozen=True, slots=True)
class Window:
    """One availability or threshold window's clock, running or closed (while kept)."""

    counting: Counting
    window_end: datetime
    service_time: timedelta


@dataclass(frozen=True, slots=True)
class ClockView:
    """The clocks as the last committed write left them. Immutable: share it freely.

    The running clocks' keys are kept in key order (engine.service.sortedkeys), all of them
    and per service, target, (service, target) and subject, so that a page of ``limit``
    clocks reads about ``limit`` keys, and only those are read at "now"."""

    running: immutables.Map = EMPTY          # key -> RunningClock
    by_service: immutables.Map = EMPTY       # service -> SortedKeys
    by_target: immutables.Map = EMPTY        # target -> SortedKeys
    by_subject: immutables.Map = EMPTY       # subject -> SortedKeys
    windows: immutables.Map = EMPTY          # "<target>/<label>" -> Window
    engine_now: datetime | None = None       # the engine's event time
    next_deadline: datetime | None = None    # the earliest deadline not fired yet
    ruleset: RuleSet | None = None           # the version in force
    retain: timedelta | None = None
    order: SortedKeys = EMPTY_KEYS           # the keys of ``running``
    # (service, target) -> SortedKeys: a target's clocks normally share its service, but a
    # clock started before a rule change keeps the target it started under
    by_pair: immutables.Map = EMPTY
    budget_keys: frozenset[str] = frozenset()    # the running budget clocks' keys (few: one per window)

    def reading_instant(self, now: datetime) -> datetime:
        """Where readings are taken for a reader at wall clock ``now``: not past a deadline
        due and not fired yet (the scheduler is about to fire it), and not before the
        engine's own time (as ``EngineReads.reading_instant`` and ``Engine.clocks``)."""
        at = min(now, self.next_deadline) if self.next_deadline else now
        return max(at, self.engine_now) if self.engine_now else at

    def clocks(self, now: datetime, service: str | None = None, target: str | None = None,
               subject: str | None = None) -> list[dict]:
        """The running clocks read at wall clock ``now``, in key order, as ``Engine.clocks``
        reads them, optionally of one service, target or subject."""
        return self.page(now, service, target, subject)[0]

    def page(self, now: datetime, service: str | None = None, target: str | None = None,
             subject: str | None = None, limit: int | None = None) -> tuple[list[dict], int]:
        """The first ``limit`` of :meth:`clocks` and how many there are: only those are read."""
        at = self.reading_instant(now)
        rulings: dict = {}
        running = self.running
        if subject is not None:             # a subject's clocks are few: filtered one by one
            keys = self.by_subject.get(subject, EMPTY_KEYS)
            if service is not None or target is not None:
                keys = [key for key in keys if (service is None or running[key].service == service)
                        and (target is None or running[key].target == target)]
            shown = list(keys) if limit is None else list(keys)[:limit]
            return [running[key].at(at, rulings) for key in shown], len(keys)
        if target is not None:
            found = self.by_pair.get((service, target)) if service is not None else self.by_target.get(target)
        elif service is not None:
            found = self.by_service.get(service)
        else:
            found = self.order
        if found is None:
            return [], 0
        return [running[key].at(at, rulings) for key in found.first(limit)], len(found)

    def budgets(self, now: datetime) -> list[tuple[RunningClock, dict]]:
        """Every running budget clock (in key order) with its ``error_budget`` read at wall
        clock ``now``: the figures ``/metrics`` reports per target."""
        at = self.reading_instant(now)
        return [(clock, clock.error_budget.reading(at)) for clock in
                (self.running[key] for key in self.budget_keys) if clock.error_budget is not None]

    def window_reading(self, target_id: str, label: str, at: datetime) -> tuple[timedelta, timedelta] | None:
        """(down time counted up to ``at``, service time) of a window, as
        ``Engine.window_reading`` gives it."""
        now = max(filter(None, [at, self.engine_now]), default=None)
        window = self.windows.get(f"{target_id}/{label}")
        if window is None:
            if self.ruleset is None:
                return None
            return quiet_window(self.ruleset.targets.get(target_id), label, now, self.engine_now, self.retain)
        until = min(now or window.window_end, window.window_end)
        return window.counting.counted_at(until), window.service_time


class ClockReadModel:
    """Publishes a :class:`ClockView` after each write; ``view`` is always the latest one."""

    def __init__(self):
        self.view = ClockView()
        self._engine = lambda: None                    # the engine last published (weakly)
        self._rulers: dict[int, Ruler] = {}          # id(calendar) -> its ruler (it keeps the calendar)

    def publish(self, engine: Engine) -> ClockView:
        """Take what the last write changed into a new view (all of the engine's clocks, for
        an engine not seen before). Call with the write lock held, after the commit."""
        book = engine.state.book
        keys: Collection[str]
        if engine is not self._engine() or book.touched is None:
            self._engine, book.touched = weakref.ref(engine), set()
            keys, base = sorted(book.records), ClockView()       # sorted: each index grows at its end
        else:
            keys, base = book.touched, self.view
            book.touched = set()
        running, windows = base.running.mutate(), base.windows.mutate()
        order = base.order.mutate()
        budget_keys = set(base.budget_keys)
        indexes = {name: _Index(getattr(base, name)) for name in INDEXES}
        for key in keys:
            old = running.get(key)
            if old is not None:
                del running[key]
                order.discard(key)
                budget_keys.discard(key)
                for name, value in _indexed(old):
                    indexes[name].discard(value, key)
            windows.pop(key, None)
            record = book.get(key)
            if record is None:
                continue                                  # forgotten
            clock = record.clock
            counting = self._counting(clock)
            window = clock.window
            if window is not None:
                windows[key] = Window(counting, window.end, window.service_time)
            if clock.running and clock.cycle > 0:
                target = record.target
                deadline = clock.next_deadline()
                view = RunningClock(key, target.id, record.subject, target.service, target.agreement.id,
                                    clock.cycle, clock.status, clock.budget,
                                    format_whole_duration(clock.budget),
                                    None if deadline is None else format_instant(deadline),
                                    target.agreement.shadow, counting,
                                    clock.frozen() if isinstance(clock, BudgetClock) else None)
                running[key] = view
                order.add(key)
                if view.error_budget is not None:
                    budget_keys.add(key)
                for name, value in _indexed(view):
                    indexes[name].add(value, key)
        done = {name: index.finish() for name, index in indexes.items()}
        self.view = ClockView(running.finish(), done["by_service"], done["by_target"], done["by_subject"],
                              windows.finish(), engine.now, engine.next_deadline(), engine.ruleset, engine.retain,
                              order.finish(), done["by_pair"], frozenset(budget_keys))
        return self.view

    def _counting(self, clock) -> Counting:
        since = clock.running_since
        if since is None:
            return Counting(clock.counted_before, None, ZERO, None)
        ruler = self._rulers.get(id(clock.calendar))
        if ruler is None:
            ruler = self._rulers[id(clock.calendar)] = Ruler(clock.calendar, since)
        return Counting(clock.counted_before, since, clock.counted_before - ruler.at(since), ruler)


INDEXES = ("by_service", "by_target", "by_subject", "by_pair")


def _indexed(clock: RunningClock) -> tuple[tuple[str, object], ...]:
    """(index, value) of each index a running clock is listed in."""
    return (("by_service", clock.service), ("by_target", clock.target), ("by_subject", clock.subject),
            ("by_pair", (clock.service, clock.target)))


class _Index:
    """One index of a view being published: value -> SortedKeys, each value's keys
    changed in place until :meth:`finish`."""

    def __init__(self, base: immutables.Map):
        self.base = base
        self.changed: dict[object, SortedKeysMutation] = {}

    def _keys(self, value) -> SortedKeysMutation:
        found = self.changed.get(value)
        if found is None:
            found = self.changed[value] = self.base.get(value, EMPTY_KEYS).mutate()
        return found

    def add(self, value, key: str) -> None:
        self._keys(value).add(key)

    def discard(self, value, key: str) -> None:
        self._keys(value).discard(key)

    def finish(self) -> immutables.Map:
        index = self.base.mutate()
        for value, keys in self.changed.items():
            if len(keys):
                index[value] = keys.finish()
            else:
                index.pop(value, None)
        return index.finish()
