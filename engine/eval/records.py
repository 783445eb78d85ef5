"""Building decision records: from a clock's reading, for a retraction, and the fact form in
which a decision re-enters durable_rules.

Decision ids are deterministic: the same rule, kind, target, subject, level, cycle (and
revision, once a late fact superseded an earlier one) give the same id, so replays and
restarts never duplicate a decision or its notifications.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.eval.clock import Reading
from engine.lang.model import Origin, Target
from schemas.records import Decision
from schemas.values import format_instant, format_whole_duration


def decision_id(identity: Sequence[object]) -> str:
    text = "|".join(["" if part is None else str(part) for part in identity])
    return "dec_" + hashlib.sha256(text.encode()).hexdigest()[:24]


def rule_ref(rule_id: str, origin: Origin, version: str) -> dict[str, Any]:
    """Which definition decided: its id, file, line and the rule-set version."""
    return {"id": rule_id, "file": origin.file, "line": origin.line, "ruleset": version}


def clock_decision(target: Target, subject: str, clock_key: str, reading: Reading, revision: int,
                   version: str) -> Decision:
    level = reading.source
    kind = reading.kind
    if kind == "escalation" and level is not None:       # an escalation mark carries its level
        rule_id, origin = level.escalation, level.origin
    else:
        rule_id, origin = target.id, target.origin
    identity = [rule_id, kind, target.id, subject, reading.level, reading.cycle,
                reading.activity, reading.repeat, revision]
    agreement = target.agreement
    data: dict[str, object] = {"counted": reading.counted, "budget": reading.budget, "paused": reading.paused}
    if isinstance(target.spec.get("calendar"), dict):
        data["calendar"] = reading.calendar
    if reading.figures is not None:
        data["figures"] = reading.figures
    return Decision(
        id=decision_id(identity), kind=kind, target=target.id, subject=subject, service=agreement.service,
        agreement=agreement.id, at=reading.at, shadow=agreement.shadow, data=data,
        rule=rule_ref(rule_id, origin, version), because=[*reading.because, f"clock:{clock_key}"],
        agreement_type=agreement.type, cycle=reading.cycle, level=reading.level, activity=reading.activity,
        repeat=reading.repeat or None)


def retraction(decision: Decision, at: datetime, reason: str, because: list[str]) -> Decision:
    """The record that supersedes ``decision`` (which stays in the log as it was)."""
    return Decision(
        id=decision_id(["retracted", decision.id]), kind="retracted", target=decision.target,
        subject=decision.subject, service=decision.service, agreement=decision.agreement, at=at,
        shadow=decision.shadow, data={"retracts": decision.id, "reason": reason}, rule=decision.rule,
        because=[f"decision:{decision.id}", *because], agreement_type=decision.agreement_type)


_ENVELOPE = {"id", "kind", "subject", "service", "at", "data", "rule", "because", "message", "notice"}


def decision_fact(decision: Decision) -> dict[str, Any]:
    """A decision as a ``decision.<kind>`` fact for durable_rules: its envelope, and its other
    fields (target, agreement, level, …) and its data in ``data``. Prose (``message``) stays
    out: rules match on what was decided, not on how it was worded."""
    data = {name: getattr(decision, name) for name in Decision.__slots__
            if name not in _ENVELOPE and getattr(decision, name) is not None}
    for key, value in decision.data.items():
        if key not in data:
            data[key] = format_whole_duration(value) if hasattr(value, "total_seconds") else value
    at = format_instant(decision.at)
    fact = {"sid": "0", "id": f"d:{decision.id}", "fid": decision.id, "source": "slm",
            "type": "decision." + decision.kind, "ts": decision.at.timestamp(), "time": at, "data": data}
    if decision.subject is not None:
        fact["subject"] = decision.subject
    if decision.service is not None:
        fact["service"] = decision.service
    return fact


def posted_fact(fact: dict[str, Any], key: str) -> dict[str, Any]:
    """A loaded fact as durable_rules is given it, under ``key`` (durable_rules' own id;
    rules read ``fid``), with event time also as a number (``ts``) for comparisons."""
    posted = {"sid": "0", "id": key, "fid": fact["id"], "source": fact["source"], "type": fact["type"],
              "ts": fact["time"].timestamp(), "time": format_instant(fact["time"]), "data": fact["data"]}
    for name in ("subject", "service"):
        if fact.get(name) is not None:
            posted[name] = fact[name]
    return posted
