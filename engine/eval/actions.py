"""Firing general Rules: turn a durable_rules match into decisions (DESIGN §4, kind Rule).

Joins are matched by durable_rules. The counting form is finished here: durable_rules'
own ``count`` is a tumbling count over all matches, with no grouping by field values and
no event time, so ``same``, ``within`` and ``count`` are applied to the matches of its
``of`` pattern in event-time order.
"""
from __future__ import annotations

import hashlib

from schemas.values import format_instant, parse_instant

from engine.eval.compiler import alias_name
from engine.lang.model import Rule
from engine.eval.engine import Engine, decision_id
from engine.lang.templates import render


def fire_rule(engine: Engine, rule: Rule, facts: dict) -> None:
    if "count" in rule.when:
        _count(engine, rule, facts[alias_name("p0")])
        return
    views = [view(facts[alias_name(p.get("as") or f"p{i}")]) for i, p in enumerate(rule.when["patterns"])]
    context = {p.get("as") or f"p{i}": v for i, (p, v) in enumerate(zip(rule.when["patterns"], views))}
    _conclude(engine, rule, views, context, identity=[v["ref"] for v in views])


def _count(engine: Engine, rule: Rule, fact: dict) -> None:
    spec = rule.when["count"]
    current = view(fact)
    group = tuple(str(lookup(current, name)) for name in spec["same"])
    window = engine._counts.setdefault((rule.id, group), [])
    window.append(current)
    window.sort(key=lambda v: (v["_at"], v["ref"]))
    if spec.get("within"):
        newest = window[-1]["_at"]
        window[:] = [v for v in window if v["_at"] >= newest - spec["within"]]
    if len(window) < spec["count"]:
        return
    matched = window[-spec["count"]:]
    window.clear()
    firing = engine._count_firings.get((rule.id, group), 0) + 1
    engine._count_firings[(rule.id, group)] = firing
    context = {name: lookup(current, name) for name in spec["same"]}
    context.update(count=len(matched), facts=matched)
    _conclude(engine, rule, matched, context, identity=[*group, firing])


def _conclude(engine: Engine, rule: Rule, views: list[dict], context: dict, identity: list) -> None:
    first = views[0]
    at = max(v["_at"] for v in views)
    subject, service = first.get("subject"), first.get("service")
    target = context.get("target", first.get("target"))
    shadow = any(v.get("shadow") is True for v in views)
    digest = hashlib.sha256("|".join(map(str, identity)).encode()).hexdigest()[:16]
    activities = [step["notify"] for step in rule.then if "notify" in step]
    decides = [step["decide"] for step in rule.then if "decide" in step] or \
        [{"kind": "notification", "data": {}}]
    base = {"target": target, "subject": subject, "service": service, "at": format_instant(at), "shadow": shadow}
    for spec in decides:
        decision = {
            "id": decision_id([rule.id, spec["kind"], target, subject, None, digest]),
            "kind": spec["kind"],
            **base,
            "agreement": first.get("agreement"),
            "data": dict(spec.get("data", {})),
            "rule": engine.rule_ref(rule.id, rule.origin),
            "because": [v["ref"] for v in views],
        }
        if spec.get("severity"):
            decision["severity"] = spec["severity"]
        scope = {**context, **decision, "rule": decision["rule"]}
        if spec.get("message"):
            decision["message"] = render(spec["message"], scope)
        for notify in activities[:1]:
            decision["activity"] = notify["activity"]
        message = next((n.get("message") for n in activities if n.get("message")), None) or spec.get("message")
        engine.emit(decision, message=None if message is None else render(message, scope))


def view(fact: dict) -> dict:
    """A durable_rules fact as rules and templates see it: envelope plus data fields."""
    out = dict(fact.get("data") or {})
    out.update({"id": fact["fid"], "source": fact["source"], "type": fact["type"], "time": fact["time"],
                "subject": fact.get("subject"), "service": fact.get("service"), "data": fact.get("data") or {}})
    out["_at"] = parse_instant(fact["time"])
    if fact["type"].startswith("decision."):
        out["ref"] = "decision:" + fact["fid"]
    elif fact["type"] == "clock.running":
        out["ref"] = "clock:" + fact["data"]["clock"]
    else:
        out["ref"] = "fact:" + fact["fid"]
    return out


def lookup(data: dict, path: str):
    value = data
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


__all__ = ["fire_rule", "view", "lookup"]
