"""Inhibition at routing time: a notification an Inhibit aims at is muted while its source
holds (engine/lang/inhibit.py says what an Inhibit is; docs/RULES.md, "Inhibition").

Whether a source holds is judged at the decision's instant, in event time, from the store:
the facts and decisions stored up to that instant (this write's included: facts and
decisions are stored before their notifications are routed). So the same history mutes the
same notifications however it arrived, and a notification routed after the source ended is
sent as usual, while what was muted stays muted: nothing is sent late.

A source never mutes its own subject: the major incident itself and the outage that
breached keep escalating; what they make redundant is everything else they match.
"""
from __future__ import annotations

from typing import Any, Protocol

from engine.lang.inhibit import Inhibit
from engine.lang.model import RuleSet, Target
from engine.lang.where import failure, lookup
from engine.notify.mute import mute_where
from schemas.records import Decision, Notification
from schemas.values import parse_instant


class InhibitionReads(Protocol):
    """What inhibition reads of the store (engine/store: FactLog, Ledger)."""

    def unended_facts(self, types: list[str], ends: list[str], at: Any, service: str | None = None,
                      subject: str | None = None) -> list[dict]: ...

    def facts_between(self, types: list[str], after: Any, at: Any, service: str | None = None) -> list[dict]: ...

    def standing_decisions(self, kind: str, target: str, at: Any, service: str | None = None,
                           subject: str | None = None, limit: int | None = None) -> list[dict]: ...


class Inhibitions:
    """The inhibitions of a rule set over one store, for one write (what a source gave is
    kept: the decisions of a write share their instants and subjects)."""

    def __init__(self, ruleset: RuleSet, store: InhibitionReads):
        self.inhibits = list(ruleset.inhibits.values())
        self.store = store
        self._held: dict[tuple, str | None] = {}

    def inhibit(self, decision: Decision, notifications: list[Notification]) -> list[Notification]:
        """``notifications`` with those an inhibition mutes stored ``muted``, naming it and its source."""
        if not self.inhibits or not notifications:
            return notifications
        return mute_where(notifications, lambda note: self.why(decision, note))

    def why(self, decision: Decision, note: Notification) -> str | None:
        """The first inhibition that aims at ``note`` and whose source holds at the decision's
        instant, in words; None if none does."""
        values = {"service": decision.service, "target": decision.target, "subject": decision.subject,
                  "kind": decision.kind, "activity": note.activity, "recipient": note.recipient}
        for inhibit in self.inhibits:
            if not inhibit.aims_at(values):
                continue
            key = (inhibit.id, decision.at, decision.service, decision.subject, decision.target)
            if key not in self._held:
                self._held[key] = self._holding(inhibit, decision)
            if self._held[key] is not None:
                return f"inhibited by {inhibit.id} ({inhibit.where}): {self._held[key]}"
        return None

    def _holding(self, inhibit: Inhibit, decision: Decision) -> str | None:
        """What holds ``inhibit`` for ``decision`` at its instant, in words; None if nothing."""
        service = decision.service if "service" in inhibit.equal else None
        subject = decision.subject if "subject" in inhibit.equal else None
        if any(name in inhibit.equal and getattr(decision, name) is None for name in ("service", "subject")):
            return None                     # nothing to be equal to
        if inhibit.breach is not None:
            return self._breached(inhibit.breach, decision, service)
        assert inhibit.fact is not None     # a source is a breach or a fact (schemas/rules.py)
        own = (decision.service, decision.subject)
        if inhibit.service is not None and service not in (None, inhibit.service):
            return None
        for fact in self.store.unended_facts([inhibit.fact["type"]], list(inhibit.until), decision.at,
                                             service or inhibit.service, subject):
            if (fact.get("service"), fact.get("subject")) != own and _matches(inhibit.fact, fact):
                return (f"{fact['type']} {fact['subject']} ({fact.get('service')}) since {fact['time']}, "
                        f"not yet {' or '.join(inhibit.until)}")
        return None

    def _breached(self, target: Target, decision: Decision, service: str | None) -> str | None:
        """The target's newest breach, if its service has stayed down from it to the
        decision's instant: some subject down all along (a window clock counts down time
        while any subject is down, engine/eval/clock.py)."""
        if (service is not None and service != target.service) or decision.target == target.id:
            return None
        found = self.store.standing_decisions("breach", target.id, decision.at, target.service, limit=1)
        if not found:
            return None
        breach = found[0]
        at = parse_instant(breach["at"])
        down_spec, up_spec = target.spec["down"], target.spec["up"]
        down = {fact["subject"] for fact in self.store.unended_facts([down_spec["type"]], [up_spec["type"]], at,
                                                                      target.service) if _matches(down_spec, fact)}
        for fact in self.store.facts_between([down_spec["type"], up_spec["type"]], at, decision.at, target.service):
            if fact["type"] == up_spec["type"] and _matches(up_spec, fact):
                down.discard(fact.get("subject"))
                if not down:
                    return None
            if fact["type"] == down_spec["type"] and _matches(down_spec, fact):
                down.add(fact.get("subject"))
        if not down:
            return None
        return (f"{target.id} breached at {breach['at']} and {target.service} is still down "
                f"({', '.join(sorted(str(s) for s in down))})")


def _matches(pattern: dict[str, Any], fact: dict[str, Any]) -> bool:
    return failure(pattern.get("where") or {}, lookup(fact)) is None
