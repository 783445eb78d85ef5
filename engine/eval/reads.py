"""Reading the engine's state without changing it: running clocks, window figures, posted
maintenance, clock records and traces.

Every function here takes what it reads (the state, the rule set) and answers from it
alone, so the service's read model (engine.service.clockview) can answer the same way.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from engine.eval.book import ClockBook, ClockRecord
from engine.eval.budget import BudgetClock
from engine.eval.clock import MAINTENANCE, Window, month_span
from engine.eval.state import EngineState
from engine.eval.trace import Trace, build_trace
from engine.lang.model import RuleSet, Target
from schemas.values import format_instant, format_remaining, format_whole_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Span = tuple[datetime, datetime, str]


def clocks(state: EngineState, at: datetime | None = None) -> list[dict[str, object]]:
    """Running clocks with their readings at ``at`` (default: the engine's time); ``at``
    must not pass a pending deadline (the service fires those first)."""
    now = max(filter(None, [at, state.now])) if (at or state.now) else EPOCH
    out = []
    for record in state.book.running():
        clock, target = record.clock, record.target
        counted = clock.counted_at(now)
        deadline = clock.next_deadline()
        out.append({"clock": record.key, "target": target.id, "subject": record.subject,
                    "service": target.service, "agreement": target.agreement.id,
                    "cycle": clock.cycle, "state": clock.status,
                    "counted": format_whole_duration(counted), "budget": format_whole_duration(clock.budget),
                    "remaining": format_remaining(clock.budget, counted),
                    "next_deadline": None if deadline is None else format_instant(deadline),
                    "shadow": target.agreement.shadow,
                    "error_budget": clock.frozen().reading(now) if isinstance(clock, BudgetClock) else None})
    return sorted(out, key=lambda c: str(c["clock"]))


def window_reading(state: EngineState, ruleset: RuleSet, retain: timedelta | None, target_id: str, label: str,
                   at: datetime | None = None) -> tuple[timedelta, timedelta] | None:
    """(down time counted up to ``at``, service time) of an availability/threshold window.

    ``at`` (default: the engine's time) lets a reader count an ongoing outage up to the
    wall clock: the engine's time only moves when a fact or a deadline arrives, so
    without it a report would show 100 % during the first outage of a quiet month."""
    now = max(filter(None, [at, state.now]), default=None)
    record = state.book.get(f"{target_id}/{label}")
    if record is None:
        return quiet_window(ruleset.targets.get(target_id), label, now, state.now, retain)
    window = record.clock.window
    if window is None:
        return None
    until = min(now or window.end, window.end)
    return record.clock.counted_at(until), window.service_time


def maintenance_spans(state: EngineState, target_id: str, start: datetime, end: datetime,
                      at: datetime | None = None) -> list[Span]:
    """The maintenance windows posted for a target's window clocks that overlap [start,
    end): (from, to, the fact that opened it); one still open ends at ``at`` (default:
    the engine's time). A window carried into the next clock window counts once."""
    now = max(filter(None, [at, state.now]), default=end)
    spans: dict[tuple[str, str], list[datetime | None]] = {}
    for record in list(state.book.records.values()):
        window = record.clock.window
        if record.target.id != target_id or window is None:
            continue
        if window.end <= start or window.start >= end:
            continue
        open_now: dict[str, str] = {}
        for t in sorted(record.transitions, key=lambda t: (t.at, t.seq)):
            subject = t.subject
            if subject is None or not subject.startswith(MAINTENANCE):
                continue
            if t.action == "hold" and subject not in open_now:
                open_now[subject] = t.fact
                span = spans.setdefault((subject, t.fact), [t.at, None])
                span[0] = min(span[0] or t.at, t.at)
            elif t.action == "release" and subject in open_now:
                span = spans[(subject, open_now.pop(subject))]
                span[1] = t.at if span[1] is None else max(span[1], t.at)
    out = [(a, b or now, fact) for (_, fact), (a, b) in spans.items() if a is not None]
    return sorted((a, b, fact) for a, b, fact in out if a < end and b > start)


def window_down_spans(state: EngineState, target_id: str, label: str,
                      at: datetime | None = None) -> list[tuple[datetime, datetime]] | None:
    """The spans in which a window counted down time up to ``at`` (default: the engine's
    time), calendar hours not applied: while some subject is down and no posted maintenance
    window is open, as ``WindowClock`` counts, from the clock's transitions. A waiver of a
    period takes what of them falls in it apart (engine/service/reports.py). None if no
    clock was made for the window (nothing went down in it)."""
    record = window_record(state, target_id, label)
    if record is None:
        return None
    window = cast(Window, record.clock.window)
    now = max(filter(None, [at, state.now]), default=window.end)
    until = min(now, window.end)
    down: set[str] = set()
    held: set[str] = set()
    spans: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for t in sorted(record.transitions, key=lambda t: (t.at, t.seq)):
        if t.subject is None or t.at >= until:
            continue
        sets = {"down": down, "up": down, "hold": held, "release": held}.get(t.action)
        if sets is None:
            continue
        (sets.add if t.action in ("down", "hold") else sets.discard)(t.subject)
        moment = max(t.at, window.start)
        counting = bool(down) and not held
        if counting and since is None:
            since = moment
        elif not counting and since is not None:
            if moment > since:
                spans.append((since, moment))
            since = None
    if since is not None and until > since:
        spans.append((since, until))
    return spans


def window_record(state: EngineState, target_id: str, label: str) -> ClockRecord | None:
    """The clock record of a window (None if none was made or it was forgotten)."""
    record = state.book.get(f"{target_id}/{label}")
    return record if record is not None and record.clock.window is not None else None


class StoppedKeys:
    """``key in`` the clocks of the book that have stopped (a view: nothing is copied)."""

    def __init__(self, book: ClockBook):
        self.book = book

    def __contains__(self, key: str) -> bool:
        record = self.book.get(key)
        return record is not None and record.clock.status == "stopped"


def clock_keys(state: EngineState) -> tuple[set[str], StoppedKeys]:
    """(keys of the clocks running or paused now, a view of those that have stopped):
    what explaining a fact needs to know of the clocks (engine.lang.explain)."""
    return state.book.live, StoppedKeys(state.book)


def clock_reading(state: EngineState, key: str, at: datetime) -> dict[str, object] | None:
    """What a clock had counted at ``at``, as a Rule decision records the clocks it joined
    (``key``: the clock's key, with or without its ``#cycle``)."""
    record = state.book.get(key.rsplit("#", 1)[0])
    if record is None:
        return None
    clock = record.clock
    return {"counted": format_whole_duration(clock.counted_at(at)), "budget": format_whole_duration(clock.budget),
            "cycle": clock.cycle}


def trace(state: EngineState, ruleset: RuleSet, decision_id: str) -> Trace:
    """The derivation tree of a decision this engine made (``history=True``)."""
    return build_trace(state.history, ruleset, decision_id)


def quiet_window(target: Target | None, label: str, now: datetime | None, engine_now: datetime | None,
                 retain: timedelta | None) -> tuple[timedelta, timedelta] | None:
    """(0, service time) of a month window nothing went down in (no clock was ever made
    for it), read at ``now`` by an engine standing at ``engine_now``; None where nothing is
    known: another kind of target or window, a month not begun, nothing ever posted, or a
    month beyond ``retain`` (its clock may have been forgotten, not quiet). Also what the
    clocks read model (engine.service.clockview) answers for such a window."""
    if target is None or target.measure == "duration" or target.spec.get("window", "month") != "month":
        return None
    try:
        start, end = month_span(label, target.calendar.timezone)
    except ValueError:
        return None
    if engine_now is None:
        return None            # nothing was ever posted: nothing is known
    now = now or engine_now
    if now <= start:
        return None
    if retain is not None and end < engine_now - retain:
        return None            # maybe forgotten, not quiet: unknown
    return timedelta(0), target.calendar.counted(start, end)
