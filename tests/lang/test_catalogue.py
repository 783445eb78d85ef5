"""The fact catalogue (``kind: Facts``): its own errors, the rules checked against it, and
posted facts checked against it through the HTTP API, on SQLite and PostgreSQL."""
from __future__ import annotations

import shutil
import textwrap

import pytest

from api.app import create_app
from engine.lang.catalogue import fact_problems
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules, load_texts
from engine.scenarios import RuleSetCache, run_file
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, RULES, fact, fact_count

SERVICE = """\
kind: Service
id: payroll
roles: {service_owner: o@example.org, service_level_manager: m@example.org}
---
kind: Raci
id: raci
activities:
  breach-handling: {service_level_manager: R, service_owner: A}
---
kind: Escalation
id: esc
applies_to: {targets: [p1-response]}
levels: [{at: 100%, activity: breach-handling}]
---
kind: Agreement
id: sla
type: SLA
service: payroll
targets:
  - id: p1-response
    clock:
      applies_to: {type: incident.opened, where: {priority: P1}}
      stop: incident.acknowledged
    goal: 30m
"""

CATALOGUE = """\
kind: Facts
id: facts
types:
  incident.opened:
    data:
      priority: {type: enum, values: [P1, P2, P3, P4], required: true}
      impact: integer
      labels: object
  incident.acknowledged: {}
"""


def load(*texts: str):
    return load_texts({f"f{n}.yaml": textwrap.dedent(text) for n, text in enumerate(texts)})


def errors(*texts: str) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load(*texts)
    return [str(p) for p in caught.value.problems]


# ---- the catalogue's own errors --------------------------------------------------------

def test_a_catalogue_with_mistakes_is_refused_at_file_line_column():
    found = errors(SERVICE, """\
        kind: Facts
        id: facts
        types:
          incident.opened:
            data:
              priority: {type: enum}
              impact: decimal
          decision.breach: {}
          incident opened: {}
        """)
    assert found == [
        "f1.yaml:6:17: values: an enum field lists its 'values'",
        "f1.yaml:7:15: type: 'decimal' is not one of: string, number, integer, boolean, time, enum, object, list",
        "f1.yaml:8:20: decision.breach: types decision.* and clock.* are derived by the engine and need no "
        "declaration",
        "f1.yaml:9:20: incident opened: not a dotted type name (example: incident.opened)",
    ]


def test_a_type_declared_twice_or_a_contradicting_switch_is_an_error():
    found = errors(SERVICE, CATALOGUE + "undeclared: reject\n",
                   "kind: Facts\nid: more\nundeclared: accept\ntypes:\n  incident.opened: {}\n")
    assert found == ["f2.yaml:3:13: undeclared: 'accept' contradicts 'reject' at f1.yaml:10",
                     "f2.yaml:5:3: fact type 'incident.opened' is already declared at f1.yaml:4"]


# ---- the rules against the catalogue ----------------------------------------------------

def test_an_undeclared_type_field_or_enum_value_in_the_rules_is_an_error_with_a_guess():
    rules = SERVICE.replace("{priority: P1}", "{priorty: P1}").replace("stop: incident.acknowledged",
                                                                       "stop: incident.acknowledgd")
    rules += """\
  - id: p5-response
    clock:
      applies_to: {type: incident.opened, where: {priority: {in: [P1, P5]}, impact: {gt: 2}}}
      stop: {type: incident.closed}
    goal: 1h
"""
    found = errors(rules, CATALOGUE)
    assert found == [
        "f0.yaml:22:51: where priorty: incident.opened facts have no field 'priorty' in the fact catalogue: "
        "did you mean 'priority'?",
        "f0.yaml:23:13: fact type 'incident.acknowledgd' is not declared in the fact catalogue: did you mean "
        "'incident.acknowledged'?",
        "f0.yaml:27:71: where priority: 'P5' is not one of: P1, P2, P3, P4 (the catalogue's "
        "incident.opened.priority)",
        "f0.yaml:28:13: fact type 'incident.closed' is not declared in the fact catalogue (declared: "
        "incident.acknowledged, incident.opened)",
    ]


def test_rule_patterns_and_threshold_targets_are_checked_but_engine_types_are_not():
    rules = SERVICE + """\
  - id: latency
    metric: {name: latency_p95, above: 300, where: {regoin: eu}}
    goal: 99%
---
kind: Rule
id: noisy
when:
  - {as: b, type: decision.breach, where: {agreement_type: SLA}}
  - {type: clock.running, where: {subject: $b.subject}}
  - {type: incident.opened, where: {labels.team: mail, impact: "high"}}
then: [{decide: {kind: noted}}]
"""
    found = errors(rules, CATALOGUE)
    assert found == [
        "f0.yaml:26:20: a threshold target reads 'metric.sample' facts, which the fact catalogue does not "
        "declare (declared: incident.acknowledged, incident.opened)",
        "f0.yaml:34:64: where impact: expected a whole number, got the string 'high' (the catalogue's "
        "incident.opened.impact)",
    ]
    declared = CATALOGUE + "  metric.sample:\n    data: {name: string, value: number, region: [eu, us]}\n"
    assert errors(rules, declared) == [
        "f0.yaml:26:53: where regoin: metric.sample facts have no field 'regoin' in the fact catalogue: "
        "did you mean 'region'?",
        "f0.yaml:34:64: where impact: expected a whole number, got the string 'high' (the catalogue's "
        "incident.opened.impact)",
    ]


def test_without_a_catalogue_everything_loads_as_before():
    typo = SERVICE.replace("stop: incident.acknowledged", "stop: incident.acknowledgd")
    ruleset = load(typo)
    assert ruleset.catalogue is None
    assert fact_problems(ruleset.catalogue, fact("f1", type="anything.at.all", impact="x")) == {}


def test_the_shipped_rules_declare_every_type_and_field_they_use():
    ruleset = load_rules(RULES)
    assert ruleset.catalogue is not None and ruleset.catalogue.undeclared == "reject"
    assert {"incident.opened", "alert.firing", "metric.sample", "review.completed"} <= set(ruleset.catalogue.types)


# ---- facts against the catalogue ---------------------------------------------------------

def test_fact_problems_name_each_field_with_what_was_expected():
    catalogue = load(SERVICE, CATALOGUE).catalogue
    assert fact_problems(catalogue, fact("f1", priority="P1", impact=3, extra="kept")) == {}
    assert fact_problems(catalogue, fact("f1", priority="p1", impact=2.5)) == {
        "data.priority": ["'p1' is not one of: P1, P2, P3, P4 (the catalogue's incident.opened.priority)"],
        "data.impact": ["expected a whole number, got the number 2.5 (the catalogue's incident.opened.impact)"]}
    assert fact_problems(catalogue, fact("f1")) == {
        "data.priority": ["required for incident.opened facts (one of P1, P2, P3, P4)"]}
    assert fact_problems(catalogue, fact("f1", type="incident.openned")) == {
        "type": ["'incident.openned' is not a fact type the catalogue declares (did you mean 'incident.opened'? "
                 "declared: incident.acknowledged, incident.opened)"]}
    accepting = load(SERVICE, CATALOGUE + "undeclared: accept\n").catalogue
    assert fact_problems(accepting, fact("f1", type="incident.openned")) == {}


@pytest.fixture
def api(url, wall, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    store = Store.open(url)
    service = SlmService(store, rules, now=wall)
    service.start(background=False)
    token = store.add_token("monitor")
    wall.set("2026-11-05T04:00:00Z")
    client = create_app(service).test_client()

    def post(body):
        return client.post("/v1/facts", json=body, headers={"Authorization": f"Bearer {token}"})
    yield type("Api", (), {"post": post, "store": store, "service": service, "rules": rules})
    service.stop()
    store.close()


def test_ingest_refuses_a_fact_the_catalogue_refuses_and_stores_nothing(api):
    good = fact("f1", time="2026-11-05T03:00:00Z", priority="P1")
    bad_enum = fact("f2", time="2026-11-05T03:00:00Z", subject="INC-2", priority="P9")
    no_name = fact("f3", type="alert.firing", time="2026-11-05T03:00:00Z", subject="fp1", severity="critical")
    sample = fact("f4", type="metric.sample", time="2026-11-05T03:00:00Z", service="hosting", subject="web",
                  name="latency_p95", value="slow")
    typo = fact("f5", type="incident.acknowlegded", time="2026-11-05T03:05:00Z")
    refused = api.post([good, bad_enum, no_name, sample, typo])
    assert refused.status_code == 422
    assert refused.json["errors"] == {
        "[1].data.priority": ["'P9' is not one of: P1, P2, P3, P4 (the catalogue's incident.opened.priority)"],
        "[2].data.alertname": ["required for alert.firing facts (a string)"],
        "[3].data.value": ["expected a number, got the string 'slow' (the catalogue's metric.sample.value)"],
        "[4].type": [refused.json["errors"]["[4].type"][0]],
    }
    assert "did you mean 'incident.acknowledged'?" in refused.json["errors"]["[4].type"][0]
    assert fact_count(api.store) == 0 and api.store.decision_count() == 0
    accepted = api.post([good, fact("f6", time="2026-11-05T03:01:00Z", subject="INC-3", priority="P2",
                                    ticket_url="https://itsm.example.org/INC-3")])
    assert accepted.status_code == 200 and accepted.json["accepted"] == 2      # undeclared fields are kept


def test_undeclared_accept_lets_undeclared_types_through(api):
    catalogue = api.rules / "org" / "facts.yaml"
    catalogue.write_text(catalogue.read_text().replace("undeclared: reject", "undeclared: accept"))
    api.service.rules.reload()
    response = api.post(fact("f1", type="change.approved", time="2026-11-05T03:00:00Z"))
    assert response.status_code == 200 and response.json["accepted"] == 1
    assert api.post(fact("f2", time="2026-11-05T03:00:00Z", priority="P9")).status_code == 422


def test_a_scenario_fact_the_catalogue_refuses_fails_the_scenario(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(textwrap.dedent(f"""\
        name: lower-case priority
        rules: {PORTFOLIO}
        facts:
          - {{id: f1, type: incident.opened, time: 2026-11-16T09:00:00Z, subject: INC-1, service: email,
             data: {{priority: p1}}}}
        """))
    [result] = run_file(scenario, PORTFOLIO, RuleSetCache())
    assert result.failures == [f"{scenario}:4:5: fact 1 rejected: data.priority: 'p1' is not one of: "
                               "P1, P2, P3, P4 (the catalogue's incident.opened.priority)"]
