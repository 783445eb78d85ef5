"""A clock's timeline for people: what started, paused, resumed and stopped it, what it
decided, and when its calendar counted, so a page can show why "4 business hours" from
Friday 16:00 ended on Monday 10:00.

Transitions come from the engine's clock record while it keeps one (exact, also for
availability windows); once a duration clock is forgotten they are derived again from
the subject's stored facts through the target's clock roles, as the engine applied them.
Decisions (warnings, breach, met, escalations, retractions) come from the decision log.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from engine.eval.compiler import conditional_roles, unconditional_roles
from engine.lang.model import Target
from engine.lang.where import failure, lookup
from schemas.records import fact_ref
from schemas.values import DeadlineGoal, format_whole_duration, parse_instant

MIN_SPAN = timedelta(hours=1)
MAX_SPAN = timedelta(days=62)       # longer clocks (annual reviews) show their last two months


@dataclass
class Timeline:
    target: Target
    subject: str
    start: datetime
    end: datetime
    events: list[dict] = field(default_factory=list)       # {at, kind, label, ref}, by time
    counting: list[tuple[datetime, datetime]] = field(default_factory=list)   # counted spans
    open: list[tuple[datetime, datetime]] = field(default_factory=list)       # service hours
    closed: list[tuple] = field(default_factory=list)        # (local date, start, end)
    source: str = "engine"                                    # engine | facts | decisions
    counted: str | None = None
    budget: str | None = None
    # declared maintenance windows the calendar takes out: (start, end, Maintenance id)
    maintenance: list[tuple[datetime, datetime, str]] = field(default_factory=list)


def _roles(spec: dict, fact: dict) -> set[str]:
    """The roles a stored fact plays for a clock of ``spec``, its ``where`` conditions checked."""
    roles = set(unconditional_roles(spec).get(fact["type"], ()))
    for role, where in conditional_roles(spec).get(fact["type"], ()):
        if failure(where, lookup(fact)) is None:
            roles.add(role)
    return roles


def build(target: Target, subject: str, now: datetime, transitions: list[tuple] | None,
          decisions: list[dict], facts: list[dict]) -> Timeline | None:
    """``transitions``: (at, action, fact ref, subject of a window) from the engine's record, or None if it has
    none; ``facts``: the subject's stored facts (used without transitions); ``decisions``:
    the decision log's records of this clock. None if there is nothing to show."""
    source = "engine"
    if transitions is None and target.measure == "duration":
        transitions = [(parse_instant(f["time"]), ",".join(sorted(roles)), fact_ref(f["source"], f["id"]), None)
                       for f in facts if (roles := _roles(target.spec, f))]
        source = "facts"
    transitions = sorted(transitions or [], key=lambda t: t[0])
    if not transitions and not decisions:
        return None
    events = [{"at": at, "kind": action.split(",")[0], "ref": ref,
               "label": action.replace(",", " + ") + (f" ({who})" if who else "")}
              for at, action, ref, who in transitions]
    for d in decisions:
        label = d["kind"] + (f" {d['level']}" if d.get("level") else "")
        if d.get("retracted_by"):
            label += " (retracted)"
        events.append({"at": parse_instant(d["at"]), "kind": d["kind"], "label": label, "ref": d["id"],
                       "decision": d})
    events.sort(key=lambda e: e["at"])
    counting, running = _counting(target, transitions, now)
    first = events[0]["at"]
    last = now if running else events[-1]["at"]
    last = max(last, first + MIN_SPAN)
    pad = (last - first) / 20
    start, end = max(first - pad, last - MAX_SPAN), last + pad
    timeline = Timeline(target, subject, start, end, [e for e in events if e["at"] >= start],
                        [(max(a, start), b) for a, b in counting if b > start],
                        list(target.calendar.open_spans(start, end)),
                        target.calendar.closed_days(start, end),
                        source if transitions else "decisions")
    windows = getattr(target.calendar, "windows", None)      # an ExcludingCalendar's (engine.lang.maintenance)
    if windows is not None:
        timeline.maintenance = windows.spans(start, end)
    total = sum((target.calendar.counted(a, b) for a, b in counting), timedelta(0))
    timeline.counted = format_whole_duration(total)
    if isinstance(target.goal, DeadlineGoal):      # each cycle's budget is priced from its start
        timeline.budget = target.goal.text
    elif target.measure == "duration":
        timeline.budget = format_whole_duration(cast(timedelta, target.goal))
    return timeline


def _begins(actions: set[str], state: str, cycles: str) -> bool:
    """Whether a transition begins a cycle (the spans of the latest cycle are drawn)."""
    if "start" in actions and state == "idle":
        return True
    if "start" in actions and state == "stopped" and cycles != "once" and "cancel" not in actions:
        return True
    if state == "idle":
        return "reset" in actions
    return "reset" in actions or ("restart" in actions and not (state == "stopped" and cycles == "update"))


def _counting(target: Target, transitions, now: datetime) -> tuple[list[tuple[datetime, datetime]], bool]:
    """Spans in which the clock ran (calendar hours not applied), and whether it runs now.
    Duration clocks: start/resume run, pause/stop/cancel halt, restart and reset begin again,
    as does a reply or update target's start after a stop (the spans of the latest cycle
    only). Windows: running while any subject is down."""
    spans: list[tuple[datetime, datetime]] = []
    since = None
    if target.measure == "duration":
        cycles, state = target.spec.get("cycles", "once"), "idle"     # as DurationClock.apply
        for at, action, _, _ in transitions:
            actions = set(action.split(","))
            if _begins(actions, state, cycles):
                waits = state == "paused" and cycles != "once" and "reset" not in actions
                spans, since, state = [], None if waits else at, "paused" if waits else "running"
            elif state in ("idle", "stopped"):
                continue
            elif actions & {"stop", "cancel"} or ("pause" in actions and state == "running"):
                if since is not None:
                    spans.append((since, at))
                since, state = None, "paused" if not actions & {"stop", "cancel"} else "stopped"
            elif "resume" in actions and state == "paused":
                since, state = at, "running"
    else:
        down: set[str] = set()
        for at, action, _, subject in transitions:
            if action == "down":
                if not down:
                    since = at
                down.add(subject)
            elif action == "up":
                down.discard(subject)
                if not down and since is not None:
                    spans.append((since, at))
                    since = None
    if since is not None:
        spans.append((since, now))
    return spans, since is not None
