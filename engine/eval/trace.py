"""The derivation tree of a decision: decisions, clock readings and facts, down to posted facts.

Built over a lookup (an engine's memory or the store), so a decision stays explainable
after a restart or under a rule set other than the one that made it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.lang.model import RuleSet
from schemas.facts import dump_fact

if TYPE_CHECKING:
    from engine.eval.state import History

Trace = dict[str, Any]        # a node of a derivation tree: what it is, and its ``because`` below it


class Lookup:
    """Where a trace finds what a decision's ``because`` refers to: decisions by id, facts
    by what follows ``fact:`` in the reference (their source and id,
    schemas.records.fact_key), and the rule sets by version (to show each definition as
    the version that decided had it)."""

    def __init__(self, decision: Callable[[str], Trace | None], fact: Callable[[str], Trace | None],
                 ruleset: Callable[[str | None], RuleSet | None]):
        self.decision, self.fact, self.ruleset = decision, fact, ruleset

    def with_text(self, rule: Trace | None) -> Trace | None:
        """A rule reference with the YAML text of its definition in its version, if known."""
        if not rule:
            return rule
        ruleset = self.ruleset(rule.get("ruleset"))
        text = None if ruleset is None else ruleset.source(rule["file"], rule.get("line") or 0)
        return {**rule, "text": text}

    def target_rule(self, target_id: str, version: str | None) -> Trace | None:
        """The target's definition as the version ``version`` has it."""
        ruleset = self.ruleset(version)
        target = None if ruleset is None else ruleset.targets.get(target_id)
        if ruleset is None or target is None:
            return None
        return self.with_text({"id": target.id, "file": target.origin.file, "line": target.origin.line,
                               "ruleset": ruleset.version})


def build_trace(history: History | None, ruleset: RuleSet, decision_id: str) -> Trace:
    """The trace from an engine's own history; KeyError for an unknown decision (or an
    engine that keeps no history)."""
    if history is None:
        raise KeyError(decision_id)

    def fact(key: str) -> Trace | None:
        found = history.facts_by_ref.get("fact:" + key)
        return None if found is None else dump_fact(found)

    def decision(did: str) -> Trace | None:
        found = history.decisions_by_id.get(did)
        return None if found is None else found.as_dict()

    return derivation(decision_id, Lookup(decision, fact, lambda version: ruleset))


def derivation(decision_id: str, lookup: Lookup, _seen: frozenset[str] = frozenset()) -> Trace:
    """KeyError for an unknown decision; cycles (which should not occur) are cut."""
    decision = lookup.decision(decision_id)
    if decision is None:
        raise KeyError(decision_id)
    node = {"ref": f"decision:{decision_id}", "kind": decision["kind"], "at": decision["at"],
            "target": decision.get("target"), "subject": decision.get("subject"),
            "rule": lookup.with_text(decision["rule"]), "data": decision.get("data", {}), "children": []}
    data, version = decision.get("data", {}), decision["rule"].get("ruleset")
    seen = _seen | {decision_id}
    for ref in decision.get("because", []):
        kind, _, key = ref.partition(":")
        child = None
        if kind == "decision" and key not in seen and lookup.decision(key) is not None:
            child = derivation(key, lookup, seen)
        elif kind == "fact" and (fact := lookup.fact(key)) is not None:
            child = {"ref": ref, "fact": fact}
        elif kind == "clock":
            # a clock's own decision carries its reading; a Rule's, the readings of the
            # clocks it joined, at the moment it decided
            reading = data.get("clocks", {}).get(key) or {k: data.get(k) for k in ("counted", "budget", "paused")}
            child = {"ref": ref, "clock": key,
                     "reading": {k: reading.get(k) for k in ("counted", "budget", "paused")},
                     "cycle": reading.get("cycle", decision.get("cycle")),
                     "rule": lookup.target_rule(key.split("/", 1)[0], version)}
        node["children"].append(child or {"ref": ref})
    return node
