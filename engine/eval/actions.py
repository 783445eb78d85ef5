"""Firing general Rules: turn a durable_rules match into decisions (kind Rule, docs/RULES.md).

Joins are matched by durable_rules. The counting form is finished here: durable_rules'
own ``count`` is a tumbling count over all matches, with no grouping by field values and
no event time, so ``same``, ``within`` and ``count`` are applied to the matches of its
``of`` pattern in event-time order. The count windows are part of the engine's state
(:class:`engine.eval.state.EngineState`), passed in.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.eval.compiler import Fact, alias_name
from engine.eval.records import decision_id, rule_ref
from engine.eval.undo import Journal
from engine.lang.model import Rule
from engine.lang.templates import render
from schemas.records import Decision, fact_ref
from schemas.values import parse_instant

View = dict[str, Any]                       # a fact as a Rule sees it (see view)
CountKey = tuple[str, tuple[str, ...]]      # (rule id, the values of its ``same`` fields)
ClockReader = Callable[[str, datetime], "dict[str, object] | None"]


def _no_clock(key: str, at: datetime) -> dict[str, object] | None:
    return None


def _no_journal() -> Journal | None:
    return None


class RuleActions:
    """The actions of one rule set's Rules. ``emit`` records a decision in the engine;
    ``render`` is False while replaying (messages of discarded decisions are not rendered)."""

    def __init__(self, version: str, counts: dict[CountKey, list[View]], firings: dict[CountKey, int],
                 emit: Callable[[Decision], None], render: bool = True, read_clock: ClockReader = _no_clock,
                 journal: Callable[[], Journal | None] = _no_journal):
        self.version = version
        self.counts, self.firings = counts, firings
        self.emit = emit
        self.render = render
        self.read_clock = read_clock        # (clock key, instant) -> its reading then, for the record
        self.journal = journal              # the write's undo journal, if one is in progress

    def fire(self, rule: Rule, facts: dict[str, Fact]) -> None:
        if "count" in rule.when:
            self._count(rule, facts[alias_name("p0")])
            return
        patterns = rule.when["patterns"]
        views = [view(facts[alias_name(p.get("as") or f"p{i}")]) for i, p in enumerate(patterns)]
        context = {p.get("as") or f"p{i}": v for i, (p, v) in enumerate(zip(patterns, views, strict=True))}
        self._conclude(rule, views, context, identity=[v["ref"] for v in views])

    def _count(self, rule: Rule, fact: Fact) -> None:
        spec = rule.when["count"]
        current = view(fact)
        group = tuple(str(lookup(current, name)) for name in spec["same"])
        journal = self.journal()
        if journal is not None:
            journal.copied(self.counts, (rule.id, group))
            journal.put(self.firings, (rule.id, group))
        window = self.counts.setdefault((rule.id, group), [])
        window.append(current)
        window.sort(key=lambda v: (v["_at"], v["ref"]))
        if spec.get("within"):
            newest = window[-1]["_at"]
            window[:] = [v for v in window if v["_at"] >= newest - spec["within"]]
        if len(window) < spec["count"]:
            return
        matched = window[-spec["count"]:]
        window.clear()
        firing = self.firings[(rule.id, group)] = self.firings.get((rule.id, group), 0) + 1
        context = {name: lookup(current, name) for name in spec["same"]}
        context.update(count=len(matched), facts=matched)
        self._conclude(rule, matched, context, identity=[*group, firing])

    def forget(self, ref: str) -> None:
        """A decision was retracted: it no longer counts towards any count window."""
        journal = self.journal()
        for key, window in self.counts.items():
            kept = [v for v in window if v["ref"] != ref]
            if len(kept) != len(window):
                if journal is not None:
                    journal.copied(self.counts, key)
                window[:] = kept

    def _conclude(self, rule: Rule, views: list[View], context: dict[str, Any], identity: list[Any]) -> None:
        first = views[0]
        at = max(v["_at"] for v in views)
        subject, service = first.get("subject"), first.get("service")
        target = context.get("target", first.get("target"))
        shadow = any(v.get("shadow") is True for v in views)
        digest = hashlib.sha256("|".join(map(str, identity)).encode()).hexdigest()[:16]
        activities = [step["notify"] for step in rule.then if "notify" in step]
        decides = [step["decide"] for step in rule.then if "decide" in step] or \
            [{"kind": "notification", "data": {}}]
        notify_text = next((n.get("message") for n in activities if n.get("message")), None)
        clocks = {v["ref"][6:]: reading for v in views if v["ref"].startswith("clock:")
                  if (reading := self.read_clock(v["ref"][6:], at)) is not None}
        for spec in decides:
            data = dict(spec.get("data", {}))
            if clocks:
                data["clocks"] = clocks          # what each clock it joined had counted then (for the trace)
            decision = Decision(
                id=decision_id([rule.id, spec["kind"], target, subject, None, digest]), kind=spec["kind"],
                target=target, subject=subject, service=service, agreement=first.get("agreement"), at=at,
                shadow=shadow, data=data, rule=rule_ref(rule.id, rule.origin, self.version),
                because=[v["ref"] for v in views], severity=spec.get("severity"),
                activity=activities[0]["activity"] if activities else None)
            if self.render:
                scope = {**context, **decision.as_dict(), "rule": decision.rule}
                if spec.get("message"):
                    decision.message = render(spec["message"], scope)
                if notify_text:
                    decision.notice = render(notify_text, scope)
            self.emit(decision)


def view(fact: Fact) -> View:
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
        out["ref"] = fact_ref(fact["source"], fact["fid"])
    return out


def lookup(data: View, path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
