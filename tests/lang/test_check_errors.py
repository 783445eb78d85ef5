"""What a new process owner meets in ``slm check`` (issue 20, items 11, 16 and 17): every
mistake is an error at file:line, one root mistake gives one error, and nothing prints a
traceback."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli import main
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from tests.support.ruletexts import BASE


def problems_of(files: dict[str, str]) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_texts(files)
    return [str(p) for p in caught.value.problems]


def test_a_yaml_integer_of_5000_digits_is_one_error_at_its_line_and_no_traceback(tmp_path):
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "cal.yaml").write_text("kind: Calendar\nid: c\ntimezone: UTC\nhours:\n  mon-fri: " + "9" * 5000 + "\n")
    result = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if "cal.yaml" in line]
    assert line.startswith(f"{tmp_path / 'cal.yaml'}:5:12: cannot read value: a number of 5000 digits")


# ---- item 16: holders are places a notification can go --------------------------------

@pytest.mark.parametrize("holder, expected", [
    ("htp://hooks.example.org/slm", "did you mean http://?"),
    ("vpn owner at example", "neither an e-mail address nor a URL"),
    ("https://", "not a complete https URL"),
    ("owner@", "neither an e-mail address nor a URL"),
    ("slack://", "no slack:// URL Apprise can send to"),
])
def test_a_holder_no_notification_can_reach_is_an_error_at_its_line(holder, expected):
    base = BASE.replace("slm-mail@example.org", holder)
    found = problems_of({"base.yaml": base})
    (problem,) = [p for p in found if holder in p]
    line = base.splitlines().index(f"  service_level_manager: {holder}") + 1
    assert problem.startswith(f"base.yaml:{line}:") and expected in problem, problem


@pytest.mark.parametrize("holder", ["slm-mail@example.org", "https://hooks.example.org/slm?x=1",
                                    "http://intranet:8080/hook", "slack://T1/B2/C3", "tgram://123456789:abcdefg_hijklmnop/123",
                                    "mailto://user:pass@example.org"])
def test_e_mail_addresses_and_http_or_apprise_urls_are_holders(holder):
    load_texts({"base.yaml": BASE.replace("slm-mail@example.org", holder)})


# ---- item 17: one root mistake, one error ------------------------------------------------

VPN = """\
kind: Service
id: vpn
roles:
  vpn_ops: vpn-ops@example.org
  service_level_manager: vpn-slm@example.org
---
kind: Agreement
id: sla-vpn
type: SLA
service: vpn
targets:
  - id: vpn-p1-response
    clock:
      applies_to: {type: incident.opened, where: {priority: P1}}
      stop: incident.acknowledged
    goal: 15m
---
kind: Escalation
id: vpn-escalation
applies_to: {targets: [vpn-p1-response]}
levels:
  - {at: 100%, activity: vpn-handlng}
---
kind: Raci
id: vpn-raci
activities:
  vpn-handling: {vpn_ops: R, slm_process_owner: A}
"""


def errors_of(files: dict[str, str]) -> list[str]:
    return [p for p in problems_of(files) if ": warning: " not in p]


def test_an_escalation_typo_gives_one_error_not_one_per_service():
    errors = errors_of({"base.yaml": BASE, "vpn.yaml": VPN})
    assert len(errors) == 1, errors
    assert errors[0].startswith("vpn.yaml:22:") and "did you mean 'vpn-handling'?" in errors[0]


def test_an_unknown_calendar_lists_the_known_ones_nearest_first():
    calendars = "".join(f"---\nkind: Calendar\nid: {name}\ntimezone: UTC\nhours: {{mon-fri: '09:00-17:00'}}\n"
                        for name in ("apac-office", "uk-office", "us-office"))
    service = BASE.replace("id: email\n", "id: email\ncalendar: uk-ofice\n")
    (error,) = errors_of({"base.yaml": service + calendars})
    assert "unknown calendar 'uk-ofice' (known: uk-office, us-office, " in error, error
    agreement = VPN.replace("      stop: incident.acknowledged\n",
                            "      stop: incident.acknowledged\n      calendar: us-ofice\n").replace(
        "vpn-handlng", "vpn-handling")
    (error,) = errors_of({"base.yaml": BASE + calendars, "vpn.yaml": agreement})
    assert "unknown calendar 'us-ofice' (known: us-office, uk-office, " in error, error


def test_a_misspelt_raci_role_is_one_misspelling_not_a_missing_holder_per_service():
    raci = BASE.replace("breach-handling: {service_level_manager: R, slm_process_owner: A}",
                        "breach-handling: {service_level_manager: R, slm_proces_owner: A}")
    vpn = VPN.replace("vpn-handlng", "vpn-handling")
    errors = errors_of({"base.yaml": raci, "vpn.yaml": vpn})
    assert len(errors) == 1, errors
    assert "role 'slm_proces_owner' is held by no one" in errors[0] and "did you mean 'slm_process_owner'?" \
        in errors[0]


def test_slm_lint_points_to_slm_check_strict(tmp_path):
    result = CliRunner().invoke(main, ["lint", str(tmp_path)])
    assert result.exit_code == 2 and "slm check --strict" in result.output


def test_the_org_wide_roles_requirement_is_in_the_rules_reference():
    from tests.support import ROOT
    text = " ".join((ROOT / "docs" / "RULES.md").read_text().split())
    assert "need a holder in a Roles document, or in every Service" in text


@pytest.mark.parametrize("breaker", ["\u0085", "\u2028", "\u2029", "\r"])
def test_places_count_lines_as_editors_do_whatever_else_yaml_breaks_lines_at(breaker):
    """YAML also ends a line at a lone CR, U+0085, U+2028 and U+2029; an editor does not, so
    a place after one is still counted by "\n" alone, and never lies past the file's end."""
    text = f"kind: Service\nid: a{breaker}b\nroles: {{service_owner: x@example.org}}\n"
    with pytest.raises(RuleSetError) as raised:
        load_texts({"svc.yaml": text})
    # YAML reads "b" as a line of its own, and misses its ':' where "roles" begins: line 3 here
    assert [(p.line, p.column) for p in raised.value.problems] == [(3, 1)]
