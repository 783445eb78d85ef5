"""What each kind of durable_rules match does, in one table.

A compiled rule is named ``<kind>:<ref>`` (engine.eval.compiler). :data:`MATCH_KINDS`
holds, per kind, its phase (the matches one fact causes are handled in phase order, then
by name) and its handler, so a new kind of match is added here and in the compiler only.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from engine.eval.book import ClockRecord
from engine.eval.budget import encode_counts
from engine.eval.clock import MAINTENANCE, Transition
from engine.eval.compiler import Fact, field_path
from engine.eval.context import Context
from engine.eval.durable import Payload
from engine.eval.transitions import rebuild, transition, window_record
from engine.lang.where import MISSING, field_at
from engine.lang.where import failure as where_failure
from schemas.records import fact_ref
from schemas.values import DeadlineGoal, parse_instant

CYCLE_STARTS = {"start", "reset", "restart"}     # the roles that begin a cycle

# A fact's time as durable_rules hands it back, parsed once: each of its matches, and each
# decision fed back at the same instant, would parse the same text again.
event_time = functools.lru_cache(maxsize=1024)(parse_instant)


def on_applies(ctx: Context, target_id: str, facts: Payload) -> None:
    """A fact puts a subject in scope of a duration target: its clock is made (idle)."""
    m = facts["m"]
    subject = m.get("subject") or m.get("service") or "-"
    key = f"{target_id}/{subject}"
    book = ctx.state.book
    if book.get(key) is None:
        target = ctx.ruleset.targets[target_id]
        book.add(ClockRecord(key, target, subject, ctx.factory.make(target, None),
                             versions=[(None, ctx.ruleset.version)]), indexed=True)


def on_life(ctx: Context, fact_type: str, facts: Payload) -> None:
    """A fact that starts, pauses, resumes, stops or restarts clocks: handed to the
    clocks of its subject in its service."""
    m = facts["m"]
    service = m.get("service")
    subject = m.get("subject") or service or "-"
    at = fact = None
    state = ctx.state
    conditions = ctx.factory.conditions
    for record in state.book.of_subject(subject):
        target = record.target
        if service is not None and target.service != service:
            continue                # the same ticket id in another service is another ticket
        actions = record.clock.definition.roles.get(fact_type)
        conditional = conditions(target).get(fact_type)
        if conditional:
            get = where_lookup(m)
            actions = (actions or set()) | {role for role, where in conditional
                                            if where_failure(where, get) is None}
        if actions:
            if at is None or fact is None:          # (once per fact, for all its clocks)
                at, fact = event_time(m["time"]), fact_ref(m["source"], m["fid"])
            if target.spec.get("start_at"):
                record.clock.start_from = state.firsts.get(record.key)
            ctx.outcome.moved += 1
            transition(ctx, record, Transition(at, state.book.next_count(), ",".join(sorted(actions)), fact,
                                               due=_posted_due(record, actions, m),
                                               calendar=_chosen_calendar(record, m)))


def _chosen_calendar(record: ClockRecord, m: Fact) -> str | None:
    """``calendar: {by: FIELD, map, default}``: the calendar a fact's FIELD chooses (an
    unmapped value: the default), or None if the fact does not carry the field."""
    target = record.target
    if target.calendar_by is None:
        return None
    value = where_lookup(m)(target.calendar_by)
    if value is MISSING:
        return None
    return (target.calendars.get(str(value)) or target.calendar).id


def _posted_due(record: ClockRecord, actions: set[str], m: Fact) -> datetime | None:
    """The deadline a fact that starts a cycle posts, for a ``goal: {due: FIELD}`` target:
    the field's time, or None if it has none (the cycle is then due at once)."""
    goal = record.target.goal
    if not (isinstance(goal, DeadlineGoal) and goal.due and actions & CYCLE_STARTS):
        return None
    value = where_lookup(m)(goal.due)
    try:
        return parse_instant(value) if isinstance(value, str) else None
    except ValueError:
        return None


def on_first(ctx: Context, target_id: str, facts: Payload) -> None:
    """A fact some target's ``start_at`` names: keep the earliest per clock key. One that
    arrives after the clock started, earlier than what it started from, rebuilds it."""
    m = facts["m"]
    subject = m.get("subject") or m.get("service") or "-"
    key, at = f"{target_id}/{subject}", event_time(m["time"])
    state = ctx.state
    known = state.firsts.get(key)
    if known is not None and known[0] <= at:
        return
    fact = fact_ref(m["source"], m["fid"])
    if ctx.journal is not None:
        ctx.journal.put(state.firsts, key)
    state.firsts[key] = (at, fact)
    ctx.outcome.moved += 1
    record = state.book.get(key)
    if record is not None and record.last_transition is not None and at < record.last_transition:
        rebuild(ctx, record, cause=Transition(at, state.book.next_count(), "first", fact))


def window_signal(action: str) -> Callable[[Context, str, Payload], None]:
    """The handler of a window clock's signal: a subject goes ``down`` or comes ``up``
    (availability; a threshold's ``over`` and ``under``), or a posted maintenance window
    opens (``hold``: the clock stops counting) or closes (``release``)."""
    def handle(ctx: Context, ref: str, facts: Payload) -> None:
        signal(ctx, ref, facts["m"], action)
    return handle


def signal(ctx: Context, ref: str, m: Fact, action: str) -> None:
    """A window signal matched by the rules of the version in force (``ref`` is a target
    id) or of an earlier version whose window clock still runs (``id@version``). A
    window's clock takes the signals of its own version's rules only, and only the
    version in force starts new windows."""
    target_id, _, version = ref.partition("@")
    ruleset = ctx.versions.get(version) if version else ctx.ruleset
    if ruleset is None:
        return
    at = event_time(m["time"])
    record = window_record(ctx, ruleset.targets[target_id], at, create=not version)
    if record is None or record.version != ruleset.version:
        return
    subject: str | None = m.get("subject") or m.get("service") or "-"
    if action in ("hold", "release"):
        subject = MAINTENANCE + str(subject)    # kept apart from the subjects that go down
    elif action == "counts":                    # good and total of an interval, on no subject
        data = m.get("data") or {}
        action, subject = encode_counts(data.get("good"), data.get("total"), str(data.get("start"))), None
    ctx.outcome.moved += 1
    transition(ctx, record, Transition(at, ctx.state.book.next_count(), action, fact_ref(m["source"], m["fid"]),
                                           subject))


def on_rule(ctx: Context, rule_id: str, facts: Payload) -> None:
    """A Rule's patterns matched: its actions decide (engine.eval.actions)."""
    ctx.outcome.moved += 1
    ctx.actions.fire(ctx.ruleset.rules[rule_id], facts)


@dataclass(frozen=True)
class MatchKind:
    """One kind of match: when it is handled among one fact's matches, and by what."""

    phase: int                      # 0: clocks are made; 1: clocks move; 3: Rules fire
    handle: Callable[[Context, str, Payload], None]


MATCH_KINDS: dict[str, MatchKind] = {
    "applies": MatchKind(0, on_applies),
    "first": MatchKind(0, on_first),
    "life": MatchKind(1, on_life),
    "down": MatchKind(1, window_signal("down")),
    "up": MatchKind(1, window_signal("up")),
    "over": MatchKind(1, window_signal("down")),      # a threshold violated: down
    "under": MatchKind(1, window_signal("up")),
    "counts": MatchKind(1, window_signal("counts")),      # a ratio target's good and total events
    "hold": MatchKind(1, window_signal("hold")),
    "release": MatchKind(1, window_signal("release")),
    "rule": MatchKind(3, on_rule),
}


def phase(name: str) -> int:
    """The phase of the match ``<kind>:<ref>``."""
    return MATCH_KINDS[name.split(":", 1)[0]].phase


def dispatch(ctx: Context, name: str, facts: Payload) -> None:
    """Handle the match ``<kind>:<ref>`` (and remember its rule fired)."""
    if ctx.journal is not None:
        ctx.journal.add(ctx.state.fired_rules, name)
    ctx.state.fired_rules.add(name)
    handle, ref = _handler(name)
    handle(ctx, ref, facts)


@functools.lru_cache(maxsize=4096)
def _handler(name: str) -> tuple[Callable[[Context, str, Payload], None], str]:
    """The handler of the match ``<kind>:<ref>``, and its ref (worked out once per name)."""
    kind, ref = name.split(":", 1)
    return MATCH_KINDS[kind].handle, ref


def where_lookup(m: Fact) -> Callable[[str], object]:
    """Field access on a fact as posted to durable_rules, by the names ``where`` uses."""
    def get(name: str) -> object:
        value = m.get("time") if name == "time" else field_at(m, field_path(name))
        return MISSING if value is None else value
    return get

