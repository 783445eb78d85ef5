"""``kind: Inhibit``: loaded and checked with the rules, every mistake at file:line:column."""
from __future__ import annotations

import pytest

from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from tests.support import PORTFOLIO

GOOD = """\
kind: Inhibit
id: relay
source:
  fact: {type: incident.opened, where: {priority: P1, component: relay}}
  until: [incident.resolved, incident.reopened]
target: {kind: escalation, target: "email-p?-*"}
equal: [service]
"""


def load(text: str):
    files = {str(p.relative_to(PORTFOLIO)): p.read_text() for p in sorted(PORTFOLIO.rglob("*.yaml"))}
    return load_texts({**files, "policies/inhibit.yaml": text})


def problems_of(text: str) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load(text)
    return [str(p) for p in caught.value.problems]


def test_an_inhibit_loads_with_its_source_matchers_and_place():
    inhibit = load(GOOD).inhibits["relay"]
    assert inhibit.fact == {"type": "incident.opened", "where": {"priority": "P1", "component": "relay"}}
    assert inhibit.until == ("incident.resolved", "incident.reopened") and inhibit.equal == ("service",)
    assert inhibit.where == "policies/inhibit.yaml:1"
    assert inhibit.aims_at({"kind": "escalation", "target": "email-p1-response"})
    assert not inhibit.aims_at({"kind": "escalation", "target": "hosting-p1-response"})
    assert not inhibit.aims_at({"kind": "escalation"})          # a field the decision lacks never matches


def test_a_breach_source_loads_its_availability_target():
    inhibit = load("kind: Inhibit\nid: down\nsource: {breach: email-availability}\ntarget: {service: email}\n"
                   ).inhibits["down"]
    assert inhibit.breach is not None and inhibit.breach.id == "email-availability" and inhibit.fact is None


@pytest.mark.parametrize("change, expected", [
    (("incident.opened", "incident.opend"), "policies/inhibit.yaml:4:16: fact type 'incident.opend' is not "
                                            "declared in the fact catalogue: did you mean 'incident.opened'?"),
    (("component: relay", "componnt: relay"), "policies/inhibit.yaml:4:55: where componnt: incident.opened "
                                              "facts have no field 'componnt'"),
    (("incident.resolved,", "incident.solved,"), "policies/inhibit.yaml:5:11: fact type 'incident.solved'"),
    (('"email-p?-*"', "emial-p1-response"), "policies/inhibit.yaml:6:36: target: 'emial-p1-response' matches "
                                            "no target the rules know: did you mean 'email-p1-response'?"),
    (("kind: escalation", "kind: escalaton"), "policies/inhibit.yaml:6:16: kind: 'escalaton' matches no kind"),
    (("kind: escalation", "kind: '*'"), "policies/inhibit.yaml:6:16: kind: '*' matches everything"),
    (("kind: escalation", "severity: high"), "policies/inhibit.yaml:6:"),
    (("equal: [service]", "equal: [team]"), "policies/inhibit.yaml:7:9: equal: 'team' is not one of: service, subject"),
    (("  until: [incident.resolved, incident.reopened]\n", ""), "policies/inhibit.yaml:4:"),
])
def test_each_mistake_is_an_error_at_its_place(change, expected):
    problems = problems_of(GOOD.replace(*change))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize("text, expected", [
    ("source: {breach: email-p1-response}\ntarget: {service: email}\n",
     "policies/inhibit.yaml:3:18: breach: 'email-p1-response' is a duration target"),
    ("source: {breach: email-availabilty}\ntarget: {service: email}\n",
     "policies/inhibit.yaml:3:18: breach: unknown target 'email-availabilty': did you mean 'email-availability'?"),
    ("source: {breach: email-availability}\ntarget: {service: emial}\n",
     "policies/inhibit.yaml:4:19: service: 'emial' matches no service"),
    ("source: {breach: email-availability}\ntarget: {}\n",
     "policies/inhibit.yaml:4:9: target: name at least one matcher"),
    ("source: {breach: email-availability}\ntarget: {service: email}\nequal: [subject]\n",
     "policies/inhibit.yaml:5:9: equal: a breach of an availability target is its service's"),
    ("source: {breach: email-availability, fact: {type: incident.opened}}\ntarget: {service: email}\n",
     "policies/inhibit.yaml:3:"),
])
def test_a_source_and_its_matchers_must_name_what_the_rules_have(text, expected):
    problems = problems_of("kind: Inhibit\nid: x\n" + text)
    assert len(problems) == 1 and problems[0].startswith(expected), problems
