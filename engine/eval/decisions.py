"""Issuing decisions: from clock readings and from Rules, recorded in order, fed back in as
``decision.<kind>`` facts where some Rule can match them, and retracted with everything
that rests on them.

Building a decision's record is engine.eval.records' job; who is notified of it is not
the engine's business (engine.notify).
"""
from __future__ import annotations

from datetime import datetime

from engine.eval.actions import RuleActions
from engine.eval.book import ClockRecord
from engine.eval.clock import Reading
from engine.eval.context import Context
from engine.eval.reads import clock_reading
from engine.eval.records import clock_decision, decision_fact, retraction
from engine.lang.model import RuleSet
from schemas.records import Decision
from schemas.values import format_instant


def rule_actions(ctx: Context, ruleset: RuleSet, render: bool = True) -> RuleActions:
    """The actions of ``ruleset``'s Rules, deciding through :func:`emit`."""
    return RuleActions(ruleset.version, ctx.state.counts, ctx.state.count_firings, lambda d: emit(ctx, d), render,
                       lambda key, at: clock_reading(ctx.state, key, at), lambda: ctx.journal)


def issue(ctx: Context, record: ClockRecord, readings: list[Reading]) -> None:
    """A clock's readings as decisions, each once (a rebuilt clock reads the same again)."""
    for reading in readings:
        if reading.key in record.issued:
            continue
        if reading.kind == WITHDRAW:
            withdraw(ctx, record, reading)
            continue
        decision = clock_decision(record.target, record.subject, record.key, reading,
                                  record.revisions.get(reading.key, 0), record.version)
        record.issue(reading.key, decision)
        record_decision(ctx, decision)


WITHDRAW = "withdraw"        # a budget clock's forecast moved out of its window (engine.eval.budget)


def withdraw(ctx: Context, record: ClockRecord, reading: Reading) -> None:
    """Retract the ``at_risk`` decision of the same episode: its forecast no longer falls in
    the window. Kept under the reading's key, so a rebuilt clock withdraws it once."""
    original = record.issued.get(("at_risk", reading.level, reading.cycle, reading.repeat, None))
    if original is None:
        return
    record.issued[reading.key] = original
    if record.last_fired is None or reading.at > record.last_fired:
        record.last_fired = reading.at
    retract_decision(ctx, original, f"forecast moved out of the window at {format_instant(reading.at)}",
                     list(reading.because), reading.at)


def emit(ctx: Context, decision: Decision) -> None:
    """A Rule's decision: once per id (a join may match the same facts again after a
    clock.running fact was retracted and re-asserted). It rests on the decisions it
    names in ``because``: if one of them is retracted, so is this one."""
    state, journal = ctx.state, ctx.journal
    if decision.id in state.emitted:
        return
    if journal is not None:
        journal.add(state.emitted, decision.id)
    state.emitted.add(decision.id)
    for ref in decision.because:
        if ref.startswith("decision:"):
            if journal is not None:
                journal.appended(state.dependents, ref[9:])
            state.dependents.setdefault(ref[9:], []).append(decision)
    record_decision(ctx, decision)


def record_decision(ctx: Context, decision: Decision) -> None:
    """Record a decision and feed it back in as a fact where a Rule can match it."""
    history = ctx.state.history
    if history is not None:
        if ctx.journal is not None:
            ctx.journal.undo(history.decisions.pop)
            ctx.journal.put(history.decisions_by_id, decision.id)
        history.decisions.append(decision)
        history.decisions_by_id[decision.id] = decision
    ctx.outcome.decisions.append(decision)
    if ctx.network.posts("decision." + decision.kind):
        ctx.network.post(decision_fact(decision), ctx.state.held)


def retract_decision(ctx: Context, decision: Decision, reason: str, because: list[str], at: datetime) -> None:
    """Supersede a decision with a recorded retraction, and with it, transitively, every
    Rule decision that rests on it (truth maintenance)."""
    ctx.network.retract(f"d:{decision.id}", ctx.state.held)       # by our id (the held fact's may carry ~N)
    ctx.actions.forget(f"decision:{decision.id}")
    now = ctx.state.now
    record_decision(ctx, retraction(decision, max(now or at, at), reason, because))
    retract_dependents(ctx, decision.id, f"rests on {decision.kind} {decision.id}, which was retracted", at)


def retract_dependents(ctx: Context, decision_id: str, reason: str, at: datetime) -> None:
    """Retract every decision that rests on ``decision_id``, which was just retracted."""
    if ctx.journal is not None:
        ctx.journal.put(ctx.state.dependents, decision_id)
    for dependent in ctx.state.dependents.pop(decision_id, []):
        retract_decision(ctx, dependent, reason, [f"decision:{decision_id}"], at)
