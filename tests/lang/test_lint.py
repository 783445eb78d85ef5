"""Lint: each silent mistake of issue 14 is reported at file:line:column, and one root
mistake gives one error."""
from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules, load_texts
from tests.support import ROOT

ORG = textwrap.dedent("""\
    kind: Roles
    id: org-roles
    holders:
      slm_process_owner: owner@example.org
    ---
    kind: Service
    id: email
    roles:
      service_level_manager: slm-mail@example.org
    ---
    kind: Raci
    id: raci
    activities:
      breach-handling: {service_level_manager: R, slm_process_owner: A}
    ---
    kind: Escalation
    id: esc
    applies_to: {targets: [p1-response]}
    levels:
      - {at: 100%, activity: breach-handling}
    """)

TARGET = textwrap.dedent("""\
    kind: Agreement
    id: sla-email
    type: SLA
    service: email
    targets:
      - id: p1-response
        clock:
          applies_to: {type: incident.opened, where: {priority: P1}}
          start: incident.opened
          stop: incident.acknowledged
        goal: 15m
        warn_at: [75%]
      - id: p1-resolution
        clock:
          applies_to: {type: incident.opened, where: {priority: P1}}
          stop: incident.resolved
        goal: 4h
    """)


def warnings(agreement: str = TARGET, org: str = ORG, extra: str = "") -> list[str]:
    files = {"org.yaml": org, "sla.yaml": agreement}
    if extra:
        files["extra.yaml"] = extra
    return [str(w) for w in load_texts(files).warnings if w.code == "lint"]


def with_escalated_resolution(text: str) -> str:
    return text.replace("targets: [p1-response]", "targets: [p1-response, p1-resolution]")


def quiet(**changes) -> list[str]:
    """Warnings of the base set with every target escalated, after text replacements."""
    agreement = TARGET
    for old, new in changes.get("replace", []):
        assert old in agreement, old
        agreement = agreement.replace(old, new, 1)
    return warnings(agreement, with_escalated_resolution(ORG), changes.get("extra", ""))


def test_the_base_set_and_the_shipped_rules_are_clean():
    assert quiet() == []
    assert [w for w in load_rules(ROOT / "rules").warnings if w.code == "lint"] == []


def test_a_clock_type_one_letter_from_a_known_one_is_reported_with_did_you_mean():
    found = quiet(replace=[("start: incident.opened", "start: incident.opend")])
    assert found == ["sla.yaml:9:14: warning: fact type 'incident.opend' is written nowhere else in the rules: "
                     "did you mean 'incident.opened'? (a fact type nothing posts matches nothing, silently)"]
    found = quiet(replace=[("stop: incident.resolved", "stop: incident.resolvd")])
    assert len(found) == 0      # nothing known is one edit away: resolvd has no anchor to be compared with
    found = quiet(replace=[("stop: incident.resolved", "stop: incident.acknowledgd")])
    assert found and "sla.yaml:16:13" in found[0] and "did you mean 'incident.acknowledged'" in found[0]


def test_legitimate_neighbours_are_not_typos():
    # reopened/opened, resumed/resolved: two edits or more apart
    found = quiet(replace=[("stop: incident.resolved", "stop: incident.resolved\n      restart: incident.reopened\n"
                                                       "      pause: incident.pending\n"
                                                       "      resume: incident.resumed")])
    assert found == []


def test_a_where_field_one_letter_from_a_known_one_and_a_value_in_the_wrong_case():
    found = quiet(replace=[("where: {priority: P1}}\n      stop: incident.resolved",
                            "where: {priorty: P1}}\n      stop: incident.resolved")])
    assert len(found) == 1 and found[0].startswith("sla.yaml:15:") and "did you mean 'priority'" in found[0]
    found = quiet(replace=[("where: {priority: P1}}\n      stop: incident.resolved",
                            "where: {priority: p1}}\n      stop: incident.resolved")])
    assert len(found) == 1 and "where priority: 'p1' differs only in case from 'P1'" in found[0]


@pytest.mark.parametrize("level, why", [("120%", "at or after the breach"), ("100%", "at or after the breach"),
                                        ("0%", "at the start")])
def test_warn_at_outside_0_to_100_percent(level, why):
    found = quiet(replace=[("warn_at: [75%]", f"warn_at: [75%, {level}]")])
    assert len(found) == 1 and found[0].startswith("sla.yaml:12:20: warning: warn_at: ") and why in found[0]


def test_escalation_at_zero_percent():
    org = with_escalated_resolution(ORG).replace("{at: 100%", "{at: 0%")
    found = warnings(TARGET, org)
    assert found == ["org.yaml:20:10: warning: at: 0% fires the moment every clock starts: 'breach-handling' "
                     "would be notified of every ticket"]


def test_stop_equal_to_start_and_pause_overlapping_start():
    found = quiet(replace=[("stop: incident.acknowledged", "stop: incident.opened")])
    assert found == ["sla.yaml:10:13: warning: stop: 'incident.opened' also starts this clock and stops it the "
                     "same instant: the clock never counts"]
    found = quiet(replace=[("stop: incident.resolved", "stop: incident.resolved\n      pause: incident.opened\n"
                                                       "      resume: incident.resumed")])
    assert len(found) == 1 and "sla.yaml:17:14" in found[0] and "the clock starts paused" in found[0]


def test_a_target_whose_levels_notify_nobody():
    found = warnings()      # p1-resolution is in no Escalation
    assert found == ["sla.yaml:13:9: warning: target 'p1-resolution' notifies nobody: no Escalation covers it, "
                     "so its warnings and breach reach no one (name it in an Escalation's applies_to.targets)"]
    shadow = warnings(TARGET.replace("type: SLA", "type: SLR"))
    assert shadow == []     # an SLR decides nothing that notifies: no warning


def test_an_escalation_level_whose_activity_has_no_raci_row_is_an_error():
    org = with_escalated_resolution(ORG).replace("activity: breach-handling}", "activity: breach-handlng}")
    with pytest.raises(RuleSetError) as caught:
        load_texts({"org.yaml": org, "sla.yaml": TARGET})
    assert [str(p) for p in caught.value.problems] == [
        "org.yaml:20:26: activity: unknown activity 'breach-handlng' (not in any Raci): "
        "did you mean 'breach-handling'?"]


MORE_RACI = textwrap.dedent("""\
    kind: Raci
    id: more
    activities:
      breach-handeling: {service_level_manager: R, slm_process_owner: A}
      update-process-policies: {slm_process_owner: A/R}
    """)


def test_a_raci_row_no_notification_carries_is_a_warning_at_its_line():
    found = quiet(extra=MORE_RACI)
    assert found == [
        "extra.yaml:4:3: warning: activity 'breach-handeling' is carried by no notification: no escalation "
        "level or Rule's notify names it (did you mean 'breach-handling'?); list it under 'manual:' if people "
        "carry it out by hand",
        "extra.yaml:5:3: warning: activity 'update-process-policies' is carried by no notification: no "
        "escalation level or Rule's notify names it; list it under 'manual:' if people carry it out by hand"]


def test_manual_activities_are_not_warned_of_unless_something_notifies_them():
    assert quiet(extra=MORE_RACI + "manual: [breach-handeling, update-process-policies]\n") == []
    notifying_rule = ("---\nkind: Rule\nid: warn\nwhen: {type: decision.breach}\nthen:\n"
                      "  - notify: {activity: breach-warning}\n")
    notified = quiet(extra=MORE_RACI.replace("breach-handeling", "breach-warning")
                     + "manual: [breach-warning, update-process-policies]\n" + notifying_rule)
    assert notified == ["extra.yaml:4:3: warning: activity 'breach-warning' is listed as manual, yet an escalation "
                        "level or a Rule notifies it"]
    with pytest.raises(RuleSetError) as caught:
        load_texts({"org.yaml": with_escalated_resolution(ORG), "sla.yaml": TARGET,
                    "extra.yaml": MORE_RACI + "manual: [update-proces-policies]\n"})
    assert [str(p) for p in caught.value.problems] == [
        "extra.yaml:6:10: manual: 'update-proces-policies' is not an activity of this Raci "
        "(activities: breach-handeling, update-process-policies)"]


RULE = textwrap.dedent("""\
    kind: Rule
    id: r
    when:
      - {type: decision.breach, as: b, where: {target: p1-response}}
      - {type: decision.breach, where: {subject: $b.subject}}
    then:
      - decide: {kind: improvement}
    """)


@pytest.mark.parametrize("old, new, place, why", [
    ("decision.breach, as: b", "decision.breached, as: b", "extra.yaml:4:12",
     "nothing decides 'breached'"),
    ("target: p1-response", "target: p1-responce", "extra.yaml:4:52", "no target 'p1-responce' exists"),
    ("where: {subject: $b.subject}", "where: {counted: {gt: 10, lt: 5}}", "extra.yaml:5:",
     "no value is both above 10 and below 5"),
])
def test_a_rule_that_can_never_fire(old, new, place, why):
    assert quiet(extra=RULE) == []
    found = [w for w in quiet(extra=RULE.replace(old, new)) if "can never fire" in w]
    assert len(found) == 1 and found[0].startswith(place) and why in found[0], found


def test_a_timezone_typo_gives_one_error_not_five():
    calendar = textwrap.dedent("""\
        kind: Calendar
        id: office
        timezone: Europe/Londn
        hours: {mon-fri: "09:00-17:00"}
        """)
    org = ORG.replace("slm-mail@example.org", "slm-mail@example.org\ncalendar: office")
    with pytest.raises(RuleSetError) as caught:
        load_texts({"cal.yaml": calendar, "org.yaml": with_escalated_resolution(org),
                    "sla.yaml": TARGET.replace("stop: incident.resolved",
                                               "stop: incident.resolved\n      calendar: office")})
    assert [str(p) for p in caught.value.problems] == [
        "cal.yaml:3:11: timezone: unknown time zone 'Europe/Londn' (examples: Europe/London, UTC)"]


def test_a_calendar_name_typo_on_the_service_gives_one_error():
    org = with_escalated_resolution(ORG).replace("slm-mail@example.org", "slm-mail@example.org\ncalendar: ofice")
    with pytest.raises(RuleSetError) as caught:
        load_texts({"org.yaml": org, "sla.yaml": TARGET})
    assert [str(p) for p in caught.value.problems] == [
        "org.yaml:10:11: calendar: unknown calendar 'ofice' (known: 24x7)"]


def test_check_prints_warnings_and_strict_makes_them_errors(tmp_path):
    from cli import main as cli
    (tmp_path / "org.yaml").write_text(ORG)
    (tmp_path / "sla.yaml").write_text(TARGET)
    runner = CliRunner()
    loose = runner.invoke(cli, ["check", str(tmp_path)])
    assert loose.exit_code == 0 and "warning: target 'p1-resolution' notifies nobody" in loose.output
    strict = runner.invoke(cli, ["check", "--strict", str(tmp_path)])
    assert strict.exit_code == 1 and "sla.yaml:13:9: target 'p1-resolution' notifies nobody" in strict.output
    assert "1 error occurred" in strict.output
