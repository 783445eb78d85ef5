"""SLA clocks: counted service time for one target and one subject (or one window).

A clock runs and halts; while it runs, counted time grows on its service calendar. Its
levels (warnings, the budget, escalations) fall at exact instants computed from the
calendar. Clocks know nothing of durable_rules: the runtime tells them which facts apply.

Readings are what a clock says happened (a level reached, a cycle met). The runtime turns
them into decisions; a clock rebuilt from its history yields the same readings again.

Both kinds of clock answer one interface (:class:`Clock`): a transition is applied, a new
definition is taken, and each says for itself where its count started, whether it is
closed and which window, if any, it counts in. Callers never ask which kind they hold.
"""
from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

from engine.lang.calendar import Calendar, ServiceCalendar
from engine.lang.followsun import AnyOfCalendar
from schemas.values import DeadlineGoal, Level

if TYPE_CHECKING:
    from engine.lang.model import EscalationLevel

ZERO = timedelta(0)
ACKNOWLEDGED = "ack"            # an acknowledged escalation level, as ``fired`` keeps it (Meter.acknowledge)
MAINTENANCE = "maintenance:"    # the prefix of a posted maintenance window's subject on a window clock

Marks = tuple["Mark", ...]
# A mark tuple as it waits on a clock's heap: (amount, order, repeat index, position, mark).
Pending = tuple[timedelta, int, int, int, "Mark"]
Fired = tuple[str, str | None, str | None, int]          # (kind, level, activity, repeat index)
ReadingKey = tuple[str, str | None, int, int, str | None]
Bounds = tuple[datetime, datetime, str]                   # a window's (start, end, label)


@dataclass(frozen=True)
class Mark:
    """A level on a clock: reaching ``amount`` of counted time yields a reading."""

    kind: str                   # warning | breach | escalation
    level: str                  # the level as written: "75%", "100%", "100% + 2h"
    amount: timedelta
    order: int                  # tie-break among marks at the same amount
    activity: str | None = None
    repeat: timedelta | None = None
    source: EscalationLevel | None = None       # the escalation level, for the decision's rule origin


@dataclass(slots=True)
class Reading:
    """One thing the clock says happened, with the clock's figures at that instant."""

    kind: str
    at: datetime
    cycle: int
    level: str | None
    counted: timedelta
    budget: timedelta
    paused: timedelta
    because: list[str]
    activity: str | None = None
    repeat: int = 0
    source: EscalationLevel | None = None
    calendar: str | None = None         # the calendar the clock counted on
    figures: dict[str, object] | None = None     # a budget clock's figures (engine.eval.budget)

    @property
    def key(self) -> ReadingKey:
        return (self.kind, self.level, self.cycle, self.repeat, self.activity)


@dataclass(slots=True)
class Transition:
    """A fact's effect on a clock, kept so the clock can be rebuilt when a late fact arrives."""

    at: datetime
    seq: int
    action: str                 # duration: start/pause/resume/stop/restart (comma-joined); window: down/up/hold/release
    fact: str                   # "fact:<source>#<id>" (schemas.records.fact_ref)
    subject: str | None = None  # window clocks: which subject went down or up
    due: datetime | None = None  # a ``goal: {due: FIELD}`` clock's start: the deadline its fact posted
    calendar: str | None = None  # ``calendar: {by: FIELD}``: the calendar its fact chose (None: no change)


@dataclass(frozen=True)
class Definition:
    """What a clock counts by, as its target defines it; a rule change that reprices a
    clock hands it the new target's definition."""

    calendar: Calendar
    goal: timedelta | Fraction | DeadlineGoal     # duration: the budget (or a deadline); window: the share
    marks: Callable[[timedelta], Marks]           # the marks for a budget (shared: see marks_for)
    roles: dict[str, set[str]] = field(default_factory=dict)   # duration: fact type -> its roles
    valid: tuple[datetime | None, datetime | None] = (None, None)   # duration: when a cycle may start
    # ``calendar: {by, map, default}``: every calendar a ticket may count on, by id (``calendar`` the default)
    calendars: dict[str, Calendar] = field(default_factory=dict)
    budget: object = None       # a budget clock's BudgetSpec (engine.eval.budget)
    # ``cycles``: once, or reply / update, whose starts after a stop begin the next cycle
    # (docs/RULES.md, "Reply and update targets")
    cycles: str = "once"


class Window(NamedTuple):
    """The window a window clock counts in, and the service time inside it."""

    start: datetime
    end: datetime
    label: str
    service_time: timedelta


class Meter:
    """Counted time with marks. ``run``/``halt`` switch counting; deadlines fire marks."""

    CHANGED_IN_PLACE: tuple[str, ...] = ("fired", "because", "pending")   # containers; the rest is replaced

    def __init__(self, calendar: Calendar, budget: timedelta, marks: Marks):
        self.calendar = calendar
        self.budget = budget
        self.marks = marks                  # sorted, as marks_for makes them; shared, never changed
        self.cycle = 0
        self.counted_before = ZERO
        self.running_since: datetime | None = None
        self.paused_total = ZERO
        self.halted_at: datetime | None = None
        self.fired: set[Fired] = set()
        self.breached = False
        self.because: list[str] = []
        self.pending: list[Pending] | None = None
        # (what the deadline was computed from, the deadline)
        self._deadline: tuple[tuple[datetime, timedelta, timedelta] | None, datetime | None] = (None, None)

    # -- counting -------------------------------------------------------------------
    def counted_at(self, at: datetime) -> timedelta:
        if self.running_since is None or at <= self.running_since:
            return self.counted_before
        return self.counted_before + self.calendar.counted(self.running_since, at)

    def begin_cycle(self, at: datetime, because: str) -> None:
        self.cycle += 1
        self.counted_before = ZERO
        self.paused_total = ZERO
        self.running_since = at
        self.halted_at = None
        self.fired = set()
        self.breached = False
        self.because = [because]
        self.pending = None

    def run(self, at: datetime) -> None:
        if self.running_since is None:
            if self.halted_at is not None:
                self.paused_total += at - self.halted_at
            self.running_since = at
            self.halted_at = None

    def halt(self, at: datetime, counted: timedelta | None = None) -> None:
        """Stop counting at ``at``; ``counted``: :meth:`counted_at` of ``at``, if the caller
        has it (on a service calendar it is worked out span by span)."""
        if self.running_since is not None:
            self.counted_before = self.counted_at(at) if counted is None else counted
            self.running_since = None
            self.halted_at = at

    # -- marks and deadlines --------------------------------------------------------
    def _queue(self) -> list[Pending]:
        if self.pending is None:
            self.pending = self._first_queue()
        return self.pending

    def _first_queue(self) -> list[Pending]:
        """The cycle's marks as a heap, as pushing them one by one in ``marks`` order leaves
        it (a snapshot keeps the list as it is). Marks are sorted, so that is almost always
        the list itself, each mark as it comes: only a level clipped to zero can break it."""
        queue: list[Pending] = []
        fired, last = self.fired, None
        for position, mark in enumerate(self.marks):
            if fired and (mark.kind, mark.level, mark.activity, 0) in fired:
                continue
            entry = (mark.amount if mark.amount > ZERO else ZERO, mark.order, 0, position, mark)
            if last is not None and entry < last:           # out of order: push as before
                queue = []
                for position, mark in enumerate(self.marks):
                    self._push(queue, mark, 0, position)
                return queue
            queue.append(entry)
            last = entry
        return queue

    def _push(self, queue: list[Pending], mark: Mark, repeat: int, position: int) -> None:
        # Marks tied on (amount, order, repeat) fire in their order in self.marks (not by
        # memory address), so a clock rebuilt or replayed fires them the same way.
        amount = max(mark.amount + (mark.repeat * repeat if mark.repeat and repeat else ZERO), ZERO)
        if repeat and (ACKNOWLEDGED, mark.level, mark.activity, 0) in self.fired:
            return
        if (mark.kind, mark.level, mark.activity, repeat) not in self.fired:
            heapq.heappush(queue, (amount, mark.order, repeat, position, mark))

    def acknowledge(self, transition: Transition) -> list[Reading]:
        """An ``escalation.acknowledged`` fact (its action ``ack|cycle|activity|level``):
        that escalation level of this cycle repeats no more. Kept in ``fired`` (so a
        snapshot keeps it) as ``("ack", level, activity, 0)``; a cycle begun since is not
        the one acknowledged."""
        _, cycle, activity, level = transition.action.split("|", 3)
        if str(self.cycle) != cycle:
            return []
        self.fired.add((ACKNOWLEDGED, level, activity, 0))
        if self.pending is not None:
            kept = [p for p in self.pending if not (p[2] and p[4].level == level and p[4].activity == activity)]
            heapq.heapify(kept)
            self.pending = kept
        self._deadline = (None, None)
        return []

    def next_deadline(self) -> datetime | None:
        """When the next mark falls, if the clock keeps running; None while halted."""
        since = self.running_since
        if since is None or self.cycle == 0:
            return None
        queue = self.pending
        if queue is None:
            queue = self.pending = self._first_queue()
        if not queue:
            return None
        amount = queue[0][0]
        basis = (since, self.counted_before, amount)
        known = self._deadline
        if known[0] == basis:                        # asked several times per fact: computed once
            return known[1]
        missing = amount - self.counted_before
        deadline = since if missing <= ZERO else self.calendar.instant_after(since, missing)
        self._deadline = (basis, deadline)
        return deadline

    def fire_due(self, until: datetime, inclusive: bool) -> list[Reading]:
        """Fire every mark falling before ``until`` (or at it, when inclusive)."""
        fired: list[Reading] = []
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > until or (deadline == until and not inclusive):
                return fired
            queue = self._queue()
            amount, _, repeat, position, mark = heapq.heappop(queue)
            self.fired.add((mark.kind, mark.level, mark.activity, repeat))
            if mark.kind == "breach":
                self.breached = True
            fired.append(self._reading(mark.kind, deadline, mark.level, amount, activity=mark.activity,
                                       repeat=repeat, source=mark.source))
            if mark.repeat:
                self._push(queue, mark, repeat + 1, position)

    def fire_passed(self, at: datetime, because: str) -> list[Reading]:
        """Decide, at ``at``, every mark counted time has already passed but that was not
        decided (after a rule change reprices the clock): never back-dated."""
        fired: list[Reading] = []
        counted = self.counted_at(at)
        queue = self._queue()
        while queue and queue[0][0] <= counted and self.cycle > 0:
            _, _, repeat, position, mark = heapq.heappop(queue)
            self.fired.add((mark.kind, mark.level, mark.activity, repeat))
            if mark.kind == "breach":
                self.breached = True
            reading = self._reading(mark.kind, at, mark.level, counted, activity=mark.activity, repeat=repeat,
                                    source=mark.source)
            reading.because.append(because)
            fired.append(reading)
            if mark.repeat:
                self._push(queue, mark, repeat + 1, position)
        self._deadline = (None, None)
        return fired

    def recount(self, calendar: Calendar, budget: timedelta, marks: Marks, at: datetime) -> None:
        """Take a new definition from ``at`` on: the time counted so far stays; from ``at``
        time counts on the new calendar, against the new budget and marks. Marks already
        decided stay decided (by kind, level and activity)."""
        running = self.running_since is not None
        if running:
            self.counted_before = self.counted_at(at)
            self.running_since = at
        self.calendar, self.budget, self.marks = calendar, budget, marks
        self.pending = None
        self._deadline = (None, None)

    def _reading(self, kind: str, at: datetime, level: str | None, counted: timedelta, activity: str | None = None,
                 repeat: int = 0, source: EscalationLevel | None = None) -> Reading:
        paused = self.paused_total + (at - self.halted_at if self.halted_at and self.running_since is None
                                      else ZERO)
        return Reading(kind, at, self.cycle, level, counted, self.budget, paused, list(self.because),
                       activity=activity, repeat=repeat, source=source, calendar=self.calendar.id)


def marks_for(budget: timedelta, warn_at: Sequence[Level], escalations: Sequence[EscalationLevel] = ()) -> Marks:
    """Warnings, the breach at 100% and escalation levels, in counted time, sorted. Marks
    are immutable and every clock of a target (of a window length) has the same ones: the
    engine makes them once per target and budget and shares them."""
    marks = [Mark("warning", level.text, level.amount(budget), 0) for level in warn_at if level.burn is None]
    marks.append(Mark("breach", "100%", budget, 1))
    marks.extend(Mark("escalation", level.at.text, level.at.amount(budget), 2 + level.index, level.activity,
                      level.repeat, level) for level in escalations
                 if level.at.burn is None)        # a burn-rate level escalates with its burn (engine.eval.budget)
    return tuple(sorted(marks, key=lambda m: (m.amount, m.order)))


class Clock(Meter):
    """What the engine asks of any clock; each kind answers for itself."""

    # ``start_at``: (time, fact) of the earliest earlier fact the target names; set by the
    # engine before each fact, so it is never part of a snapshot. Window clocks ignore it.
    start_from: tuple[datetime, str] | None = None

    def __init__(self, definition: Definition, budget: timedelta):
        super().__init__(definition.calendar, budget, definition.marks(budget))
        self.definition = definition

    def apply(self, transition: Transition) -> list[Reading]:
        """Apply one fact's effect (deadlines before it must already have fired)."""
        raise NotImplementedError

    def reprice(self, definition: Definition, at: datetime) -> None:
        """Count by ``definition`` from ``at`` on (a rule change repriced the clock)."""
        raise NotImplementedError

    def cancel(self, at: datetime) -> timedelta:
        """End the clock, neither met nor breached (a rule change removed its target); the
        time it had counted."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Still counting or able to: a cycle not stopped, a window not closed."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """A window clock whose window has ended (a duration clock has no window to close)."""
        return False

    @property
    def status(self) -> str:
        """As a reader shows it: idle, running, paused or stopped; running or closed for a window."""
        raise NotImplementedError

    @property
    def count_start(self) -> datetime | None:
        """What a ``clock.running`` fact gives as its start: a window's start; a duration
        clock's current run (None while paused)."""
        raise NotImplementedError

    @property
    def window(self) -> Window | None:
        """The window the clock counts in (None: a duration clock)."""
        return None

    def carried_over(self) -> list[tuple[str, str, str]]:
        """(action, subject, fact) the next window starts with: what is still down or held
        when this one ends."""
        return []

    def own_state(self) -> dict[str, object]:
        """What a snapshot keeps of this kind of clock beyond its meter (plain data)."""
        raise NotImplementedError

    def attributes(self) -> dict[str, object]:
        """The clock's attributes as they are now, the containers it changes in place
        copied: what puts it back (engine.eval.book.record_image)."""
        saved = self.__dict__.copy()
        for name in self.CHANGED_IN_PLACE:
            value = saved.get(name)
            if value is not None:
                saved[name] = value.copy()
        return saved

    def load_own_state(self, saved: dict[str, object]) -> None:
        """Take back what :meth:`own_state` gave."""
        raise NotImplementedError


class DurationClock(Clock):
    """Counts service time between start and stop, not while paused; restarts begin cycles.

    A deadline goal (schemas.values.DeadlineGoal) prices each cycle as it begins: its budget
    is the service time from its start to the deadline, so without a pause it breaches at
    the deadline itself, and its levels are shares of the time from start to deadline. A
    posted deadline (``due``) that is missing, or not after the start, prices the cycle at
    nothing: it is due at once."""

    def __init__(self, definition: Definition):
        super().__init__(definition, _duration(definition.goal))
        self.valid_from, self.valid_to = definition.valid
        self.state = "idle"
        self.cycle_start: datetime | None = None      # a deadline goal's cycle: its start and deadline
        self.cycle_due: datetime | None = None
        self._posted_due: datetime | None = None      # the starting transition's, while it is applied

    def begin_cycle(self, at: datetime, because: str) -> None:
        super().begin_cycle(at, because)
        goal = self.definition.goal
        if isinstance(goal, DeadlineGoal):
            self.cycle_start = at
            self.cycle_due = self._posted_due if goal.due else _business_deadline(self.definition, at, self.calendar)
            self._price(self.definition)

    def _choose_calendar(self, transition: Transition, actions: set[str]) -> None:
        """``calendar: {by: FIELD}``: a cycle begins on the calendar its fact chose (the default
        if it chose none); a later fact that chooses another moves the count onto it from
        its instant (docs/RULES.md, "Calendars per target")."""
        calendars = self.definition.calendars
        if not calendars:
            return
        begins = self.state in ("idle", "stopped") or bool(actions & {"reset", "restart"})
        wanted = calendars.get(transition.calendar or "") or (self.definition.calendar if begins else None)
        if wanted is None or wanted is self.calendar:
            return
        if begins:
            self.calendar = wanted                 # counted from the cycle's start, nothing to carry
            self._deadline = (None, None)
        else:
            self.recount(wanted, self.budget, self.marks, transition.at)

    def _price(self, definition: Definition) -> None:
        """The budget and marks of a deadline goal's cycle: the service time from its start
        to its deadline."""
        budget = _deadline_budget(self.calendar, self.cycle_start, self.cycle_due)
        self.budget, self.marks = budget, definition.marks(budget)
        self.pending = None
        self._deadline = (None, None)

    @property
    def roles(self) -> dict[str, set[str]]:
        """Fact type -> {"start", "pause", ...}: what a fact of the type does to the clock."""
        return self.definition.roles

    def _valid(self, at: datetime) -> bool:
        return (self.valid_from is None or at >= self.valid_from) and (self.valid_to is None or at < self.valid_to)

    def apply(self, transition: Transition) -> list[Reading]:
        """Apply one fact's roles (deadlines before it must already have fired).

        ``reset`` cancels the running cycle and begins a new one; ``restart`` stops it (met
        if within the goal) and begins a new one; ``cancel`` ends it, neither met nor
        breached. Each ends in a recorded reading, so a late fact rebuilds them too.

        ``cycles: reply`` and ``update``: a start after the cycle ended begins the next one
        (a start while one runs belongs to it); ``update`` restarts only a cycle that runs
        or waits, and one restarted while paused begins paused."""
        if transition.action.startswith(ACKNOWLEDGED + "|"):
            return self.acknowledge(transition)
        actions, at, fact = set(transition.action.split(",")), transition.at, transition.fact
        self._posted_due = transition.due
        self._choose_calendar(transition, actions)
        out: list[Reading] = []
        if self.state == "idle":
            if ("start" in actions or "reset" in actions) and self._valid(at):
                since, first = self.start_from if self.start_from and self.start_from[0] < at else (at, None)
                self.begin_cycle(since, fact)
                if first is not None and first != fact:
                    self.because.insert(0, first)
                self.state = "running"
            return out
        repeats = self.definition.cycles != "once"
        if repeats and self.state == "stopped" and "start" in actions and not actions & {"reset", "cancel"}:
            if self._valid(at):                    # the next message, or the ticket reopened
                self.begin_cycle(at, fact)
                self.state = "running"
            return out
        if "reset" in actions or ("restart" in actions and not (
                self.definition.cycles == "update" and self.state == "stopped")):
            paused = self.state == "paused"
            if self.state in ("running", "paused"):
                out += self._cancelled(at, fact) if "reset" in actions else self._stop(at, fact)
            if self._valid(at):
                self.begin_cycle(at, fact)
                self.state = "running"
                if paused and repeats and "reset" not in actions:
                    self.halt(at)                  # an update while the ticket waits: the next one waits too
                    self.state = "paused"
            return out
        if self.state == "stopped":
            return out
        self.because.append(fact)
        if "cancel" in actions:
            out += self._cancelled(at, fact)
        elif "stop" in actions:
            out += self._stop(at, fact)
        elif "pause" in actions and self.state == "running":
            self.halt(at)
            self.state = "paused"
        elif "resume" in actions and self.state == "paused":
            self.run(at)
            self.state = "running"
        return out

    def _cancelled(self, at: datetime, fact: str) -> list[Reading]:
        """A cancel condition held: the cycle ends with a ``cancelled`` reading."""
        counted = self.counted_at(at)
        if fact not in self.because:
            self.because.append(fact)
        self.halt(at, counted)
        self.state = "stopped"
        return [self._reading("cancelled", at, None, counted)]

    def cancel(self, at: datetime) -> timedelta:
        counted = self.counted_at(at)
        self.halt(at, counted)
        self.state = "stopped"
        return counted

    def _stop(self, at: datetime, fact: str) -> list[Reading]:
        counted = self.counted_at(at)
        if fact not in self.because:
            self.because.append(fact)
        self.halt(at, counted)
        self.state = "stopped"
        if self.breached or counted > self.budget:
            return []
        return [self._reading("met", at, None, counted)]

    def reprice(self, definition: Definition, at: datetime) -> None:
        goal = definition.goal
        calendar = definition.calendars.get(self.calendar.id, definition.calendar)   # a ticket's choice stays
        if isinstance(goal, DeadlineGoal):
            start = self.cycle_start or at
            if not goal.due:                       # the new calendar's business days, from the same start
                self.cycle_due = _business_deadline(definition, start, calendar)
            budget = _deadline_budget(calendar, start, self.cycle_due)
        else:
            budget = _duration(goal)
        self.recount(calendar, budget, definition.marks(budget), at)
        self.definition = definition
        self.valid_from, self.valid_to = definition.valid

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused")

    @property
    def status(self) -> str:
        return self.state

    @property
    def count_start(self) -> datetime | None:
        return self.running_since

    def own_state(self) -> dict[str, object]:
        saved: dict[str, object] = {"state": self.state}
        if self.calendar is not self.definition.calendar:
            saved["calendar"] = self.calendar.id           # a ticket's own (calendar: {by: …})
        if self.cycle_start is not None:
            saved.update(cycle_start=self.cycle_start.isoformat(),
                         cycle_due=None if self.cycle_due is None else self.cycle_due.isoformat())
        return saved

    def load_own_state(self, saved: dict[str, object]) -> None:
        """The state; a deadline cycle's start and deadline, and the budget priced from them
        (before the snapshot's pending marks, which name marks by their place in ``marks``)."""
        self.state = str(saved["state"])
        chosen = saved.get("calendar")
        if isinstance(chosen, str):
            self.calendar = self.definition.calendars.get(chosen, self.definition.calendar)
        start, due = saved.get("cycle_start"), saved.get("cycle_due")
        if isinstance(start, str):
            self.cycle_start = datetime.fromisoformat(start)
            self.cycle_due = datetime.fromisoformat(due) if isinstance(due, str) else None
            budget = _deadline_budget(self.calendar, self.cycle_start, self.cycle_due)
            self.budget, self.marks = budget, self.definition.marks(budget)


class WindowedClock(Clock):
    """A clock over a window, running until it closes: the window clock's and the budget
    clock's common reading of it."""

    window_start: datetime
    _closed: bool

    @property
    def running(self) -> bool:
        return not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def status(self) -> str:
        return "closed" if self._closed else "running"

    @property
    def count_start(self) -> datetime:
        return self.window_start


class WindowClock(WindowedClock):
    """Counts time inside service hours while any subject is down, within one window.

    Serves availability targets (down/up facts) and threshold targets (a subject is down
    while its latest sample violates the threshold). Budget = (1 − goal) × service time
    of the window. The window's end stops the clock: met if the budget held.
    """

    CHANGED_IN_PLACE = Clock.CHANGED_IN_PLACE + ("down", "held")

    def __init__(self, definition: Definition, bounds: Bounds):
        self.window_start, self.window_end, self.label = bounds
        self.service_time = definition.calendar.counted(self.window_start, self.window_end)
        super().__init__(definition, _error_budget(self.service_time, definition.goal))
        self.down: dict[str, str] = {}        # subject -> the fact that took it down
        self.held: dict[str, str] = {}        # posted maintenance windows open: subject -> its start fact
        self._closed = False
        self.begin_cycle(self.window_start, f"window:{self.label}")
        self.halt(self.window_start)
        self.because = []
        self.paused_total = ZERO

    def apply(self, transition: Transition) -> list[Reading]:
        action, subject, fact = transition.action, transition.subject, transition.fact
        if action.startswith(ACKNOWLEDGED + "|") and not self._closed:
            return self.acknowledge(transition)
        if self._closed or subject is None:
            return []
        at = max(transition.at, self.window_start)
        counting = self.counting
        if action == "down":
            self.down.setdefault(subject, fact)
        elif action == "up" and subject in self.down:
            del self.down[subject]
        elif action == "hold":
            self.held.setdefault(subject, fact)
        elif action == "release" and subject in self.held:
            del self.held[subject]
        else:
            return []
        if fact not in self.because:
            self.because.append(fact)
        if self.counting and not counting:
            self.run(at)
        elif counting and not self.counting:
            self.halt(at)
        return []

    @property
    def counting(self) -> bool:
        """Down time counts while some subject is down and no posted maintenance window is open."""
        return bool(self.down) and not self.held

    def next_deadline(self) -> datetime | None:
        if self._closed:
            return None
        deadline = super().next_deadline()
        return self.window_end if deadline is None or deadline > self.window_end else deadline

    def fire_due(self, until: datetime, inclusive: bool) -> list[Reading]:
        # A mark that falls exactly at the window's end loses to the end (as a fact would win).
        out = super().fire_due(min(until, self.window_end), inclusive and until < self.window_end)
        if not self._closed and (until > self.window_end or (inclusive and until == self.window_end)):
            out += self.close()
        return out

    def reprice(self, definition: Definition, at: datetime) -> None:
        """A new budget: the new goal's share of this window's service time on the new calendar."""
        self.service_time = definition.calendar.counted(self.window_start, self.window_end)
        budget = _error_budget(self.service_time, definition.goal)
        self.recount(definition.calendar, budget, definition.marks(budget), at)
        self.definition = definition

    def cancel(self, at: datetime) -> timedelta:
        counted = self.counted_at(at)
        self.halt(at, counted)
        self._closed = True
        return counted

    def close(self) -> list[Reading]:
        counted = self.counted_at(self.window_end)
        self.halt(self.window_end, counted)
        self._closed = True
        if self.breached or counted > self.budget:
            return []
        return [self._reading("met", self.window_end, None, counted)]

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end, self.label, self.service_time)

    def carried_over(self) -> list[tuple[str, str, str]]:
        return [("hold", s, f) for s, f in sorted(self.held.items())] + \
            [("down", s, f) for s, f in sorted(self.down.items())]

    def own_state(self) -> dict[str, object]:
        return {"down": self.down, "held": self.held, "closed": self._closed}

    def load_own_state(self, saved: dict[str, object]) -> None:
        down, held = saved["down"], saved["held"]
        if not isinstance(down, dict) or not isinstance(held, dict):
            raise TypeError("a window clock's down and held subjects are mappings")
        self.down, self.held, self._closed = dict(down), dict(held), bool(saved["closed"])


def _duration(goal: timedelta | Fraction | DeadlineGoal) -> timedelta:
    """A duration goal's budget; a deadline goal's is priced per cycle (zero until one begins)."""
    if isinstance(goal, timedelta):
        return goal
    if isinstance(goal, DeadlineGoal):
        return ZERO
    raise TypeError(f"a duration clock's goal is a duration, not {goal!r}")


def _business_deadline(definition: Definition, start: datetime, calendar: Calendar | None = None) -> datetime:
    """The close of ``definition``'s ``end_of: business_day`` deadline for a cycle from
    ``start``, on ``calendar`` (default: the definition's)."""
    goal, calendar = definition.goal, calendar or definition.calendar
    if not isinstance(goal, DeadlineGoal) or not isinstance(calendar, (ServiceCalendar, AnyOfCalendar)):
        raise TypeError(f"a deadline goal counts business days of a service calendar, not {calendar!r}")
    return calendar.business_day_end(start, goal.days)


def _deadline_budget(calendar: Calendar, start: datetime | None, due: datetime | None) -> timedelta:
    """The service time from a cycle's start to its deadline (nothing without one)."""
    if start is None or due is None:
        return ZERO
    return calendar.counted(start, due)


def _error_budget(service_time: timedelta, goal: timedelta | Fraction | DeadlineGoal) -> timedelta:
    """(1 − goal) × service time, to the microsecond."""
    if not isinstance(goal, Fraction):
        raise TypeError(f"a window clock's goal is a share, not {goal!r}")
    return timedelta(microseconds=round(Fraction(service_time // timedelta(microseconds=1)) * (1 - goal)))


def month_span(period: str, zone: str = "UTC") -> tuple[datetime, datetime]:
    """The calendar month ``YYYY-MM`` in the timezone ``zone``: [first instant, first instant
    of the next month), in UTC (ValueError if ``period`` is not a month)."""
    middle = datetime.strptime(period + "-15", "%Y-%m-%d").replace(tzinfo=UTC)
    start, end, _ = window_of("month", middle, zone)
    return start, end


def window_of(spec: str, at: datetime, timezone: str) -> tuple[datetime, datetime, str]:
    """The window (start, end, label) holding ``at``: a calendar month, ISO week or day in
    the calendar's zone, or consecutive blocks of N days counted from 1970-01-01 local."""
    return _window_of_date(spec, at.astimezone(ZoneInfo(timezone)).date(), timezone)


@functools.lru_cache(maxsize=256)
def _window_of_date(spec: str, local: date, timezone: str) -> tuple[datetime, datetime, str]:
    """The window of the local date ``local`` (computed once per date: every sample of a
    window clock asks for its window)."""
    zone = ZoneInfo(timezone)
    if spec == "month":
        first = local.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        label = f"{first:%Y-%m}"
    elif spec == "week":
        first = local - timedelta(days=local.weekday())
        following = first + timedelta(days=7)
        year, week, _ = first.isocalendar()
        label = f"{year}-W{week:02d}"
    elif spec == "day":
        first, following = local, local + timedelta(days=1)
        label = f"{first:%Y-%m-%d}"
    else:
        days = int(spec[:-1])
        epoch = date(1970, 1, 1)
        first = epoch + timedelta(days=(local - epoch).days // days * days)
        following = first + timedelta(days=days)
        label = f"{first:%Y-%m-%d}/{spec}"
    start, end = datetime.combine(first, time(0), zone), datetime.combine(following, time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC), label
