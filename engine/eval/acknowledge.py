"""``escalation.acknowledged``: someone answered an escalation (the link in its message,
api/ack.py, or a tool posting the fact), so that level of that clock's cycle repeats no
more. Its data names the level as the decision did: ``target``, ``cycle``, ``level``,
``activity`` (and, for people, ``decision`` and ``by``). A clock transition like any
other, so a late one rebuilds the clock and a restart replays it.
"""
from __future__ import annotations

from engine.eval.clock import ACKNOWLEDGED, Transition
from engine.eval.compiler import Fact
from engine.eval.context import Context
from engine.eval.transitions import transition
from schemas.records import fact_ref

ACK_TYPE = "escalation.acknowledged"


def acknowledge(ctx: Context, fact: Fact) -> None:
    """Stop the repeats of the level ``fact`` names, on its clock (``target``/subject); an
    acknowledgement of a clock the engine does not keep changes nothing."""
    data = fact.get("data") or {}
    target, cycle, level, activity = (data.get(name) for name in ("target", "cycle", "level", "activity"))
    if not all(isinstance(v, (str, int)) for v in (target, cycle, level, activity)):
        return
    record = ctx.state.book.get(f"{target}/{fact['subject']}")
    if record is None:
        return
    ctx.outcome.moved += 1
    transition(ctx, record, Transition(fact["time"], ctx.state.book.next_count(),
                                       f"{ACKNOWLEDGED}|{cycle}|{activity}|{level}",
                                       fact_ref(fact["source"], fact["id"])))
