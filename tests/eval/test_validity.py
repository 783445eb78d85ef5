"""An agreement's ``valid`` period bounds every kind of target (docs/RULES.md, "Renewing
an agreement"): after it, no fact starts a duration clock, moves an availability or
threshold window, or makes one; a window that runs across its end is cut there. And
``slm explain`` (engine.lang.explain) says so for the same facts."""
from __future__ import annotations

from datetime import UTC, datetime

from engine.eval.engine import Engine
from engine.lang.explain import explain
from engine.lang.loader import load_texts

RULES = """
kind: Service
id: email
name: Email
roles: {service_level_manager: slm@example.org, service_owner: owner@example.org}
---
kind: Raci
id: raci
activities:
  breach-handling: {service_level_manager: R, service_owner: A}
---
kind: Agreement
id: sla-email
type: SLA
service: email
valid: {from: 2026-01-01, to: 2026-12-31}
targets:
  - id: response
    clock: {applies_to: {type: incident.opened}, start: incident.opened, stop: incident.acknowledged,
            calendar: 24x7}
    goal: 15m
  - id: availability
    availability:
      down: {type: alert.firing, where: {alertname: EmailDown}}
      up: {type: alert.resolved, where: {alertname: EmailDown}}
      window: month
      exclude: maintenance
    goal: 99.9%
    warn_at: [50%]
  - id: latency
    threshold:
      metric: {name: latency_p95, above: 300}
      window: day
      calendar: 24x7
    goal: 99%
"""
END = datetime(2027, 1, 1, tzinfo=UTC)          # the instant after valid.to (UTC calendars)


def fact(ident, kind, time, subject="INC-1", **data):
    return {"id": ident, "source": "zabbix/prod", "type": kind, "time": time, "subject": subject,
            "service": "email", "data": data}


AFTER = [fact("i1", "incident.opened", "2027-01-05T09:00:00Z"),
         fact("a1", "alert.firing", "2027-01-05T09:00:00Z", subject="mx1", alertname="EmailDown"),
         fact("m1", "metric.sample", "2027-01-05T09:00:00Z", subject="web", name="latency_p95", value=900),
         fact("w1", "maintenance.started", "2027-01-05T09:30:00Z", subject="CHG-1")]


def test_after_its_validity_an_agreement_decides_nothing_for_any_kind_of_target():
    engine = Engine(load_texts({"rules.yaml": RULES}))
    for item in AFTER:
        engine.apply(item)
    engine.advance(datetime(2027, 3, 1, tzinfo=UTC))
    assert engine.decisions == []
    running, stopped = engine.clock_keys()
    assert list(running) == []


def test_a_window_running_across_the_end_of_validity_is_cut_there():
    engine = Engine(load_texts({"rules.yaml": RULES}))
    engine.apply(fact("a0", "alert.firing", "2026-12-31T23:00:00Z", subject="mx1", alertname="EmailDown"))
    engine.apply(fact("m0", "metric.sample", "2026-12-31T23:00:00Z", subject="web", name="latency_p95", value=900))
    engine.advance(datetime(2027, 3, 1, tzinfo=UTC))
    kinds = {(d.target, d.kind) for d in engine.decisions}
    assert ("availability", "breach") in kinds and ("latency", "breach") in kinds    # inside the validity
    assert engine.decisions and all(d.at <= END for d in engine.decisions)
    assert list(engine.clock_keys()[0]) == []                                      # no window after it


def test_explain_agrees_with_the_engine_for_every_kind_of_target():
    ruleset = load_texts({"rules.yaml": RULES})
    engine = Engine(ruleset)
    for item in AFTER[:3]:
        answer = explain(ruleset, item, *engine.clock_keys())
        assert answer["affected"] == []
        reasons = {n["target"]: n["reason"] for n in answer["not_affected"]}
        taken = {"incident.opened": "response", "alert.firing": "availability", "metric.sample": "latency"}
        assert reasons[taken[item["type"]]] == "outside the agreement's valid period (2026-01-01 to 2026-12-31)"
        engine.apply(item)
    assert engine.decisions == []
    inside = {**AFTER[1], "time": "2026-12-05T09:00:00Z"}
    assert explain(ruleset, inside)["affected"] == [{"target": "availability",
                                                      "effect": "takes mx1 down in the month window"}]
