"""Feeding the ``global`` partition (docs/SCALING.md §2, option (b)): a partition's owner
stores its decisions of the kinds cross-partition Rules match, and the retractions of
those, in ``global``'s log, in the transaction that records them. ``global``'s owner
evaluates them as any stored facts (engine.service.backlog; engine.eval.fed), in the
order the partitions committed them.
"""
from __future__ import annotations

from engine.eval.fed import SOURCE
from engine.eval.records import decision_fact
from engine.lang.partitions import GLOBAL
from engine.store.store import Store
from schemas.records import Decision


def feed_global(store: Store, decisions: list[Decision], kinds: frozenset[str]) -> int:
    """Store in ``global``'s log each of ``decisions`` of a kind in ``kinds``, and each
    retraction of a decision fed before (in this call or earlier); how many were stored.
    Call inside the transaction that records the decisions."""
    if not kinds:
        return 0
    source = SOURCE + store.partition
    fed = [d for d in decisions if d.kind in kinds]
    retractions = [d for d in decisions if d.kind == "retracted" and d.data.get("retracts")]
    if retractions:
        this_call = {d.id for d in fed}
        earlier = store.fact_seqs([(source, str(d.data["retracts"])) for d in retractions
                                   if d.data["retracts"] not in this_call])
        fed += [d for d in retractions
                if d.data["retracts"] in this_call or (source, str(d.data["retracts"])) in earlier]
    stored = store.add_pending_facts([fed_fact(d, source) for d in fed], partition=GLOBAL)
    return len(stored)


def fed_fact(decision: Decision, source: str) -> dict:
    """A decision as a fact of ``global``'s log: ``decision.<kind>``, its id the decision's."""
    posted = decision_fact(decision)
    fact = {"id": decision.id, "source": source, "type": posted["type"], "time": posted["time"],
            "data": posted["data"]}
    for name in ("subject", "service"):
        if posted.get(name) is not None:
            fact[name] = posted[name]
    return fact
