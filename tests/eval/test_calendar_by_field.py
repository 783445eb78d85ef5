"""A ticket's calendar chosen by a field (``calendar: {by, map, default}``), over real
durable_rules: kept by a snapshot, and by a late fact's rebuild, with each decision
naming the calendar that counted (docs/RULES.md, "Calendars per target")."""
from __future__ import annotations

from engine.eval.engine import Engine
from engine.lang.loader import load_rules
from schemas.values import parse_instant
from tests.support import ROOT

RULES = load_rules(ROOT / "fixtures" / "rulesets" / "follow-the-sun")


def fact(ident, kind, time, **data):
    return {"id": ident, "source": "test", "type": kind, "time": time, "subject": "INC-B",
            "service": "global-desk", "data": data}


OPENED = fact("b1", "incident.opened", "2026-11-09T08:00:00Z", priority="P2", region="emea")
HANDED = [fact("b2", "incident.pending", "2026-11-09T10:00:00Z", region="amer"),
          fact("b3", "incident.resumed", "2026-11-09T10:00:00Z", region="amer")]


def breaches(engine) -> list[tuple]:
    retracted = {d.data.get("retracts") for d in engine.decisions if d.kind == "retracted"}
    return [(d.at.strftime("%H:%M"), d.data.get("calendar")) for d in engine.decisions
            if d.kind == "breach" and d.target == "global-p2-resolution" and d.id not in retracted]


def test_a_snapshot_keeps_the_ticket_s_calendar():
    engine = Engine(RULES)
    for f in [OPENED, *HANDED]:
        engine.apply(f)
    engine.advance(parse_instant("2026-11-09T12:00:00Z"))
    restored = Engine.restore(engine.ruleset, engine.snapshot())
    restored.advance(parse_instant("2026-11-10T00:00:00Z"))
    assert breaches(restored) == [("19:00", "new-york-office")]       # 2h in London, 6h in New York


def test_a_late_hand_over_rebuilds_the_clock_on_the_new_calendar():
    engine = Engine(RULES)
    engine.apply(OPENED)
    engine.advance(parse_instant("2026-11-09T17:00:00Z"))              # London's 8h: breached at 16:00
    assert breaches(engine) == [("16:00", "london-office")]
    for f in HANDED:                                                   # posted late
        engine.apply(f)
    engine.advance(parse_instant("2026-11-10T00:00:00Z"))
    assert breaches(engine) == [("19:00", "new-york-office")]
