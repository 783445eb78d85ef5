"""Rule changes never rewrite the past (docs/RULES.md, "Rule changes"): a running clock
finishes under the version it started with, or takes the new definition from the cut-over
(`on_change: reprice`), or ends with a `cancelled` decision (`on_change: cancel`, target
removed); nothing is back-dated and nothing decided is decided again."""
from __future__ import annotations

import textwrap

from engine.eval.engine import Engine
from engine.lang.loader import load_texts
from schemas.values import parse_instant

RULES = textwrap.dedent("""\
    kind: Service
    id: email
    roles: {service_level_manager: slm@example.org}
    ---
    kind: Raci
    id: raci
    activities:
      breach-handling: {service_level_manager: R/A}
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
        goal: 15m
        warn_at: [50%]
        on_change: ON_CHANGE
      - id: availability
        availability:
          down: {type: alert.firing, where: {alertname: EmailDown}}
          up: {type: alert.resolved, where: {alertname: EmailDown}}
          window: month
        goal: 99.9%
        on_change: ON_CHANGE
    """)


def rules(on_change: str = "keep", changes: dict[str, str] | None = None) -> object:
    text = RULES.replace("ON_CHANGE", on_change)
    for old, new in (changes or {}).items():
        assert old in text
        text = text.replace(old, new)
    return load_texts({"rules.yaml": text})


def without_p1_response(on_change: str) -> object:
    text = RULES.replace("ON_CHANGE", on_change)
    return load_texts({"rules.yaml": text[:text.index("  - id: p1-response")]
                                     + text[text.index("  - id: availability"):]})


def at(text: str):
    return parse_instant(f"2026-11-02T{text}Z")


def opened(engine, ident="f1", subject="INC-1", time="09:00:00"):
    engine.apply({"id": ident, "source": "t", "type": "incident.opened", "time": f"2026-11-02T{time}Z",
                  "subject": subject, "service": "email", "data": {"priority": "P1"}})


def of(engine, subject="INC-1", target="p1-response"):
    return [(d.kind, d.level, d.at.strftime("%H:%M:%S"), d.rule["ruleset"]) for d in engine.decisions
            if d.subject == subject and d.target == target]


def test_a_running_clock_finishes_under_the_version_it_started_with():
    before, after = rules(), rules(changes={"goal: 15m": "goal: 2h"})
    engine = Engine(before)
    opened(engine)
    engine.advance(at("09:05:00"))
    assert engine.cut_over(after, at("09:05:00")).decisions == []
    opened(engine, "f2", "INC-2", "09:06:00")
    engine.advance(at("12:00:00"))
    assert of(engine) == [("warning", "50%", "09:07:30", before.version),
                          ("breach", "100%", "09:15:00", before.version)]
    assert of(engine, "INC-2") == [("warning", "50%", "10:06:00", after.version),
                                   ("breach", "100%", "11:06:00", after.version)]


def test_a_change_after_a_breach_adds_nothing_and_changes_nothing():
    before = rules()
    engine = Engine(before)
    opened(engine)
    engine.advance(at("09:20:00"))
    made = [d.as_dict() for d in engine.decisions]
    for goal in ("2h", "36m"):                     # the goal past the breach, then past now
        engine.cut_over(rules(changes={"goal: 15m": f"goal: {goal}"}), at("09:25:00"))
        engine.advance(at("11:00:00"))
    assert [d.as_dict() for d in engine.decisions] == made
    (clock,) = [c for c in engine.clocks() if c["target"] == "p1-response"]
    assert clock["budget"] == "15m" and clock["remaining"] == "0s"


def test_reprice_decides_a_passed_new_level_at_the_cut_over_never_earlier():
    before = rules("reprice")
    after = rules("reprice", {"warn_at: [50%]": "warn_at: [10%, 50%]"})
    assert after.targets["p1-response"].warn_at != before.targets["p1-response"].warn_at
    engine = Engine(before)
    opened(engine)
    engine.advance(at("09:05:00"))
    changed = engine.cut_over(after, at("09:05:00")).decisions
    assert [(d.kind, d.level, d.at) for d in changed] == [("warning", "10%", at("09:05:00"))]
    assert f"rules:{after.version}" in changed[0].because
    engine.advance(at("10:00:00"))
    assert of(engine)[1:] == [("warning", "50%", "09:07:30", after.version),
                              ("breach", "100%", "09:15:00", after.version)]


def test_reprice_to_a_goal_already_exceeded_breaches_at_the_cut_over():
    engine = Engine(rules("reprice"))
    opened(engine)
    engine.advance(at("09:06:00"))
    after = rules("reprice", {"goal: 15m": "goal: 4m"})
    changed = engine.cut_over(after, at("09:06:00")).decisions
    assert [(d.kind, d.at) for d in changed if d.target == "p1-response"] == [("warning", at("09:06:00")),
                                                                               ("breach", at("09:06:00"))]
    assert changed[0].level == "50%"                 # the new 50% (2m) had passed, not yet decided


def test_a_removed_target_that_says_cancel_ends_its_clocks_with_a_cancelled_decision():
    before, after = rules("cancel"), without_p1_response("cancel")
    engine = Engine(before)
    opened(engine)
    engine.advance(at("09:05:00"))
    changed = engine.cut_over(after, at("09:05:00")).decisions
    assert [(d.kind, d.target, d.at, d.data["counted"]) for d in changed] == [
        ("cancelled", "p1-response", at("09:05:00"), parse_duration("5m"))]
    engine.advance(at("10:00:00"))
    assert [k for k, *_ in of(engine)] == ["cancelled"]       # no warning, no breach after it
    assert not [c for c in engine.clocks() if c["target"] == "p1-response"]


def test_a_removed_target_that_keeps_finishes_under_its_version():
    before, after = rules(), without_p1_response("keep")
    engine = Engine(before)
    opened(engine)
    engine.cut_over(after, at("09:05:00"))
    engine.apply({"id": "a1", "source": "t", "type": "incident.acknowledged", "time": "2026-11-02T09:10:00Z",
                  "subject": "INC-1", "service": "email", "data": {}})
    assert of(engine)[-1] == ("met", None, "09:10:00", before.version)


def test_a_late_fact_is_evaluated_under_its_clocks_version():
    before, after = rules(), rules(changes={"goal: 15m": "goal: 2h"})
    engine = Engine(before)
    opened(engine)
    engine.advance(at("09:20:00"))                   # breached at 09:15 under 15m
    engine.cut_over(after, at("09:20:00"))
    engine.apply({"id": "a1", "source": "t", "type": "incident.acknowledged", "time": "2026-11-02T09:12:00Z",
                  "subject": "INC-1", "service": "email", "data": {}})
    kinds = [(k, t, v) for k, _, t, v in of(engine)]
    assert ("retracted", "09:20:00", before.version) in kinds and ("met", "09:12:00", before.version) in kinds


def test_an_availability_window_running_at_the_change_keeps_its_budget():
    before, after = rules(), rules(changes={"goal: 99.9%": "goal: 99%"})
    engine = Engine(before)
    engine.apply({"id": "d1", "source": "am", "type": "alert.firing", "time": "2026-11-02T09:00:00Z",
                  "subject": "fp1", "service": "email", "data": {"alertname": "EmailDown"}})
    engine.cut_over(after, at("09:05:00"))
    engine.apply({"id": "u1", "source": "am", "type": "alert.resolved", "time": "2026-11-02T09:30:00Z",
                  "subject": "fp1", "service": "email", "data": {"alertname": "EmailDown"}})
    engine.advance(parse_instant("2026-12-01T00:30:00Z"))
    november = [d for d in engine.decisions if d.target == "availability" and d.subject == "2026-11"]
    assert [(d.kind, d.rule["ruleset"]) for d in november] == [("met", before.version)]
    assert november[-1].data["budget"] == parse_duration("43m12s")      # 0.1% of November, not 1%


def test_a_snapshot_taken_between_versions_restores_both():
    before, after = rules(), rules(changes={"goal: 15m": "goal: 2h"})
    engine = Engine(before, history=False)
    opened(engine)
    engine.cut_over(after, at("09:05:00"))
    opened(engine, "f2", "INC-2", "09:06:00")
    restored = Engine.restore(after, engine.snapshot(), versions={before.version: before}.get)
    for each in (engine, restored):
        each.advance(at("12:00:00"))
    assert restored.clocks() == engine.clocks()
    assert set(restored.versions) == set(engine.versions) == {before.version, after.version}


def parse_duration(text):
    from schemas.values import parse_duration as parse
    return parse(text)
