"""Why a fact did, or did not, move the clocks of its service: "why did my P1 not start a
clock?" answered from the rule model alone.

For each target of the fact's service, the conditions are evaluated in Python in the
order the engine applies them (the agreement's status, the target's patterns, then the
agreement's valid period); the answer names what the fact does to the target's clock, or
the first condition that failed (``applies_to: where priority: "p1" ≠ "P1"``). No
durable_rules: explaining needs only the model. ``running``, when the caller knows it
(the clocks that run, from an engine), turns "stops the clock if one runs" into "no
running clock for INC-9 to stop"; ``stopped`` (the clocks that have stopped) tells a start
that does nothing, since the ticket's clock has run already, from one that starts it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, Protocol

from engine.lang.lint import CLOCK_ROLES
from engine.lang.model import RuleSet, Target
from engine.lang.spelling import one_edit
from engine.lang.where import failure, lookup
from schemas.counts import COUNTS_TYPE
from schemas.values import parse_instant

VERBS = {"start": "starts", "pause": "pauses", "resume": "resumes", "stop": "stops", "restart": "restarts",
         "cancel": "cancels", "reset": "resets"}
_ORDER = ("reset", "restart", "cancel", "stop", "pause", "resume")      # as DurationClock.apply


class ClockKeys(Protocol):
    """Clock keys (``target/subject``) asked about with ``in``: a set, or a view that takes
    only keys (engine.eval.reads.StoppedKeys), which a ``Container`` would not be."""

    def __contains__(self, key: str, /) -> bool: ...


def explain(ruleset: RuleSet, fact: Mapping[str, Any], running: ClockKeys | None = None,
            stopped: ClockKeys = ()) -> dict[str, Any]:
    """``{"fact", "service", "affected": [{target, effect}], "not_affected": [{target, reason}]}``.

    ``running``: the keys (``target/subject``) of the clocks running (or paused) before the
    fact, if known; ``stopped``: those that had stopped (only read with ``running``)."""
    service = fact.get("service")
    affected, not_affected = [], []
    if service not in ruleset.services:
        known = ", ".join(sorted(ruleset.services)) or "none"
        return {"fact": fact.get("id"), "service": service, "affected": [],
                "not_affected": [], "reason": f"service {service!r} is not defined by the rules (known: {known})"}
    for target in sorted(ruleset.targets.values(), key=lambda t: t.id):
        if target.service != service:
            continue
        effect, reason = _one(target, fact, running, stopped)
        if effect:
            affected.append({"target": target.id, "effect": effect})
        else:
            not_affected.append({"target": target.id, "reason": reason})
    return {"fact": fact.get("id"), "service": service, "affected": affected, "not_affected": not_affected}


def _one(target: Target, fact: Mapping[str, Any], running: ClockKeys | None,
         stopped: ClockKeys) -> tuple[str | None, str | None]:
    if target.agreement.status == "retired":
        return None, f"agreement '{target.agreement.id}' is retired"
    get = lookup(fact)
    kind = fact.get("type")
    if target.measure == "availability":
        for role in ("down", "up"):
            spec = target.spec[role]
            if spec["type"] == kind:
                why = failure(spec.get("where", {}), get)
                if why is not None:
                    return None, f"{role}: {why}"
                outside = _outside(target, fact.get("time"))
                if outside:
                    return None, outside
                return (f"{'takes' if role == 'down' else 'brings'} {fact.get('subject') or service_of(fact)} "
                        f"{role} in the {target.spec['window']} window", None)
        return None, _not_named(kind, [target.spec["down"]["type"], target.spec["up"]["type"]])
    if target.measure == "threshold":
        if kind != "metric.sample":
            return None, _not_named(kind, ["metric.sample"])
        why = failure({"name": target.spec["name"], **target.spec.get("where", {})}, get)
        if why is not None:
            return None, f"metric: {why}"
        outside = _outside(target, fact.get("time"))
        return (None, outside) if outside else ("is a sample of its metric", None)
    if target.measure == "ratio":
        if kind != COUNTS_TYPE:
            return None, _not_named(kind, [COUNTS_TYPE])
        why = failure({"name": target.spec["name"], **target.spec.get("where", {})}, get)
        if why is not None:
            return None, f"ratio: {why}"
        outside = _outside(target, fact.get("time"))
        return (None, outside) if outside else (f"counts good and total events in the {target.spec['window']} "
                                                f"window", None)
    return _duration(target, fact, get, running, stopped)


def service_of(fact: Mapping[str, Any]) -> str:
    return fact.get("service") or "-"


def _duration(target: Target, fact: Mapping[str, Any], get: Callable[[str], object], running: ClockKeys | None,
              stopped: ClockKeys) -> tuple[str | None, str | None]:
    spec, kind = target.spec, fact.get("type")
    subject = fact.get("subject") or service_of(fact)
    key = f"{target.id}/{subject}"
    roles, failed = set(), []
    named = [spec["applies_to"]["type"]]
    role: str | None        # each clock role in turn, then the one the fact plays here, if any
    for role in CLOCK_ROLES:
        items = spec.get(role) or ([spec["applies_to"]] if role == "start" else [])
        for item in items:
            item_type = item if isinstance(item, str) else item["type"]
            named.append(item_type)
            if item_type != kind:
                continue
            why = None if isinstance(item, str) else failure(item.get("where", {}), get)
            if why is None:
                roles.add(role)
            else:
                failed.append(f"{role}: {why}")
    applies = spec["applies_to"]
    in_scope_why = failure(applies.get("where", {}), get) if applies["type"] == kind else None
    if applies["type"] == kind and in_scope_why and roles <= {"start"}:
        return None, f"applies_to: {in_scope_why}"      # no clock for the subject: nothing to start
    if not roles:
        if applies["type"] == kind and in_scope_why:
            return None, f"applies_to: {in_scope_why}"
        if failed:
            return None, failed[0]
        return None, _not_named(kind, named)
    outside = _outside(target, fact.get("time"))
    starting = roles & {"start", "reset", "restart"}
    if outside and (starting or running is None or key not in running):
        return None, outside
    if running is not None and key not in running and key in stopped:
        cycles = spec.get("cycles", "once")
        begins = ("reset",) + (("start",) if cycles != "once" else ()) + (("restart",) if cycles != "update" else ())
        role = next((r for r in begins if r in roles), None)
        if role is None:
            return None, f"the clock of {subject} has stopped already ({' / '.join(sorted(roles))} plays no part)"
        return f"{VERBS[role]} the clock of {subject}: a new cycle", None
    if running is not None and key not in running:
        if "start" in roles or "reset" in roles:
            if applies["type"] == kind and in_scope_why:
                return None, f"applies_to: {in_scope_why}"
            return f"starts the clock of {subject}", None
        role = next(r for r in _ORDER + ("start",) if r in roles)
        return None, f"no running clock for {subject} to {role}"
    if running is not None:
        role = next((r for r in _ORDER if r in roles), None)
        if role is None:
            return None, f"the clock of {subject} is already running (start plays no part)"
        return f"{VERBS[role]} the clock of {subject}", None
    words = [VERBS[r] for r in ("start",) + _ORDER if r in roles]
    return f"{' / '.join(words)} the clock of {subject} (as its state allows)", None


def _outside(target: Target, time: str | None) -> str | None:
    if not time:
        return None
    try:
        at: datetime = parse_instant(time)
    except ValueError:
        return f"time {time!r} is not an instant"
    start, end = target.valid_span()
    if (start and at < start) or (end and at >= end):
        agreement = target.agreement
        return f"outside the agreement's valid period ({_period(agreement.valid_from, agreement.valid_to)})"
    return None


def _period(start: date | None, end: date | None) -> str:
    """A valid period as written: either end may be open."""
    if start and end:
        return f"{start} to {end}"
    return f"from {start}" if start else f"until {end}"


def _not_named(kind: str | None, named: list[str]) -> str:
    names = sorted(set(named))
    guess = next((n for n in names if one_edit(kind or "", n)), None)
    hint = f" (did you mean '{guess}'?)" if guess else ""
    return f"type '{kind}' plays no part in this target (it names {', '.join(names)}){hint}"
