"""Rule changes: putting a new rule-set version in force at an instant (docs/RULES.md,
"Rule changes"), at the cost of the clocks that run, never a replay.

Decisions already made stay as they are. A running clock finishes under the version it
started with, unless its target says ``on_change: reprice`` in the new version (it takes
the new definition from the cut-over on) or the new version drops a target that said
``on_change: cancel`` (its clocks end with a ``cancelled`` decision).
"""
from __future__ import annotations

from datetime import datetime

from engine.eval.book import ClockRecord
from engine.eval.context import Context, Outcome
from engine.eval.decisions import issue, record_decision, rule_actions
from engine.eval.records import decision_id, rule_ref
from engine.eval.replay import reprice
from engine.eval.transitions import sync_running
from engine.lang.model import RuleSet, Target
from schemas.records import Decision


def cut_over(ctx: Context, ruleset: RuleSet, at: datetime) -> Outcome:
    """Put ``ruleset`` in force from ``at``: reprice or cancel the running clocks its
    targets say to, recompile, and keep the ``clock.running`` facts and what joins hold
    in step. Earlier versions stay known (a late fact may rebuild a finished clock of one)."""
    ctx.outcome = Outcome()
    if ruleset.version == ctx.ruleset.version:
        return ctx.outcome
    because = f"rules:{ruleset.version}"
    ctx.versions[ruleset.version] = ruleset
    ctx.ruleset = ruleset
    ctx.actions = rule_actions(ctx, ruleset, ctx.actions.render)
    state, network = ctx.state, ctx.network
    for record in changing(ctx, ruleset):
        successor = ruleset.targets.get(record.target.id)
        if successor is None and record.target.on_change == "cancel":
            cancel(ctx, record, at, because)
        elif (successor is not None and successor.on_change == "reprice"
              and successor.measure == record.target.measure):
            record.versions.append((at, ruleset.version))
            issue(ctx, record, reprice(ctx, record, record.clock, successor, at, because))
            state.book.schedule(record)
    joined = network.joined_clocks
    renewed = network.compile(ruleset, carried(ctx), keep_rules=True)
    if renewed:                                      # the Rules changed: what they hold, again
        state.held = {key: fact for key, fact in state.held.items()
                      if fact["type"] in network.retained and network.may_join(fact)}
        network.rehold(state.held)
    if renewed or network.joined_clocks != joined:
        for record in state.book.running_records():
            if record.running_fact is not None and record.running_fact["id"] not in state.held:
                record.running_fact = None
            sync_running(ctx, record)
    network.drain()
    return ctx.outcome


def changing(ctx: Context, ruleset: RuleSet) -> list[ClockRecord]:
    """The running clocks a change to ``ruleset`` acts on (its targets reprice them, or
    it drops their target and they cancel), in key order."""
    out = []
    for record in ctx.state.book.running_records(ordered=False):
        if record.version == ruleset.version:
            continue
        successor = ruleset.targets.get(record.target.id)
        if (successor is None and record.target.on_change == "cancel") or (
                successor is not None and successor.on_change == "reprice"):
            out.append(record)
    return sorted(out, key=lambda r: r.key)


def cancel(ctx: Context, record: ClockRecord, at: datetime, because: str) -> None:
    """End a clock whose target the change removed, with a ``cancelled`` decision."""
    clock = record.clock
    counted = clock.cancel(at)
    target, agreement = record.target, record.target.agreement
    decision = Decision(
        id=decision_id([target.id, "cancelled", target.id, record.subject, None, clock.cycle, because]),
        kind="cancelled", target=target.id, subject=record.subject, service=agreement.service,
        agreement=agreement.id, at=at, shadow=agreement.shadow,
        data={"counted": counted, "budget": clock.budget, "reason": "the rule change removed the target"},
        rule=rule_ref(target.id, target.origin, record.version),
        because=[f"clock:{record.key}", because], agreement_type=agreement.type, cycle=clock.cycle)
    record.issue(("cancelled", None, clock.cycle, 0, None), decision)
    record_decision(ctx, decision)
    sync_running(ctx, record)
    ctx.state.book.schedule(record)


def carried(ctx: Context) -> list[tuple[str, Target]]:
    """(version, target) of the clocks that run under a version no longer in force: their
    signal and lifecycle rules stay compiled."""
    found = {}
    for record in ctx.state.book.running_records(ordered=False):
        if record.version != ctx.ruleset.version:
            found[(record.version, record.target.id)] = record.target
    return [(version, target) for (version, _), target in sorted(found.items(), key=lambda kv: kv[0])]
