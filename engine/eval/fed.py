"""Decisions fed in from other partitions: what the ``global`` partition evaluates
(docs/SCALING.md §2, option (b)).

A partition's owner stores each of its decisions of a kind some cross-partition Rule
matches, and each retraction of one, in the ``global`` partition's log as a fact
``decision.<kind>`` of source ``slm/partition/<partition>`` whose id is the decision's id.
The ``global`` engine runs only the cross-partition Rules. It takes such a fact as the
decision it stands for: held under the decision's key (``d:<id>``), referred to as
``decision:<id>`` by what rests on it, and withdrawn, with every decision that rests on
it, when its retraction arrives.
"""
from __future__ import annotations

from datetime import datetime

from engine.eval.compiler import Fact
from engine.eval.context import Context
from engine.eval.decisions import retract_dependents
from engine.eval.records import posted_fact

DECISION = "decision."
RETRACTED = "decision.retracted"
SOURCE = "slm/partition/"        # the source of a fed decision: slm/partition/<partition>


def is_fed(fact: Fact) -> bool:
    """Whether a loaded fact is another partition's decision (no client may post one:
    types ``decision.*`` are refused at the API)."""
    return str(fact["type"]).startswith(DECISION)


def take(ctx: Context, fact: Fact) -> None:
    """Apply a fed decision (or the retraction of one) to the engine."""
    if fact["type"] == RETRACTED:
        withdraw(ctx, str(fact["data"]["retracts"]), fact["source"], fact["time"])
    else:
        # posted as the feeding engine posts its own decisions (records.decision_fact): a Rule matches it alike
        ctx.network.post(posted_fact(fact, f"d:{fact['id']}"), ctx.state.held)


def withdraw(ctx: Context, decision_id: str, source: str, at: datetime) -> None:
    """A fed decision was retracted where it was made: it leaves the engine, and every
    decision here that rests on it is retracted in turn."""
    ctx.network.retract(f"d:{decision_id}", ctx.state.held)
    ctx.actions.forget(f"decision:{decision_id}")
    partition = source[len(SOURCE):] if source.startswith(SOURCE) else source
    retract_dependents(ctx, decision_id, f"rests on decision {decision_id}, which partition {partition!r} "
                                         "retracted", at)
