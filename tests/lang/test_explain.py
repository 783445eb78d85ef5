"""Explain: what a fact does to the clocks of its service, and why not, from the model."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
from engine.lang.explain import explain
from engine.lang.loader import load_rules
from tests.support import PORTFOLIO, ROOT

RULES = load_rules(PORTFOLIO)


def fact(type_="incident.opened", priority="P1", time="2026-11-16T09:00:00Z", subject="INC-9"):
    return {"id": "f1", "type": type_, "time": time, "subject": subject, "service": "email",
            "data": {"priority": priority}}


def reasons(answer) -> dict:
    return {item["target"]: item["reason"] for item in answer["not_affected"]}


def effects(answer) -> dict:
    return {item["target"]: item["effect"] for item in answer["affected"]}


def test_why_did_my_p1_not_start_a_clock():
    lower = explain(RULES, fact(priority="p1"))
    assert reasons(lower)["email-p1-response"] == 'applies_to: where priority: "p1" ≠ "P1"'
    assert not any(t.startswith("email-p1") for t in effects(lower))
    typo = explain(RULES, fact(type_="incident.openned"))
    assert typo["affected"] == []
    assert "did you mean 'incident.opened'?" in reasons(typo)["email-p1-response"]
    early = explain(RULES, fact(time="2025-12-01T09:00:00Z"))
    assert reasons(early)["email-p1-response"] == "outside the agreement's valid period (from 2026-01-01)"
    good = explain(RULES, fact())
    assert effects(good)["email-p1-response"].startswith("starts the clock of INC-9")
    assert reasons(good)["email-p2-response"] == 'applies_to: where priority: "P1" ≠ "P2"'


def test_a_fact_after_an_agreements_term_names_the_term():
    march = load_rules(ROOT / "fixtures" / "rulesets" / "valid-period")
    after = explain(march, {**fact(time="2026-04-01T00:30:00Z"), "service": "payroll"})
    assert reasons(after)["payroll-resolution"] == "outside the agreement's valid period (2026-03-01 to 2026-03-31)"
    within = explain(march, {**fact(time="2026-03-31T23:30:00Z"), "service": "payroll"})
    assert effects(within)["payroll-resolution"].startswith("starts the clock of INC-9")


def test_with_the_running_clocks_known_a_stop_without_a_clock_says_so():
    stop = fact(type_="incident.acknowledged")
    assert reasons(explain(RULES, stop, running=set()))["email-p1-response"] == "no running clock for INC-9 to stop"
    answer = explain(RULES, stop, running={"email-p1-response/INC-9"})
    assert effects(answer)["email-p1-response"] == "stops the clock of INC-9"


def test_unknown_service():
    answer = explain(RULES, {**fact(), "service": "mail"})
    assert "service 'mail' is not defined" in answer["reason"]


def test_slm_explain_prints_the_answer():
    result = CliRunner().invoke(main, ["explain", json.dumps(fact(priority="p1")), "--rules", str(PORTFOLIO)])
    assert result.exit_code == 0, result.output
    assert 'email-p1-response: not affected: applies_to: where priority: "p1" ≠ "P1"' in result.output
    as_json = CliRunner().invoke(main, ["explain", json.dumps(fact()), "--rules", str(PORTFOLIO), "--json"])
    assert json.loads(as_json.output)["fact"] == "f1"
