"""Scenario files: every shipped one as a pytest case (so CI lists them by name), and the
runner's own rules checked on small scenarios, through the runner and through `slm test`."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from engine.lang.yamlsource import load_documents
from engine.scenarios import RuleSetCache, find_scenarios, name_of, run_file
from schemas.api import DecisionSchema, NotificationSchema
from tests.support import PORTFOLIO, ROOT, RULES

SHIPPED = ROOT / "fixtures" / "scenarios"
CACHE = RuleSetCache()


def _shipped():
    """One case per scenario document, named by the scenario (the file's name if unreadable)."""
    for path in find_scenarios([str(SHIPPED)]):
        docs, problems = load_documents(path.read_text(encoding="utf-8"), str(path))
        for index, doc in enumerate([None] if problems else docs):
            yield pytest.param(path, index, id=path.name if doc is None else name_of(doc, path))


@pytest.mark.parametrize("path, index", list(_shipped()))
def test_shipped_scenario(path, index):
    result = run_file(path, RULES, CACHE)[index]
    if not result.passed:
        pytest.fail("\n".join(result.failures), pytrace=False)


# A P1 on email opened at 09:00 and never acknowledged, run to 12:00: email-p1-response
# (15m) warns at 50% and 75% and breaches at 09:15; ola-mx-p1-response (10m) breaches too.
HEAD = f"""\
name: small
rules: {PORTFOLIO}
facts:
  - {{id: f1, type: incident.opened, time: 2026-11-02T09:00:00Z, subject: INC-1, service: email,
     data: {{priority: P1}}}}
until: 2026-11-02T12:00:00Z
"""
BODY_LINE = HEAD.count("\n") + 1      # the first line after HEAD


def scenario(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    return path


def failures(path: Path) -> list[str]:
    """The runner's failures for a one-scenario file, checked to agree with `slm test`."""
    [result] = run_file(path, PORTFOLIO, RuleSetCache())
    cli = CliRunner().invoke(main, ["test", str(path)])
    assert cli.exit_code == (0 if result.passed else 1), cli.output
    assert cli.output.splitlines()[-1] == ("1 passed, 0 failed" if result.passed else "0 passed, 1 failed")
    for failure in result.failures:
        assert failure.splitlines()[0] in cli.output
    return result.failures


# 1. expect and absent are each optional, and each take decisions and/or notifications

@pytest.mark.parametrize("body", [
    "",
    "expect:\n  decisions: [{kind: breach, target: email-p1-response, subject: INC-1}]\n",
    "expect:\n  notifications: [{activity: breach-handling, recipient: slm-mail@example.org, raci: R}]\n",
    "absent:\n  decisions: [{kind: met, subject: INC-1}]\n",
    "absent:\n  notifications: [{recipient: nobody@example.org}]\n",
    "expect: {}\nabsent: {}\n",
], ids=["neither", "expect-decisions", "expect-notifications", "absent-decisions", "absent-notifications",
        "both-empty"])
def test_expect_and_absent_are_each_optional(tmp_path, body):
    assert failures(scenario(tmp_path, body)) == []


def test_a_scenario_with_only_absent_still_checks_it(tmp_path):
    path = scenario(tmp_path, "absent:\n  decisions:\n    - {kind: breach, target: email-p1-response}\n")
    [failure] = failures(path)
    assert failure.startswith(f"{path}:{BODY_LINE + 2}:7: unexpected decision: "
                              "{kind: breach, target: email-p1-response}")


# 2. unknown fields and bad values are errors at file:line:column

@pytest.mark.parametrize("section, noun", [("expect", "an expected"), ("absent", "a"), ])
def test_an_unknown_field_in_an_entry_is_an_error_naming_the_fields(tmp_path, section, noun):
    path = scenario(tmp_path, f"{section}:\n  decisions:\n    - {{kind: met, targt: email-p1-response}}\n"
                              f"  notifications:\n    - {{recipent: slm-mail@example.org}}\n")
    decision_fields = ", ".join(sorted(DecisionSchema().fields))
    notification_fields = ", ".join(sorted(NotificationSchema().fields))
    where = "" if section == "expect" else " under 'absent'"
    assert failures(path) == [
        f"{path}:{BODY_LINE + 2}:19: unknown field 'targt' in {noun} decision{where} "
        f"(fields: {decision_fields}); did you mean 'target'?",
        f"{path}:{BODY_LINE + 4}:8: unknown field 'recipent' in {noun} notification{where} "
        f"(fields: {notification_fields}); did you mean 'recipient'?",
    ]


def test_unknown_keys_of_a_scenario_and_its_sections_are_errors(tmp_path):
    path = scenario(tmp_path, "expect:\n  decision: []\nabsnet: {}\n")
    assert failures(path) == [
        f"{path}:{BODY_LINE + 1}:3: unknown field 'decision' in 'expect' (fields: decisions, notifications);"
        " did you mean 'decisions'?",
        f"{path}:{BODY_LINE + 2}:1: unknown field 'absnet' in a scenario "
        "(fields: absent, description, expect, facts, name, rules, until); did you mean 'absent'?",
    ]


def test_values_of_the_wrong_type_are_errors_at_file_line_column(tmp_path):
    path = tmp_path / "types.yaml"
    path.write_text("name: types\nuntil: soon\n"
                    "expect:\n  decisions: {kind: met}\n"
                    "absent:\n  notifications: [breach-handling, {raci: [R]}]\n", encoding="utf-8")
    assert failures(path) == [
        f'{path}:2:1: until: "soon" is not an RFC 3339 time (example: 2026-11-02T09:00:00Z)',
        f"{path}:4:3: expect.decisions: Not a valid list.",
        f"{path}:6:19: absent.notifications[0]: Not a valid mapping type.",
        f"{path}:6:37: absent.notifications[1].raci: Not a valid string.",
    ]


def test_a_rule_decisions_severity_and_message_are_fields_one_can_expect(tmp_path):
    breaches = "".join(
        f"  - {{id: o{day}, type: incident.opened, time: 2026-11-{day}T09:00:00Z, subject: INC-{day},"
        f" service: email, data: {{priority: P1}}}}\n" for day in (10, 11, 12))
    path = tmp_path / "rule.yaml"
    path.write_text(f"name: rule\nrules: {PORTFOLIO}\nfacts:\n{breaches}until: 2026-11-13T00:00:00Z\n"
                    "expect:\n  decisions:\n    - {kind: improvement-proposed, severity: minor,\n"
                    "       message: email-p1-response breached 3 times in 30 days}\n", encoding="utf-8")
    assert failures(path) == []


# 3. two identical expectations need two distinct matching items

def test_two_alike_expectations_need_two_matching_decisions(tmp_path):
    warning = "    - {kind: warning, target: email-p1-response, subject: INC-1}\n"
    assert failures(scenario(tmp_path, "expect:\n  decisions:\n" + warning * 2)) == []   # 50% and 75%
    path = scenario(tmp_path, "expect:\n  decisions:\n" + warning * 3)
    [failure] = failures(path)
    assert failure == (f"{path}:{BODY_LINE + 4}:7: missing decision: "
                       "{kind: warning, target: email-p1-response, subject: INC-1}\n"
                       "      found 2 like it, already matched by other expectations (each needs its own)")


def test_two_alike_expectations_need_two_matching_notifications(tmp_path):
    ntf = "    - {activity: major-breach, recipient: lt@example.org}\n"     # one major-breach escalation
    assert failures(scenario(tmp_path, "expect:\n  notifications:\n" + ntf)) == []
    path = scenario(tmp_path, "expect:\n  notifications:\n" + ntf * 2)
    [failure] = failures(path)
    assert failure.startswith(f"{path}:{BODY_LINE + 3}:7: missing notification: ")


def test_a_general_expectation_does_not_take_the_item_a_specific_one_needs(tmp_path):
    """Two breaches (email-p1-response, ola-mx-p1-response): the specific expectation is
    matched first, though written second, so the general one takes the other breach."""
    path = scenario(tmp_path, "expect:\n  decisions:\n    - {kind: breach, subject: INC-1}\n"
                              "    - {kind: breach, subject: INC-1, target: email-p1-response}\n")
    assert failures(path) == []


def test_slm_test_prints_one_line_per_scenario_and_a_summary():
    shipped = list(_shipped())
    result = CliRunner().invoke(main, ["test", str(SHIPPED)])
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert len(lines) == len(shipped) + 1 and all(line.startswith("PASS  ") for line in lines[:-1])
    assert lines[-1] == f"{len(shipped)} passed, 0 failed"


# 6. What would mislead a newcomer: a fact the service would refuse, and time that stopped early

def test_a_fact_for_a_service_the_rules_do_not_define_fails_the_scenario(tmp_path):
    """The API refuses such a fact with 422; a scenario must not pass over it as a fact
    that simply did nothing (a typo such as ``service: emial``)."""
    path = tmp_path / "typo.yaml"
    path.write_text(HEAD.replace("service: email", "service: emial")
                    + "expect:\n  decisions: [{kind: breach, target: email-p1-response}]\n", encoding="utf-8")
    [failure] = failures(path)
    assert "fact 1 rejected" in failure and "unknown service 'emial'" in failure and "email" in failure


def test_a_missing_decision_without_until_says_where_time_stopped(tmp_path):
    path = tmp_path / "no-until.yaml"
    path.write_text(HEAD.replace("until: 2026-11-02T12:00:00Z\n", "")
                    + "expect:\n  decisions: [{kind: breach, target: email-p1-response, subject: INC-1}]\n",
                    encoding="utf-8")
    [failure] = failures(path)
    assert "no `until`: time stopped at the last fact, 2026-11-02T09:00:00Z" in failure
    # with `until`, the same expectation is met and no such note is given
    assert failures(scenario(tmp_path, "expect:\n  decisions: [{kind: breach, target: email-p1-response, "
                                       "subject: INC-1}]\n")) == []
