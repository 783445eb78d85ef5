"""The derivation tree of a decision: decisions, clock readings and facts, down to posted facts."""
from __future__ import annotations

from schemas.facts import dump_fact


def build_trace(engine, decision_id: str, _seen: frozenset = frozenset()) -> dict:
    """Raise KeyError for an unknown decision; cycles (which should not occur) are cut."""
    decision = engine.decisions_by_id[decision_id]
    node = {"ref": f"decision:{decision_id}", "kind": decision["kind"], "at": decision["at"],
            "target": decision.get("target"), "subject": decision.get("subject"),
            "rule": decision["rule"], "data": decision.get("data", {}), "children": []}
    seen = _seen | {decision_id}
    for ref in decision.get("because", []):
        kind, _, key = ref.partition(":")
        if kind == "decision" and key in engine.decisions_by_id and key not in seen:
            node["children"].append(build_trace(engine, key, seen))
        elif kind == "fact" and key in engine.facts_by_id:
            node["children"].append({"ref": ref, "fact": dump_fact(engine.facts_by_id[key])})
        elif kind == "clock":
            target = engine.ruleset.targets.get(key.split("/", 1)[0])
            node["children"].append({
                "ref": ref, "clock": key, "reading": {k: decision.get("data", {}).get(k)
                                                      for k in ("counted", "budget", "paused")},
                "cycle": decision.get("cycle"),
                "rule": engine.rule_ref(target.id, target.origin) if target else None})
        else:
            node["children"].append({"ref": ref})
    return node
