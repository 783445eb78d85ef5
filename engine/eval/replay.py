"""A clock made again from its history: after a late fact (engine.eval.transitions), and
when a rolling budget settles its past (engine.eval.settle)."""
from __future__ import annotations

from datetime import datetime

from engine.eval.book import ClockRecord
from engine.eval.clock import Clock, Reading, Transition
from engine.eval.clockstate import clock_in
from engine.eval.context import Context
from engine.lang.model import Target


def replay(ctx: Context, record: ClockRecord, transitions: list[Transition], until: datetime,
           inclusive: bool) -> tuple[Clock, list[Reading]]:
    """The record's clock made again, from its settled past if it has one (engine.eval.settle),
    with ``transitions`` applied in event-time order up to ``until``: each stretch under
    the version it ran under, from its start, then from each rule change that repriced it.
    The new clock, and all it read on the way."""
    (_, first), *repriced = record.versions
    target = ctx.versions[first].targets[record.target.id]
    window = record.clock.window
    clock = ctx.factory.make(target, None if window is None else (window.start, window.end, window.label))
    if record.base is not None:
        clock_in(clock, record.base)
    if target.spec.get("start_at"):
        clock.start_from = ctx.state.firsts.get(record.key)
    readings: list[Reading] = []
    changes = [(at, version) for at, version in repriced if at is not None]   # (each has its instant)

    def reprice_until(at: datetime, inclusive: bool) -> None:
        nonlocal readings
        while changes and (changes[0][0] < at or (inclusive and changes[0][0] == at)):
            when, version = changes.pop(0)
            readings += clock.fire_due(when, inclusive=False)
            readings += reprice(ctx, record, clock, ctx.versions[version].targets[target.id], when, f"rules:{version}")

    for change in sorted(transitions, key=lambda t: (t.at, t.seq)):
        reprice_until(change.at, inclusive=False)
        readings += clock.fire_due(change.at, inclusive=False)
        readings += clock.apply(change)
    reprice_until(until, inclusive=True)
    readings += clock.fire_due(until, inclusive)
    return clock, readings


def reprice(ctx: Context, record: ClockRecord, clock: Clock, target: Target, at: datetime,
            because: str) -> list[Reading]:
    """Give a running clock ``target``'s definition from ``at`` on; the levels it has
    passed and not decided, decided at ``at``."""
    record.target = target
    clock.reprice(ctx.factory.definition(target), at)
    return clock.fire_passed(at, because)
