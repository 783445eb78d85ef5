"""Budget clocks: an error budget over a rolling or a calendar window, with burn-rate
alert levels and a forecast (docs/RULES.md, "Error budgets").

A budget clock serves every ratio target, and the availability and threshold targets
that have a rolling window or burn-rate levels (the others keep their window clock:
engine.eval.clock.WindowClock). It answers the :class:`Clock` interface, so the engine
moves, fires, rebuilds and snapshots it as any clock.

What it decides, each at the exact instant (a whole microsecond) its condition starts to
hold, found from the amounts of its :class:`Ledger` alone, so a replay or a what-if
decides the same at the same instants:

- ``breach`` when the bad amount of the window ending at that instant reaches the budget,
  (1 − goal) × the total of that window (time: of a calendar window's whole service time);
  in a rolling window, ``recovered`` when it falls below it again, as old bad time or bad
  events leave the window (a calendar window's breach is final, as a window clock's);
- ``warning`` and escalation levels at shares of that budget, once per rise;
- ``burn_rate`` of a level when both its long and its short window burn the budget at its
  factor or faster (burn rate = bad ÷ total of the window ÷ (1 − goal)), and
  ``burn_rate_cleared`` when the short window stops; escalation levels written
  ``at: 14.4x`` escalate with it;
- ``at_risk`` when, at the burn rate of the last ``forecast.over``, the budget left runs out
  before the window ends (a rolling window: within one window length); the ``at_risk``
  decision is retracted when the forecast moves out again.

Between the instants where amounts change (and the same instants a window length later,
and the calendar's openings and closings) every sum is linear in time, so each condition
is a polynomial of degree two at most there: its roots, checked exactly around each to the
microsecond, are where it can change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING

from engine.eval.clock import ZERO, Bounds, Clock, Definition, Reading, Transition, Window, WindowedClock
from engine.eval.ledger import US, Ledger, instant, micros
from engine.lang.model import DEFAULT_FORECAST
from schemas.counts import read_counts
from schemas.values import Level, format_duration, format_instant

if TYPE_CHECKING:
    from engine.lang.calendar import Calendar
    from engine.lang.model import EscalationLevel, Target

MAINTENANCE = "maintenance:"
ROLLING_END = datetime(9999, 1, 1, tzinfo=UTC)      # a rolling window's clock runs until cancelled
HORIZON = 6 * 3600 * 1_000_000                       # how far one search looks ahead (µs): then again
REACH = 3600 * 1_000_000                             # a ratio budget's, at least, while counts come
COUNTS = "counts "                                   # the action of an sli.counts transition
FOLLOWED_FACTS = 50                                  # facts a decision names, at most (the latest)
# A rolling ledger forgets, past this many entries, what lies more than twice its longest
# window back: no condition reads further than one, a burn-down chart's first point two.
KEPT_ENTRIES = 1024


@dataclass(frozen=True)
class ShareLevel:
    """A warning or an escalation at a share of the budget."""

    kind: str                   # warning | escalation
    level: Level
    activity: str | None = None
    source: EscalationLevel | None = None


@dataclass(frozen=True)
class BurnSpec:
    text: str                   # "14.4x"
    factor: Fraction
    long: int                   # µs
    short: int
    escalations: tuple[EscalationLevel, ...] = ()


@dataclass(frozen=True)
class Condition:
    """One condition of a budget clock, judged in whole numbers: with ``share`` = num/den,
    a *share* holds when the bad amount of the budget's window reaches ``share`` of its base
    (plus ``offset`` µs), a *burn* when that of the window of ``length`` reaches ``share``
    of its total, the *forecast* when the budget left runs out within the window."""

    kind: str                   # share | burn | forecast
    num: int
    den: int
    length: int = 0             # burn: its window (µs)
    offset: int = 0             # share: the level's added counted time (µs)


@dataclass(frozen=True)
class BudgetSpec:
    """What a budget clock decides, from its target."""

    allowed: Fraction            # 1 − goal: the share of the total the budget allows
    length: int | None           # a rolling window's length (µs); None: a calendar window
    counts: bool                 # ratio: events; else time
    levels: tuple[ShareLevel, ...]
    burns: tuple[BurnSpec, ...]
    forecast: int                # the look-back of the forecast's burn rate (µs)
    window: str = "month"        # the window as written: month, 30d, rolling 28d

    @cached_property
    def conditions(self) -> tuple[Condition, ...]:
        """What a clock of it evaluates, in order: exhausted, each level, each burn level's
        long and short window, at risk."""
        def share(ratio: Fraction, kind: str = "share", length: int = 0, offset: int = 0) -> Condition:
            return Condition(kind, ratio.numerator, ratio.denominator, length, offset)
        allowed = self.allowed
        out = [share(allowed)]
        out += [share(level.level.share * allowed, offset=0 if self.counts else level.level.offset // US)
                for level in self.levels]
        out += [share(burn.factor * allowed, "burn", length) for burn in self.burns
                for length in (burn.long, burn.short)]
        return (*out, share(allowed, "forecast"))


def budget_spec(target: Target) -> BudgetSpec:
    """A target's budget clock, as its rules define it."""
    goal = target.goal
    if not isinstance(goal, Fraction):
        raise TypeError(f"a budget's goal is a share, not {goal!r}")
    rolling = target.rolling
    levels = [ShareLevel("warning", level) for level in target.warn_at if level.burn is None]
    levels += [ShareLevel("escalation", level.at, level.activity, level) for level in target.escalations
               if level.at.burn is None]
    burns = tuple(BurnSpec(burn.text, burn.factor, burn.long // US, burn.short // US,
                           tuple(level for level in target.escalations if level.at.burn == burn.factor))
                  for burn in target.burn_rate)
    return BudgetSpec(1 - goal, None if rolling is None else rolling // US, target.measure == "ratio",
                      tuple(levels), burns, (target.forecast_over or DEFAULT_FORECAST) // US,
                      str(target.spec.get("window", "month")))


def _number(value: int | Fraction) -> int | float:
    return int(value) if Fraction(value).denominator == 1 else float(value)


def _rate(bad: int | Fraction, total: int | Fraction, allowed: Fraction) -> float:
    """Burn rate: the error rate of a window over the rate the budget allows (0 without any total)."""
    return float(Fraction(bad) / Fraction(total) / allowed) if total else 0.0


class BudgetReader:
    """What a budget stands at, at any instant: figures, burn rates and the forecast, read
    from a :class:`Ledger` alone. A :class:`BudgetClock` is one; :meth:`BudgetClock.frozen`
    gives another that holds a copy of its ledger, for readers apart from the writer (the
    clocks read model, engine.service.clockview)."""

    spec: BudgetSpec
    ledger: Ledger
    calendar: Calendar
    window_start: datetime
    window_end: datetime
    label: str
    service_time: timedelta

    def _window_low(self, t: int) -> int:
        if self.spec.length is not None:
            return t - self.spec.length
        start = micros(self.window_start)
        return start - 1 if self.spec.counts else start

    def _base(self, low: int, t: int) -> int | Fraction:
        """The total the budget is a share of: the window's so far (a rolling window, events),
        or a calendar window's whole service time."""
        if self.spec.length is None and not self.spec.counts:
            return self.service_time // US
        return self.ledger.total(low, t)

    def _forecast_terms(self, t: int) -> tuple[int | Fraction, int | Fraction, int]:
        """(bad of the look-back, what it is per: its total time or its length, what is ahead
        of ``t`` in the window: service time or wall time)."""
        spec, ledger = self.spec, self.ledger
        over = spec.forecast
        bad = ledger.bad(t - over, t)
        if spec.counts:
            return bad, over, spec.length if spec.length is not None else max(micros(self.window_end) - t, 0)
        end = t + spec.length if spec.length is not None else micros(self.window_end)
        return bad, ledger.total(t - over, t), ledger.counted(t, end)

    def burn_rate(self, t: int, length: int | None = None) -> float:
        """The burn rate of the window of ``length`` ending at ``t`` (default: the budget's own)."""
        low = self._window_low(t) if length is None else t - length
        return _rate(self.ledger.bad(low, t), self.ledger.total(low, t), self.spec.allowed)

    def figures(self, t: int) -> dict[str, object]:
        """The budget at ``t``: bad and budget (µs of service time, or events), what is left,
        the burn rate of the window and the forecast."""
        low = self._window_low(t)
        bad = self.ledger.bad(low, t)
        budget = self.spec.allowed * self._base(low, t)
        projected = self.projected(t)
        out: dict[str, object] = {
            "window": self.label, "bad": _number(bad), "budget": _number(budget),
            "remaining": self.remaining(t),
            "burn_rate": self.burn_rate(t),
            "forecast_over": format_duration(timedelta(microseconds=self.spec.forecast)),
            "projected_exhaustion": None if projected is None else format_instant(projected)}
        if self.spec.counts:
            out["total"] = _number(self.ledger.total(low, t))
        else:
            out |= {"bad": _number(Fraction(bad) // 1), "budget": _number(budget // 1)}
        return out

    def projected(self, t: int) -> datetime | None:
        """When the budget left at ``t`` runs out at the burn rate of the last ``forecast.over``
        (None: nothing burns)."""
        low = self._window_low(t)
        left = self.spec.allowed * self._base(low, t) - Fraction(self.ledger.bad(low, t))
        bad, per, _ = self._forecast_terms(t)
        if not bad or not per:
            return None
        need = max(left * per / Fraction(bad), Fraction(0))         # of service time (time) or of wall time (events)
        if need > Fraction(HORIZON) * 4 * 400:
            return None                                   # beyond anything a window holds
        if self.spec.counts:
            return instant(t + math.ceil(need))
        try:
            return self.calendar.instant_after(instant(t), timedelta(microseconds=math.ceil(need)))
        except ValueError:
            return None

    def windows(self) -> list[tuple[str, int | None]]:
        """(name, length in µs) of every window whose burn rate is read: the budget's own
        (None: the calendar window so far; named as written, a rolling one by its length:
        ``month``, ``28d``), each burn-rate level's long and short ones and
        the forecast's look-back, without repeats."""
        spec = self.spec
        own = spec.window if spec.length is None else format_duration(timedelta(microseconds=spec.length))
        out: dict[str, int | None] = {own: self.spec.length}
        for length in [n for burn in self.spec.burns for n in (burn.long, burn.short)] + [self.spec.forecast]:
            out.setdefault(format_duration(timedelta(microseconds=length)), length)
        return list(out.items())

    def burn_down(self, at: datetime, samples: int = 48) -> list[tuple[datetime, float]]:
        """The share of the budget left at ``samples`` + 1 instants evenly spread over the
        window judged at ``at`` (a rolling one: the last length, each point the window ending
        there; a calendar one: from its start), the last at ``at``."""
        end = micros(at)
        start = end - self.spec.length if self.spec.length is not None else micros(self.window_start)
        if end <= start:
            return [(at, self.remaining(end))]
        return [(instant(t), self.remaining(t))
                for t in sorted({start + (end - start) * k // samples for k in range(samples + 1)})]

    def look_ahead(self, at: datetime) -> datetime:
        """How far a burn-down chart read at ``at`` looks ahead for the forecast: a calendar
        window's end, a quarter of a rolling window's length."""
        if self.spec.length is None:
            return self.window_end
        return instant(micros(at) + self.spec.length // 4)

    def remaining(self, t: int) -> float:
        """The share of the budget of the window ending at ``t`` not yet used (negative
        once exhausted; 1 while the window holds nothing)."""
        low = self._window_low(t)
        bad = Fraction(self.ledger.bad(low, t))
        budget = self.spec.allowed * self._base(low, t)
        return float(1 - bad / budget) if budget else (1.0 if not bad else 0.0)


class FrozenBudget(BudgetReader):
    """A budget clock's figures as they stood at one write, readable at any later instant
    while no other fact arrives (its ledger is a copy the writer never changes)."""

    def __init__(self, clock: BudgetClock):
        self.spec, self.ledger, self.calendar = clock.spec, clock.ledger.copy(), clock.calendar
        self.window_start, self.window_end, self.label = clock.window_start, clock.window_end, clock.label
        self.service_time = clock.service_time
        self.version = clock.ledger.version
        self.active = frozenset(clock.active)
        self.burning = tuple(burn.text for index, burn in enumerate(clock.spec.burns)
                             if f"burn{index}" in clock.active)

    def reading(self, at: datetime) -> dict[str, object]:
        """The budget at ``at`` as ``GET /v1/clocks`` shows it (its ``error_budget``)."""
        t = micros(at)
        figures = self.figures(t)
        seconds = not self.spec.counts
        rolling = self.spec.length
        start = self.window_start if rolling is None else instant(t - rolling)
        return {"window": self.spec.window, "window_start": format_instant(start),
                "window_end": format_instant(self.window_end if rolling is None else at),
                "unit": "seconds" if seconds else "events",
                "bad": figures["bad"] / 1_000_000 if seconds else figures["bad"],      # type: ignore[operator]
                "budget": figures["budget"] / 1_000_000 if seconds else figures["budget"],  # type: ignore[operator]
                "remaining": figures["remaining"], "burn_rate": figures["burn_rate"],
                "burn_rates": {name: self.burn_rate(t, length) for name, length in self.windows()},
                "forecast_over": figures["forecast_over"],
                "projected_exhaustion": figures["projected_exhaustion"],
                "at_risk": "at_risk" in self.active, "exhausted": "exhausted" in self.active,
                "burning": list(self.burning)}


class BudgetClock(BudgetReader, WindowedClock):
    """An error budget over a rolling or a calendar window (see the module's docstring)."""

    CHANGED_IN_PLACE = Clock.CHANGED_IN_PLACE + ("down", "held", "active", "episodes", "facts")

    def __init__(self, definition: Definition, bounds: Bounds):
        self.window_start, self.window_end, self.label = bounds
        spec = definition.budget
        if not isinstance(spec, BudgetSpec):
            raise TypeError("a budget clock's definition carries its BudgetSpec")
        self.spec = spec
        self.service_time = ZERO if spec.length is not None else \
            definition.calendar.counted(self.window_start, self.window_end)
        super().__init__(definition, ZERO)
        self.ledger = Ledger(definition.calendar, spec.counts)
        self.down: dict[str, str] = {}
        self.held: dict[str, str] = {}
        self._closed = False
        self.cursor: int | None = None               # the instant evaluated last (µs)
        self.raw: tuple[bool, ...] = ()              # each condition's value there
        self.active: set[str] = set()                # breach, warnings, burns, at_risk in force now
        self.episodes: dict[str, int] = {}           # times each has begun
        self.facts: list[tuple[int, str]] = []       # (when, fact) of what moved it, the latest
        self._search: tuple[tuple[int, int], int | None] | None = None
        self.begin_cycle(self.window_start, f"window:{self.label}")
        self.halt(self.window_start)
        self.because = []
        self.paused_total = ZERO

    # -- conditions -------------------------------------------------------------------------
    def _names(self) -> list[str]:
        spec = self.spec
        return (["exhausted"] + [f"level{i}" for i in range(len(spec.levels))]
                + [f"{side}{i}" for i in range(len(spec.burns)) for side in ("long", "short")] + ["at_risk"])

    def _atom_windows(self) -> list[tuple[int, ...]]:
        """Per condition, the lengths of the windows it reads back from its instant (0: the
        amounts at the instant itself): a count moves it only as it enters or leaves one."""
        spec = self.spec
        own = (0,) if spec.length is None else (0, spec.length)
        return [(0, test.length) if test.kind == "burn" else (*own, spec.forecast) if test.kind == "forecast"
                else own for test in spec.conditions]

    def _atom(self, index: int, t: int) -> tuple[int | Fraction, int | Fraction, bool]:
        """Condition ``index`` at ``t`` as (x, y, strict): it holds when x > 0 and y ≥ 0
        (y > 0 if strict). y is scaled by the condition's denominator, so amounts that are
        whole numbers (microseconds, counts of whole intervals) stay whole numbers."""
        ledger, test = self.ledger, self.spec.conditions[index]
        if test.kind == "burn":
            bad = ledger.bad(t - test.length, t)
            return bad, bad * test.den - test.num * ledger.total(t - test.length, t), False
        low = self._window_low(t)
        bad = ledger.bad(low, t)
        base = self._base(low, t)
        if test.kind == "share":
            return bad, (bad - test.offset) * test.den - test.num * base, False
        recent, per, ahead = self._forecast_terms(t)
        return recent, recent * ahead * test.den - (test.num * base - bad * test.den) * per, True

    def _atoms(self, t: int) -> list[tuple[int | Fraction, int | Fraction, bool]]:
        """Every condition at ``t`` (see :meth:`_atom`)."""
        return [self._atom(index, t) for index in range(len(self.spec.conditions))]

    def _vector(self, t: int) -> tuple[bool, ...]:
        """The conditions from ``t`` on: time grows continuously, so the values just after it
        (a budget reached at ``t`` is exhausted from ``t``, one falling below it at ``t``
        recovers at ``t``); counts are added at their instant."""
        now = self._atoms(t)
        if self.spec.counts:
            return tuple(x > 0 and (y > 0 if strict else y >= 0) for x, y, strict in now)
        after = self._atoms(t + 1)       # linear between microseconds: the sign just after t
        return tuple((x > 0 or xa > 0) and (y > 0 or (y == 0 and (ya > 0 if strict else ya >= 0)))
                     for (x, y, strict), (xa, ya, _) in zip(now, after, strict=True))

    # -- when the next condition changes --------------------------------------------------------
    def _shifts(self) -> set[int]:
        spec = self.spec
        shifts = {0, spec.forecast} | {length for burn in spec.burns for length in (burn.long, burn.short)}
        if spec.length is not None:
            shifts.add(spec.length)
            if not spec.counts:
                shifts.add(-spec.length)         # the forecast's service time ahead, counted(t, t + W)
        return shifts

    def _next_change(self, after: int, horizon: int) -> int | None:
        """The first instant in (after, horizon] where a condition differs from its value at
        ``after`` (None: none does)."""
        if self.spec.counts and self.spec.length is not None:
            return self._next_step(after, horizon)
        knots = {after + 1, horizon + 1}
        for shift in self._shifts():
            knots.update(k + shift for k in self.ledger.knots(after + 1 - shift, horizon - shift))
        bounds = sorted(k for k in knots if after + 1 <= k <= horizon + 1)
        for low, high in zip(bounds, bounds[1:], strict=False):
            found = self._change_within(low, high - 1)
            if found is not None:
                return found
        return None

    def _next_step(self, after: int, horizon: int) -> int | None:
        """:meth:`_next_change` for events in a rolling window: every sum is a step function,
        moving only where a count enters or leaves a window a condition reads, so each
        condition is read only at those instants of its own, and no further than the first
        change found so far."""
        first = horizon + 1
        for index, lengths in enumerate(self._atom_windows()):
            held = self.raw[index]
            instants = sorted({k + length for length in lengths
                               for k in self.ledger.knots(after + 1 - length, first - 1 - length)})
            for t in instants:
                x, y, strict = self._atom(index, t)
                if (x > 0 and (y > 0 if strict else y >= 0)) != held:
                    first = t
                    break
        return first if first <= horizon else None

    def _change_within(self, low: int, high: int) -> int | None:
        """The first instant in [low, high] where the vector differs from ``self.raw``; every
        sum is linear there, each condition a polynomial of degree two at most."""
        current = self.raw
        span = high - low
        if span < 3:
            return next((t for t in range(low, high + 1) if self._vector(t) != current), None)
        middle = span // 2
        samples = [self._atoms(low), self._atoms(low + middle), self._atoms(high)]
        offsets = {0}
        for index in range(len(samples[0])):
            for part in (0, 1):
                ys = [Fraction(sample[index][part]) for sample in samples]
                offsets.update(_near_roots(ys, middle, span))
        for offset in sorted(offsets):
            if self._vector(low + offset) != current:
                return low + offset
        return None

    def _reach(self) -> int:
        """How far one search looks ahead. Counts keep coming, and each ends the search
        before it, so a ratio budget looks twice as far as its counts have stood still (at
        least :data:`REACH`): each search found nothing looks twice as far as the last,
        up to :data:`HORIZON`. Where it stops changes no decision, only when it looks again."""
        times = self.ledger.times
        if not self.spec.counts or not times or self.cursor is None:
            return HORIZON
        return min(HORIZON, max(REACH, 2 * (self.cursor - times[-1])))

    def next_deadline(self) -> datetime | None:
        if self._closed or self.cursor is None:
            return None
        key = (self.cursor, self.ledger.version)
        if self._search is None or self._search[0] != key:
            end = micros(self.window_end)
            horizon = min(self.cursor + self._reach(), end)
            found = self._next_change(self.cursor, horizon) if horizon > self.cursor else None
            self._search = (key, horizon if found is None else found)
        found_at = self._search[1]
        return None if found_at is None else instant(found_at)

    def fire_due(self, until: datetime, inclusive: bool) -> list[Reading]:
        out: list[Reading] = []
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > until or (deadline == until and not inclusive):
                return out
            if deadline >= self.window_end:
                return out + self.close()
            out += self._step(micros(deadline))

    # -- facts --------------------------------------------------------------------------------
    def apply(self, transition: Transition) -> list[Reading]:
        action, subject, fact = transition.action, transition.subject, transition.fact
        if self._closed:
            return []
        at = micros(max(transition.at, self.window_start))
        if self.cursor is None or at < self.cursor:
            # (never decided before ``at``: the vector there is what the amounts so far give)
            self.cursor, self.raw = at, self._vector(at)
        ledger = self.ledger
        if action.startswith(COUNTS):
            counts = read_counts(_decode(action))
            ledger.add_counts(at, micros(counts.start), counts.good, counts.total)
        elif subject is None:
            return []
        elif action in ("hold", "release") and self.spec.counts:
            changed = self._mark(self.held, subject, fact, action == "hold")
            ledger.set_held(at, bool(self.held))
            if not changed:
                return []
        else:
            counting = self.counting
            if action in ("down", "up"):
                changed = self._mark(self.down, subject, fact, action == "down")
            elif action in ("hold", "release"):
                changed = self._mark(self.held, subject, fact, action == "hold")
            else:
                return []
            if not changed:
                return []
            if self.counting != counting:
                ledger.set_bad(at, self.counting)
                (self.run if self.counting else self.halt)(transition.at)
        self.facts.append((at, fact))
        del self.facts[:-FOLLOWED_FACTS]
        if self.spec.length is not None and ledger.entries() > KEPT_ENTRIES:
            ledger.forget(at - 2 * max(self._shifts()))
        return self._step(at)

    @staticmethod
    def _mark(marks: dict[str, str], subject: str, fact: str, on: bool) -> bool:
        if on and subject not in marks:
            marks[subject] = fact
            return True
        if not on and subject in marks:
            del marks[subject]
            return True
        return False

    @property
    def counting(self) -> bool:
        return bool(self.down) and not self.held

    # -- deciding -----------------------------------------------------------------------------
    def _step(self, t: int) -> list[Reading]:
        """Evaluate the conditions at ``t`` and read what changed."""
        vector = self._vector(t)
        self.raw, self.cursor = vector, t
        on = dict(zip(self._names(), vector, strict=True))
        spec, out = self.spec, []
        rolling = spec.length is not None
        if on["exhausted"] and "exhausted" not in self.active:
            self.active.add("exhausted")
            self.breached = True
            out.append(self._read("breach", t, "100%", "exhausted"))
        elif not on["exhausted"] and "exhausted" in self.active and rolling:
            self.active.discard("exhausted")
            out.append(self._read("recovered", t, "100%", "exhausted", begin=False))
        for index, share in enumerate(spec.levels):
            name = f"level{index}"
            if on[name] and name not in self.active:
                self.active.add(name)
                out.append(self._read(share.kind, t, share.level.text, name, activity=share.activity,
                                      source=share.source))
            elif not on[name] and name in self.active and rolling:
                self.active.discard(name)
        for index, burn in enumerate(spec.burns):
            name = f"burn{index}"
            if name not in self.active and on[f"long{index}"] and on[f"short{index}"]:
                self.active.add(name)
                out.append(self._read("burn_rate", t, burn.text, name, burn=burn))
                out += [self._read("escalation", t, burn.text, name, activity=level.activity, source=level,
                                   begin=False, burn=burn) for level in burn.escalations]
            elif name in self.active and not on[f"short{index}"]:
                self.active.discard(name)
                out.append(self._read("burn_rate_cleared", t, burn.text, name, begin=False, burn=burn))
        if on["at_risk"] and "at_risk" not in self.active:
            self.active.add("at_risk")
            out.append(self._read("at_risk", t, None, "at_risk"))
        elif not on["at_risk"] and "at_risk" in self.active:
            self.active.discard("at_risk")
            out.append(self._read("withdraw", t, None, "at_risk", begin=False))
        return out

    def _read(self, kind: str, t: int, level: str | None, name: str, activity: str | None = None,
              source: EscalationLevel | None = None, begin: bool = True, burn: BurnSpec | None = None) -> Reading:
        if begin:
            self.episodes[name] = self.episodes.get(name, 0) + 1
        episode = self.episodes.get(name, 1) - 1
        figures = self.figures(t)
        if burn is not None:
            figures |= {"factor": float(burn.factor), "long": format_duration(timedelta(microseconds=burn.long)),
                        "short": format_duration(timedelta(microseconds=burn.short)),
                        "burn_long": self.burn_rate(t, burn.long), "burn_short": self.burn_rate(t, burn.short)}
        low = self._window_low(t)
        counted, budget = (ZERO, ZERO) if self.spec.counts else (
            timedelta(microseconds=int(self.ledger.bad(low, t))),
            timedelta(microseconds=int(self.spec.allowed * self._base(low, t))))
        since = t - (self.spec.length or 0) if self.spec.length else micros(self.window_start)
        because = [fact for at, fact in self.facts if at >= since] or [fact for _, fact in self.facts[-1:]]
        return Reading(kind, instant(t), self.cycle, level, counted, budget, ZERO, because, activity=activity,
                       repeat=episode, source=source, calendar=self.calendar.id, figures=figures)

    # -- the Clock interface ----------------------------------------------------------------
    def reprice(self, definition: Definition, at: datetime) -> None:
        """A new definition from ``at`` on: amounts kept, conditions evaluated afresh."""
        spec = definition.budget
        if not isinstance(spec, BudgetSpec):
            raise TypeError("a budget clock's definition carries its BudgetSpec")
        self.definition, self.spec, self.calendar = definition, spec, definition.calendar
        self.ledger.calendar = definition.calendar
        if spec.length is None:
            self.service_time = definition.calendar.counted(self.window_start, self.window_end)
        self.raw = self._vector(micros(at)) if self.cursor is not None else ()
        self._search = None

    def fire_passed(self, at: datetime, because: str) -> list[Reading]:
        return self._step(micros(at)) if self.cursor is not None else []

    def cancel(self, at: datetime) -> timedelta:
        self.halt(at)
        self._closed = True
        return self.counted_at(at)

    def close(self) -> list[Reading]:
        end = micros(self.window_end)
        self.halt(self.window_end)
        out: list[Reading] = []
        self._closed = True
        if self.spec.length is None and not self.breached:
            out.append(self._read("met", end, None, "met"))
        return out

    @property
    def window(self) -> Window:
        """The clock's bounds (a rolling window's: from its start until the agreement ends;
        what it judges at an instant is :meth:`trailing`)."""
        return Window(self.window_start, self.window_end, self.label, self.service_time)

    def trailing(self, at: datetime) -> Window:
        """The window judged at ``at``: a rolling one's last length, or the calendar window."""
        if self.spec.length is None:
            return self.window
        end = micros(at)
        return Window(instant(end - self.spec.length), at, self.label,
                      timedelta(microseconds=self.ledger.counted(end - self.spec.length, end)))

    def frozen(self) -> FrozenBudget:
        """Its figures as they stand now, for a reader apart from the writer."""
        return FrozenBudget(self)

    def carried_over(self) -> list[tuple[str, str, str]]:
        if self.spec.length is not None:
            return []
        return [("hold", s, f) for s, f in sorted(self.held.items())] + \
            [("down", s, f) for s, f in sorted(self.down.items())]

    def attributes(self) -> dict[str, object]:
        saved = super().attributes()
        saved["ledger"] = self.ledger.copy()
        return saved

    def own_state(self) -> dict[str, object]:
        return {"down": self.down, "held": self.held, "closed": self._closed, "cursor": self.cursor,
                "raw": list(self.raw), "active": sorted(self.active), "episodes": self.episodes,
                "facts": [list(f) for f in self.facts], "ledger": self.ledger.dump()}

    def load_own_state(self, saved: dict[str, object]) -> None:
        down, held, ledger = saved["down"], saved["held"], saved["ledger"]
        if not isinstance(down, dict) or not isinstance(held, dict) or not isinstance(ledger, dict):
            raise TypeError("a budget clock's down and held subjects and its ledger are mappings")
        self.down, self.held, self._closed = dict(down), dict(held), bool(saved["closed"])
        cursor = saved["cursor"]
        self.cursor = cursor if isinstance(cursor, int) else None
        self.raw = tuple(bool(v) for v in saved["raw"])          # type: ignore[attr-defined]
        self.active = {str(v) for v in saved["active"]}          # type: ignore[attr-defined]
        self.episodes = {str(k): int(v) for k, v in saved["episodes"].items()}   # type: ignore[attr-defined]
        self.facts = [(int(at), str(fact)) for at, fact in saved["facts"]]       # type: ignore[attr-defined]
        self.ledger.load(ledger)


def encode_counts(good: object, total: object, start: str) -> str:
    """An ``sli.counts`` fact's counts as a transition's action (kept in snapshots as text)."""
    return f"{COUNTS}{good} {total} {start}"


def _decode(action: str) -> dict[str, object]:
    good, total, start = action[len(COUNTS):].split(" ")
    return {"good": _parse_number(good), "total": _parse_number(total), "start": start}


def _parse_number(text: str) -> int | float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _near_roots(ys: list[Fraction], middle: int, span: int) -> set[int]:
    """Offsets in [0, span] around the real roots of the polynomial (degree two at most)
    through (0, ys[0]), (middle, ys[1]), (span, ys[2]): where its sign can change. The
    coefficients are exact integers (the polynomial times a positive whole number), only
    the square root is a float: each root is then checked exactly around it."""
    scale = math.lcm(*(y.denominator for y in ys))
    y0, y1, y2 = (y.numerator * (scale // y.denominator) for y in ys)
    rise, whole = y1 - y0, y2 - y0
    a = whole * middle - rise * span                     # a·t² + b·t + c = 0, all times middle·span·(span − middle)
    b = rise * span * (span - middle) - a * middle
    c = y0 * middle * span * (span - middle)
    roots: list[float] = []
    if a == 0:
        if b != 0:
            roots.append(-c / b)
    else:
        discriminant = b * b - 4 * a * c
        if discriminant >= 0:
            q = -(b + (math.isqrt(discriminant) if b >= 0 else -math.isqrt(discriminant))) / 2   # the stable form
            if q != 0:
                roots += [q / a, c / q]
            else:
                roots.append(-b / (2 * a))
    out: set[int] = set()
    for root in roots:
        if -3 <= root <= span + 3:
            base = math.floor(root)
            out.update(o for o in range(base - 2, base + 4) if 0 <= o <= span)
    return out
