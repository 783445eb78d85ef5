"""``escalation.acknowledged``: an answered escalation level repeats no more, in its
clock's cycle only, and a late acknowledgement rebuilds the clock as if on time."""
from __future__ import annotations

import textwrap

from engine.eval.engine import Engine
from engine.lang.loader import load_texts
from schemas.values import parse_instant

RULES = textwrap.dedent("""\
    kind: Service
    id: email
    roles: {service_level_manager: slm-mail@example.org, service_owner: owner@example.org}
    ---
    kind: Raci
    id: raci
    activities:
      breach-handling: {service_level_manager: R, service_owner: A}
      major-breach: {service_level_manager: R, service_owner: A}
    ---
    kind: Agreement
    id: sla-email
    type: SLA
    service: email
    targets:
      - id: p1-response
        clock:
          applies_to: {type: incident.opened, where: {priority: P1}}
          stop: incident.acknowledged
          restart: incident.reopened
        goal: 15m
    ---
    kind: Escalation
    id: p1-escalation
    applies_to: {targets: [p1-response]}
    levels:
      - {at: 100%, activity: breach-handling}
      - {at: 100% + 2h, activity: major-breach, repeat: 4h}
    """)


def fact(ident, kind, time, **data):
    return {"id": ident, "source": "test", "type": kind, "time": time, "subject": "INC-1", "service": "email",
            "data": data}


def majors(engine) -> list[tuple[int, str]]:
    return [(d.cycle, d.at.strftime("%H:%M")) for d in engine.decisions
            if d.activity == "major-breach" and d.kind == "escalation"]


def ack(ident, time, cycle=1, level="100% + 2h", activity="major-breach"):
    return fact(ident, "escalation.acknowledged", time, target="p1-response", cycle=cycle, level=level,
                activity=activity, by="slm-mail@example.org")


def test_an_acknowledged_level_stops_repeating_in_its_cycle():
    engine = Engine(load_texts({"rules.yaml": RULES}))
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T12:00:00Z"))        # major breach at 11:15, repeats every 4h
    outcome = engine.apply(ack("a1", "2026-11-02T12:00:00Z"))
    assert outcome.moved == 1 and outcome.decisions == []
    engine.advance(parse_instant("2026-11-03T06:00:00Z"))
    assert majors(engine) == [(1, "11:15")]
    engine.apply(fact("f2", "incident.reopened", "2026-11-03T06:00:00Z"))    # a new cycle repeats again
    engine.advance(parse_instant("2026-11-03T17:00:00Z"))
    assert majors(engine) == [(1, "11:15"), (2, "08:15"), (2, "12:15"), (2, "16:15")]


def test_an_acknowledgement_of_another_level_or_cycle_changes_nothing():
    engine = Engine(load_texts({"rules.yaml": RULES}))
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.apply(ack("a1", "2026-11-02T12:00:00Z", cycle=2))
    engine.apply(ack("a2", "2026-11-02T12:01:00Z", level="100%", activity="breach-handling"))
    engine.advance(parse_instant("2026-11-02T20:00:00Z"))
    assert majors(engine) == [(1, "11:15"), (1, "15:15"), (1, "19:15")]


def test_a_late_acknowledgement_retracts_the_repeats_after_it():
    engine = Engine(load_texts({"rules.yaml": RULES}))
    engine.apply(fact("f1", "incident.opened", "2026-11-02T09:00:00Z", priority="P1"))
    engine.advance(parse_instant("2026-11-02T20:00:00Z"))
    assert majors(engine) == [(1, "11:15"), (1, "15:15"), (1, "19:15")]
    engine.apply(ack("a1", "2026-11-02T12:00:00Z"))                 # acknowledged at noon, posted at 20:00
    retracted = {d.data["retracts"] for d in engine.decisions if d.kind == "retracted"}
    late = [d.id for d in engine.decisions if d.activity == "major-breach" and d.at.hour in (15, 19)]
    assert retracted == set(late)
