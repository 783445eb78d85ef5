"""The derivation tree of a decision: decisions, clock readings and facts, down to posted facts.

Built over a lookup (an engine's memory or the store), so a decision stays explainable
after a restart or under a rule set other than the one that made it.
"""
from __future__ import annotations

from typing import Callable

from schemas.facts import dump_fact


class Lookup:
    """Where a trace finds what a decision's ``because`` refers to."""

    def __init__(self, decision: Callable[[str], dict | None], fact: Callable[[str], dict | None],
                 target_rule: Callable[[str], dict | None]):
        self.decision, self.fact, self.target_rule = decision, fact, target_rule


def build_trace(history, ruleset, decision_id: str) -> dict:
    """The trace from an engine's own history (engine.eval.state.History); KeyError for an
    unknown decision."""
    def fact(fid):
        found = history.facts_by_id.get(fid)
        return None if found is None else dump_fact(found)

    def decision(did):
        found = history.decisions_by_id.get(did)
        return None if found is None else found.as_dict()

    def target_rule(target_id):
        target = ruleset.targets.get(target_id)
        return None if target is None else {"id": target.id, "file": target.origin.file,
                                            "line": target.origin.line, "ruleset": ruleset.version}

    return derivation(decision_id, Lookup(decision, fact, target_rule))


def derivation(decision_id: str, lookup: Lookup, _seen: frozenset = frozenset()) -> dict:
    """KeyError for an unknown decision; cycles (which should not occur) are cut."""
    decision = lookup.decision(decision_id)
    if decision is None:
        raise KeyError(decision_id)
    node = {"ref": f"decision:{decision_id}", "kind": decision["kind"], "at": decision["at"],
            "target": decision.get("target"), "subject": decision.get("subject"),
            "rule": decision["rule"], "data": decision.get("data", {}), "children": []}
    seen = _seen | {decision_id}
    for ref in decision.get("because", []):
        kind, _, key = ref.partition(":")
        child = None
        if kind == "decision" and key not in seen and lookup.decision(key) is not None:
            child = derivation(key, lookup, seen)
        elif kind == "fact" and (fact := lookup.fact(key)) is not None:
            child = {"ref": ref, "fact": fact}
        elif kind == "clock":
            child = {"ref": ref, "clock": key,
                     "reading": {k: decision.get("data", {}).get(k) for k in ("counted", "budget", "paused")},
                     "cycle": decision.get("cycle"),
                     "rule": lookup.target_rule(key.split("/", 1)[0])}
        node["children"].append(child or {"ref": ref})
    return node
