"""Settling a rolling budget's past, so a clock that never ends holds bounded history.

A clock keeps every transition it was given, to be made again when a late fact arrives
(engine.eval.transitions). A rolling budget clock runs as long as its agreement, so once
it holds :data:`SETTLE_AT` transitions, those older than the engine's ``retain`` are
folded into a base: its state as it stood then (engine.eval.clockstate), which a later
rebuild starts from. A fact older than that changes nothing of the budget any more, as a
fact older than ``retain`` finds no window clock (docs/RULES.md, "Error budgets").
"""
from __future__ import annotations

from datetime import datetime

from engine.eval.book import ClockRecord
from engine.eval.budget import BudgetClock
from engine.eval.clockstate import clock_out
from engine.eval.context import Context
from engine.eval.replay import replay

Signal = tuple[datetime, int, str]      # (at, seq, action): a window subject's history

SETTLE_AT = 2048           # transitions a rolling budget holds before it settles the old ones


def settle(ctx: Context, record: ClockRecord) -> None:
    """Fold the transitions older than ``retain`` into the record's base, if there are many."""
    clock, now = record.clock, ctx.state.now
    if ctx.retain is None or now is None or len(record.transitions) < SETTLE_AT:
        return
    if not isinstance(clock, BudgetClock) or clock.spec.length is None:
        return
    cut = now - ctx.retain
    if record.transitions[SETTLE_AT // 2].at > cut:
        return          # (kept in arrival order, nearly event time: too few to settle yet, cheaply)
    settled = [change for change in record.transitions if change.at <= cut]
    target = record.target
    base, _ = replay(ctx, record, settled, cut, inclusive=True)    # (what it read was decided then)
    record.target = target
    in_force = [version for at, version in record.versions if at is None or at <= cut][-1]
    # new containers throughout: an undo image of this write keeps the old ones
    record.versions = [(None, in_force)] + [(at, v) for at, v in record.versions if at is not None and at > cut]
    record.base, record.settled = clock_out(base), cut
    record.transitions = [change for change in record.transitions if change.at > cut]
    record.signals = {subject: _since(history, cut) for subject, history in record.signals.items()}
    record.issued = {key: decision for key, decision in record.issued.items() if decision.at > cut}


def _since(history: list[Signal], cut: datetime) -> list[Signal]:
    """A subject's signals after ``cut``, and the last one before: whether it was down then."""
    later = [signal for signal in history if signal[0] > cut]
    earlier = len(history) - len(later)
    return history[earlier - 1:earlier] + later if earlier else later
