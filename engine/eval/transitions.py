"""Clock transitions in event time: a fact moves a clock, a deadline fires, a late fact
rebuilds a clock from its history, a window ends and the next one starts as it left off.
Every change ends with the clock's readings issued as decisions (engine.eval.decisions),
its ``clock.running`` fact in step for the Rules that join it, and its next deadline on
the schedule.
"""
from __future__ import annotations

from datetime import datetime

from engine.eval import packs
from engine.eval.book import ClockRecord
from engine.eval.budget import ROLLING_END
from engine.eval.clock import Transition, window_of
from engine.eval.compiler import Fact
from engine.eval.context import Context
from engine.eval.decisions import WITHDRAW, issue, record_decision, retract_decision
from engine.eval.ledger import EPOCH
from engine.eval.replay import replay
from engine.eval.settle import settle
from engine.lang.model import Target
from schemas.values import format_instant, format_whole_duration


def transition(ctx: Context, record: ClockRecord, change: Transition) -> None:
    """Apply a fact's effect to a clock: in order, or (late) by rebuilding it."""
    if record.settled is not None and change.at <= record.settled:
        return                                   # too late to change a budget's settled past
    if record.record_transition(change):         # late for this clock
        if record.changes_state(change):
            rebuild(ctx, record, cause=change)
        return
    state = ctx.state
    readings = record.clock.fire_due(change.at, inclusive=False)
    readings += record.clock.apply(change)
    if state.now:
        readings += record.clock.fire_due(state.now, state.now_inclusive)
    issue(ctx, record, readings)
    sync_running(ctx, record)
    state.book.schedule(record)
    settle(ctx, record)


def rebuild(ctx: Context, record: ClockRecord, cause: Transition) -> None:
    """A late fact: replay the clock's history in event-time order and reconcile."""
    state = ctx.state
    now = state.now
    if now is None:                     # a clock exists only once a fact has moved the engine's time
        raise RuntimeError("a clock is rebuilt before the engine's time is set")
    clock, readings = replay(ctx, record, record.transitions, now, state.now_inclusive)
    record.clock = clock
    fresh = {r.key: r for r in readings}
    withdrawn = {d.id for k, d in record.issued.items() if k[0] == WITHDRAW}
    for key, decision in list(record.issued.items()):
        reading = fresh.get(key)
        if key[0] == WITHDRAW:
            if reading is None:
                del record.issued[key]      # (the at_risk it withdrew is reconsidered on its own)
            continue
        if reading is None or reading.at != decision.at or (
                reading.kind == "met" and reading.counted != decision.data.get("counted")):
            del record.issued[key]          # (a met at the same instant may have counted more)
            record.revisions[key] = record.revisions.get(key, 0) + 1
            if decision.id not in withdrawn:        # (retracted already when its forecast moved out)
                retract_decision(ctx, decision, f"recomputed after late {cause.fact}", [cause.fact], cause.at)
    issue(ctx, record, [r for r in readings if r.key not in record.issued])
    sync_running(ctx, record)
    state.book.schedule(record)


def advance(ctx: Context, until: datetime, inclusive: bool) -> None:
    """Fire every deadline before ``until`` (or at it), in event-time order across clocks
    and the monthly review packs (engine.eval.packs; a clock's deadline at the same instant
    first), each with all it causes handled before the next."""
    book, state = ctx.state.book, ctx.state
    monthly = packs.due(ctx.ruleset, state.now, state.now_inclusive, until, inclusive)
    while True:
        deadline = book.next_deadline()
        if deadline is None or deadline > until or (deadline == until and not inclusive):
            deadline = None
        if monthly and (deadline is None or monthly[0][0] < deadline):
            at, agreement, period = monthly.pop(0)
            record_decision(ctx, packs.decision(agreement, at, period, ctx.ruleset.version))
            ctx.network.drain()
            continue
        if deadline is None:
            break
        record = book.pop_due()
        issue(ctx, record, record.clock.fire_due(deadline, inclusive=True))
        sync_running(ctx, record)
        book.schedule(record)
        if record.clock.closed:
            carry_over(ctx, record)
        ctx.network.drain()


def carry_over(ctx: Context, record: ClockRecord) -> None:
    """A window ends while the service is down (or in a posted maintenance window): the
    next window starts so."""
    old = record.clock
    carried = old.carried_over()
    window = old.window
    if not carried or window is None or record.carried:
        return
    record.carried = True
    target = ctx.ruleset.targets.get(record.target.id)       # the next window: the version in force
    successor = None if target is None else window_record(ctx, target, window.end)
    if successor is None:
        return
    for action, subject, fact in carried:
        transition(ctx, successor, Transition(window.end, ctx.state.book.next_count(), action, fact, subject))


def window_record(ctx: Context, target: Target, at: datetime, create: bool = True) -> ClockRecord | None:
    """The window clock holding ``at``, made if ``create`` (None: none, a window forgotten
    under ``retain``, or ``at`` outside the agreement's validity). A window is cut to the
    validity: one that begins before ``valid.from`` counts from it, one that ends after
    ``valid.to`` ends then, so nothing is counted or decided outside the agreement."""
    valid_from, valid_to = target.valid_span()
    if target.rolling is not None:       # one clock, its window the one ending at each instant
        start, end, label = valid_from or EPOCH, valid_to or ROLLING_END, "rolling"
    else:
        start, end, label = window_of(target.spec.get("window", "month"), at, target.calendar.timezone)
    bounds = (max(start, valid_from) if valid_from else start, min(end, valid_to) if valid_to else end, label)
    if not bounds[0] <= at < bounds[1]:
        return None
    key = f"{target.id}/{label}"
    book = ctx.state.book
    record = book.get(key)
    if record is None:
        if not create or _forgotten(ctx, bounds[1]):
            return None
        record = book.add(ClockRecord(key, target, bounds[2], ctx.factory.make(target, bounds),
                                      versions=[(None, ctx.ruleset.version)]), indexed=False)
        sync_running(ctx, record)
    return record


def _forgotten(ctx: Context, window_end: datetime) -> bool:
    """Whether a window that ended then lies beyond ``retain``: its clock, if any, is gone."""
    now = ctx.state.now
    return ctx.retain is not None and now is not None and window_end < now - ctx.retain


def sync_running(ctx: Context, record: ClockRecord) -> None:
    """Keep a ``clock.running`` fact asserted exactly while the clock runs a cycle, for
    the clocks some Rule may join (no other clock ever needs one)."""
    network = ctx.network
    if record.target.id not in network.joined_clocks:
        return
    clock = record.clock
    running = clock.running and clock.cycle > 0
    fact_id = f"clock:{record.key}#{clock.cycle}"
    current = record.running_fact
    if current and (not running or current["id"] != fact_id):
        network.retract(current["id"], ctx.state.held)
        record.running_fact = None
    if running and record.running_fact is None:
        start = clock.count_start or ctx.state.now
        if start is None:
            return                      # (never: a running clock has started, so time was set)
        record.running_fact = fact = running_fact(record, fact_id, start, ctx.factory.running_data(record.target))
        network.post(fact, ctx.state.held)


def running_fact(record: ClockRecord, fact_id: str, start: datetime, data: Fact) -> Fact:
    """The ``clock.running`` fact of a clock: what a Rule can join on (``data``: what it says
    of its target, :func:`engine.eval.network.running_data`)."""
    target = record.target
    return {"sid": "0", "id": fact_id, "fid": fact_id, "source": "slm", "type": "clock.running",
            "subject": record.subject, "service": target.service, "ts": start.timestamp(),
            "time": format_instant(start), "data": data | {
                "clock": record.key, "cycle": record.clock.cycle,
                "budget": format_whole_duration(record.clock.budget)}}
