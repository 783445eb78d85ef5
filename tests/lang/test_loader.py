"""Loading rule sets: precise errors at file:line:column, whole or nothing."""
from __future__ import annotations

import textwrap
from datetime import date

import pytest

from engine.lang.checks import validity_warnings
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules, load_texts
from tests.support import ROOT
from tests.support.ruletexts import BASE

AGREEMENT = textwrap.dedent("""\
    kind: Agreement
    id: sla-email
    type: SLA
    service: email
    targets:
      - id: email-p1-response
        clock:
          applies_to: {type: incident.opened, where: {priority: P1}}
          stop: incident.acknowledged
        goal: {goal}
    """)


def problems_of(files: dict[str, str]) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_texts(files)
    return [str(p) for p in caught.value.problems]


def test_shipped_rules_load():
    ruleset = load_rules(ROOT / "rules")
    assert len(ruleset.services) >= 3
    assert {t.measure for t in ruleset.targets.values()} == {"duration", "availability", "threshold"}
    assert ruleset.version.startswith("sha256:")


def test_bad_duration_is_placed_at_the_value():
    found = problems_of({"base.yaml": BASE, "email.yaml": AGREEMENT.replace("{goal}", '"4 hours"')})
    assert found == ['email.yaml:10:11: goal: "4 hours" is not a duration '
                     '(examples: 90s, 15m, 4h, 1h30m, 2d, PT15M)']


def test_unknown_field_names_the_key_and_the_alternatives():
    text = AGREEMENT.replace("{goal}", "15m").replace("    goal:", "    gaol: 1\n    goal:")
    found = problems_of({"base.yaml": BASE, "email.yaml": text})
    assert len(found) == 1
    assert found[0].startswith("email.yaml:10:5: unknown field 'gaol' (expected one of: ")
    assert "goal" in found[0] and "warn_at" in found[0]


def test_all_errors_reported_at_once_sorted_by_place():
    text = AGREEMENT.replace("{goal}", "soon").replace("type: SLA", "type: SLB")
    found = problems_of({"base.yaml": BASE, "email.yaml": text})
    assert [f.split(":")[1] for f in found] == ["3", "10"]
    assert found[0] == "email.yaml:3:7: type: 'SLB' is not one of: SLA, OLA, UC, SLR"


def test_yaml_syntax_error_has_a_place():
    found = problems_of({"bad.yaml": "kind: Service\nid: [unclosed\n"})
    assert found[0].startswith("bad.yaml:3:1: YAML syntax")


def test_unknown_references_are_errors():
    text = AGREEMENT.replace("{goal}", "15m").replace("service: email", "service: mail")
    found = problems_of({"base.yaml": BASE, "email.yaml": text})
    assert found == ["email.yaml:4:10: service: unknown service 'mail' (known: email)"]


def test_raci_needs_exactly_one_accountable_and_a_responsible():
    base = BASE.replace("{service_level_manager: R, slm_process_owner: A}",
                        "{service_level_manager: A, slm_process_owner: A}")
    found = problems_of({"base.yaml": base})
    assert any("needs exactly one A (accountable), found service_level_manager, slm_process_owner" in f
               for f in found)
    assert any("needs at least one R (responsible)" in f for f in found)


def test_raci_role_without_holder_names_service_and_role():
    base = BASE.replace("slm_process_owner: A}", "slm_process_owner: A, business_owner: I}")
    found = problems_of({"base.yaml": base})
    assert found == ["base.yaml:14:3: activity 'breach-handling': role 'business_owner' has no holder for "
                     "service 'email' (give it in the Service's roles or in a Roles document)"]


def test_duplicate_ids_and_keys():
    found = problems_of({"a.yaml": BASE + "---\nkind: Service\nid: email\nid: x\n"})
    assert any("duplicate key 'id'" in f for f in found)


def test_underpinning_duration_may_not_promise_more():
    ola = textwrap.dedent("""\
        kind: Agreement
        id: ola-mx
        type: OLA
        service: email
        targets:
          - id: ola-mx-response
            clock: {applies_to: {type: incident.opened}, stop: incident.acknowledged}
            goal: 30m
        """)
    sla = AGREEMENT.replace("{goal}", "15m") + "    underpinned_by: [ola-mx-response]\n"
    found = problems_of({"base.yaml": BASE, "email.yaml": sla, "ola.yaml": ola})
    assert found == ["email.yaml:10:11: goal: target 'email-p1-response' promises 15m, faster than its "
                     "underpinning target 'ola-mx-response' (30m)"]


def test_underpinning_availability_product():
    def agreement(kind, ident, goal, extra=""):
        return textwrap.dedent(f"""\
            kind: Agreement
            id: {ident}
            type: {kind}
            service: email
            targets:
              - id: {ident}-availability
                availability:
                  down: {{type: alert.firing}}
                  up: {{type: alert.resolved}}
                goal: {goal}
            """) + extra
    files = {"base.yaml": BASE,
             "sla.yaml": agreement("SLA", "sla", "99.95%",
                                   "    underpinned_by: [ola1-availability, ola2-availability]\n"),
             "ola1.yaml": agreement("OLA", "ola1", "99.95%"),
             "ola2.yaml": agreement("OLA", "ola2", "99.95%")}
    found = problems_of(files)
    assert found == ["sla.yaml:10:11: goal: target 'sla-availability' promises 99.95%, more than its "
                     "underpinning targets 'ola1-availability' (99.95%), 'ola2-availability' (99.95%) can "
                     "deliver together (99.9%)"]
    files["sla.yaml"] = files["sla.yaml"].replace("99.95%", "99.9%")
    assert load_texts(files).targets["sla-availability"].goal < 1


def test_yaml_1_1_surprises_are_plain_strings():
    base = BASE + textwrap.dedent("""\
        ---
        kind: Calendar
        id: oslo
        timezone: Europe/Oslo
        hours: {mon-fri: 08:00-16:00}
        holidays: {country: NO}
        """)
    ruleset = load_texts({"base.yaml": base})
    assert "oslo" in ruleset.calendars


def test_version_is_a_content_hash():
    one = load_texts({"base.yaml": BASE})
    two = load_texts({"base.yaml": BASE + "\n# comment\n"})
    assert one.version != two.version
    assert load_texts({"base.yaml": BASE}).version == one.version


def _with_terms(**valid: str) -> dict[str, str]:
    """BASE and one agreement per keyword: its id and its `valid` flow mapping."""
    files = {"base.yaml": BASE}
    for id, period in valid.items():
        files[f"{id}.yaml"] = AGREEMENT.replace("{goal}", "15m").replace(
            "id: sla-email", f"id: {id}").replace("email-p1-response", f"{id}-response").replace(
            "type: SLA", f"type: SLA\nvalid: {period}")
    return files


def test_validity_warnings_name_lapsed_expiring_and_future_agreements():
    ruleset = load_texts(_with_terms(sla_term="{from: 2031-01-01, to: 2031-12-31}",
                                     uc_longer="{from: 2031-01-01, to: 2032-12-31}"))
    assert validity_warnings(ruleset, date(2031, 6, 1)) == []

    expiring = [str(w) for w in validity_warnings(ruleset, date(2031, 12, 20))]
    assert any("agreement 'sla_term' expires on 2031-12-31, in 11 days" in w for w in expiring)
    assert not any("uc_longer" in w for w in expiring)
    assert [str(w) for w in validity_warnings(ruleset, date(2031, 12, 31))][0].endswith(
        "agreement 'sla_term' expires on 2031-12-31, today")

    lapsed = [w for w in validity_warnings(ruleset, date(2032, 1, 5)) if "sla_term" in w.message]
    assert [w.severity for w in lapsed] == ["warning"]
    assert lapsed[0].message.endswith("expired on 2031-12-31: facts after it start none of its clocks")
    assert lapsed[0].file == "sla_term.yaml" and lapsed[0].line == 1

    early = [w.message for w in validity_warnings(ruleset, date(2030, 12, 24))]
    assert "agreement 'sla_term' is not valid before 2031-01-01: facts before it start none of its clocks" in early


def test_an_open_ended_agreement_never_lapses():
    ruleset = load_texts(_with_terms(rolling="{from: 2031-01-01}"))
    assert validity_warnings(ruleset, date(2031, 1, 1)) == []
    assert validity_warnings(ruleset, date(2131, 1, 1)) == []


def test_the_shipped_agreements_stay_in_force_in_the_years_ahead():
    """The quick start and every test that posts facts near today rely on this: the
    shipped agreements are open-ended, not a year's term that lapses under them."""
    ruleset = load_rules(ROOT / "rules")
    agreed = [a for a in ruleset.agreements.values() if a.status != "retired"]
    assert agreed and all(a.valid_to is None for a in agreed), [(a.id, a.valid_to) for a in agreed]
    for year in (2026, 2030, 2050):
        assert validity_warnings(ruleset, date(year, 12, 31)) == []


def test_slm_check_prints_validity_warnings_and_still_passes(tmp_path):
    from click.testing import CliRunner

    from cli import main
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "sla.yaml").write_text(AGREEMENT.replace("{goal}", "15m").replace(
        "type: SLA", "type: SLA\nvalid: {from: 2019-01-01, to: 2019-12-31}"))
    result = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "expired on 2019-12-31" in result.output and "OK" in result.output


@pytest.mark.parametrize("kind", ["[Service]", "{Service: 1}", "Servce", "1"])
def test_a_kind_that_names_no_kind_is_placed_at_the_value(kind):
    found = problems_of({"base.yaml": BASE, "odd.yaml": f"kind: {kind}\nid: x\n"})
    assert len(found) == 1
    assert found[0].startswith("odd.yaml:1:7: kind: ") and "is not a kind (expected one of: " in found[0]
