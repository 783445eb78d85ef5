"""Partitions by service (docs/SCALING.md §1 and §2, docs/RULES.md "Partitions"): the map
file, its digest, where a fact goes, and which Rules run in one partition and which in
``global``; with ``slm check --partitions`` on top."""
from __future__ import annotations

import pickle
import textwrap

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cli.main import main
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules, load_texts
from engine.lang.partitions import (
    GLOBAL,
    PartitionError,
    PartitionMap,
    RuleClass,
    check_against,
    classify_rules,
    global_kinds,
    load_partition_map,
    parse_partition_map,
)
from tests.support import ROOT, RULES

# ---- the map file ------------------------------------------------------------------------------


def map_problems(text: str) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        parse_partition_map(text, "parts.yaml")
    return [str(p) for p in caught.value.problems]


def test_a_map_file_reads_as_written(tmp_path):
    path = tmp_path / "partitions.yaml"
    path.write_text("# which engine evaluates what\npartitions: {email: mail, hosting: web, service-desk: desk}\n"
                    "default: rest          # services not listed\n")
    pmap = load_partition_map(path)
    assert dict(pmap.services) == {"email": "mail", "hosting": "web", "service-desk": "desk"}
    assert pmap.default == "rest" and pmap.source == str(path)
    assert pmap.names == ("desk", "mail", "rest", "web") and not pmap.is_single


def test_default_is_optional_and_an_empty_map_is_one_partition():
    assert parse_partition_map("partitions: {email: mail}\n", "p.yaml").default == "default"
    empty = parse_partition_map("partitions: {}\n", "p.yaml")
    assert empty == PartitionMap.single() and empty.is_single and empty.names == ("default",)


def test_the_shipped_example_map_fits_the_shipped_rules():
    pmap = load_partition_map(ROOT / "deploy" / "partitions.example.yaml")
    assert dict(pmap.services) == {"email": "mail", "hosting": "web", "service-desk": "desk"}
    assert check_against(pmap, load_rules(RULES)) == []


@pytest.mark.parametrize("text, expected", [
    ("partitions: {email: mail\n", "parts.yaml:2:1: YAML syntax: expected ',' or '}', but got '<stream end>'"),
    ("- email\n- mail\n", "parts.yaml:1:1: a partition map is a mapping: partitions: {service: partition}, "
                          "and optionally default: partition"),
    ("partitions: {email: mail}\npartition: {hosting: web}\n",
     "parts.yaml:2:1: unknown field 'partition' (expected one of: default, partitions)"),
    ("default: rest\n", "parts.yaml:1:1: missing required field 'partitions' (service: partition)"),
    ("partitions: [email, hosting]\n",
     "parts.yaml:1:13: partitions: expected a mapping of service: partition, e.g. {email: mail, hosting: web}"),
    ("partitions:\n  email: Mail\n",
     "parts.yaml:2:10: partitions.email: 'Mail' is not a partition name: lower-case letters, digits, '-' and '_', "
     "starting with a letter or digit, at most 63 characters"),
    ("partitions:\n  email: mail\n  hosting: global\n",
     "parts.yaml:3:12: partitions.hosting: 'global' is reserved for the partition of cross-partition Rules: "
     "choose another name"),
    ("partitions: {email: mail}\ndefault: global\n",
     "parts.yaml:2:10: default: 'global' is reserved for the partition of cross-partition Rules: "
     "choose another name"),
    ("partitions: {email: 7}\n", "parts.yaml:1:21: partitions.email: 7 is a number, not a partition name: "
                                 "write the name in quotes"),
    ("partitions: {email: [mail]}\n", "parts.yaml:1:21: partitions.email: ['mail'] is not a partition name: "
                                      "lower-case letters, digits, '-' and '_', starting with a letter or digit, "
                                      "at most 63 characters"),
    ("partitions: {email: mail}\ndefault: ~\n", "parts.yaml:2:10: default: None is not a partition name: "
                                                "lower-case letters, digits, '-' and '_', starting with a letter "
                                                "or digit, at most 63 characters"),
    ("partitions: {email: " + "m" * 64 + "}\n", "parts.yaml:1:21: partitions.email: '" + "m" * 64 + "' is not a "
                                                "partition name: lower-case letters, digits, '-' and '_', starting "
                                                "with a letter or digit, at most 63 characters"),
    ("partitions:\n  '': mail\n", "parts.yaml:2:3: partitions: a service name cannot be empty"),
    ("partitions:\n  email: mail\n  email: web\n", "parts.yaml:3:3: duplicate key 'email'"),
    ("partitions: &p {email: mail}\ndefault: *p\n",
     "parts.yaml:2:10: YAML syntax: aliases (*p) are not supported in rule files: write the value out"),
    ("partitions: {email: mail}\n---\npartitions: {email: web}\n",
     "parts.yaml:3:1: a partition map is one YAML document: remove this second one"),
    ("# nothing here\n", "parts.yaml:1:1: empty partition map: expected a mapping with 'partitions' "
                         "(service: partition) and optionally 'default'"),
])
def test_each_bad_map_is_an_error_at_its_place(text, expected):
    assert map_problems(text) == [expected]


def test_every_mistake_of_a_map_is_reported_at_once_sorted():
    found = map_problems("partitions:\n  email: Mail\n  hosting: global\ncolour: blue\n")
    assert [p.split(":")[1] for p in found] == ["2", "3", "4"]


def test_a_missing_map_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(RuleSetError) as caught:
        load_partition_map(tmp_path / "nowhere.yaml")
    assert str(caught.value.problems[0]) == f"{tmp_path / 'nowhere.yaml'}:1:1: no such partition map file"


def test_a_map_built_in_code_is_held_to_the_same_names():
    for services, default in (({"email": GLOBAL}, "default"), ({"email": "mail"}, GLOBAL),
                              ({"email": "Mail"}, "default"), ({"": "mail"}, "default")):
        with pytest.raises(PartitionError):
            PartitionMap(services, default)
    assert issubclass(PartitionError, ValueError)


def test_a_map_survives_pickling_whole():
    pmap = parse_partition_map("partitions: {email: mail}\n", "p.yaml")
    again = pickle.loads(pickle.dumps(pmap))
    assert again == pmap and again.source == "p.yaml" and again.places == pmap.places
    assert again.digest == pmap.digest


def test_a_map_cannot_be_changed_once_made():
    written = {"email": "mail"}
    pmap = PartitionMap(written)
    written["hosting"] = "web"
    assert dict(pmap.services) == {"email": "mail"}
    with pytest.raises(TypeError):
        pmap.services["hosting"] = "web"        # type: ignore[index]


# ---- where a fact goes ---------------------------------------------------------------------------

def test_a_service_goes_to_its_partition_and_an_unlisted_one_to_the_default():
    pmap = PartitionMap({"email": "mail", "hosting": "web"}, default="rest")
    assert pmap.partition_of("email") == "mail"
    assert pmap.partition_of("hosting") == "web"
    assert pmap.partition_of("service-desk") == "rest"


def test_a_fact_without_service_has_a_place_only_when_there_is_one_partition():
    assert PartitionMap.single().partition_of(None) == "default"
    assert PartitionMap({"email": "main"}, default="main").partition_of(None) == "main"
    with pytest.raises(PartitionError, match="a fact without `service` cannot be placed when partitions "
                                             "are configured"):
        PartitionMap({"email": "mail"}).partition_of(None)


def test_names_list_every_partition_a_fact_can_go_to_never_global():
    pmap = PartitionMap({"email": "mail", "hosting": "mail", "desk": "desk"})
    assert pmap.names == ("default", "desk", "mail")
    assert PartitionMap({"email": "default"}).is_single


# ---- the digest --------------------------------------------------------------------------------

YAML_WORDS = {"true", "false", "null", GLOBAL}         # unquoted, these are no names
PARTITION = st.from_regex(r"\A[a-z][a-z0-9_-]{0,10}\Z").filter(lambda name: name not in YAML_WORDS)
SERVICE = st.from_regex(r"\A[a-z][a-z0-9.-]{0,12}\Z").filter(lambda name: name not in YAML_WORDS)
MAPS = st.dictionaries(SERVICE, PARTITION, max_size=6)


def written(services: dict[str, str], default: str | None, order: list[int], block: bool, quoted: bool) -> str:
    """A map file as some person might write it: any key order, flow or block style, quoted
    or not, with comments, the default given or left out."""
    items = list(services.items())
    items = [items[i] for i in order] if len(order) == len(items) else items
    q = '"' if quoted else ""
    if block:
        body = "partitions:   # service: partition\n" + "".join(f"  {q}{s}{q}:  {q}{p}{q}\n" for s, p in items)
        if not items:
            body = "partitions: {}\n"
    else:
        body = "partitions: {" + ", ".join(f"{q}{s}{q}: {q}{p}{q}" for s, p in items) + "}\n"
    head = f"default: {q}{default}{q}\n" if default is not None else ""
    return ("# the map\n" + head + body) if block else (body + head)


@given(MAPS, PARTITION, st.permutations(range(6)), st.booleans(), st.booleans())
def test_the_digest_does_not_depend_on_how_the_map_is_written(services, default, order, block, quoted):
    order = [i for i in order if i < len(services)]
    first = parse_partition_map(written(services, default, [], False, False), "a.yaml")
    again = parse_partition_map(written(services, default, order, block, quoted), "b.yaml")
    assert again == first and again.digest == first.digest
    assert PartitionMap(dict(reversed(list(services.items()))), default).digest == first.digest


@given(MAPS, PARTITION, MAPS, PARTITION)
def test_different_maps_have_different_digests(services, default, other, other_default):
    one, two = PartitionMap(services, default), PartitionMap(other, other_default)
    assert (one.digest == two.digest) == (one == two)


def test_the_digest_of_no_map_is_fixed():
    assert PartitionMap.single().digest == "373a695ca07771c24809318ad548a9cf51fb768bfcac06e71035f6249468a09c"
    assert parse_partition_map("partitions: {}\ndefault: default\n", "p.yaml").digest == PartitionMap.single().digest
    assert len({PartitionMap.single(), PartitionMap({})}) == 1


# ---- the map against the rules --------------------------------------------------------------

SERVICES = textwrap.dedent("""\
    kind: Roles
    id: org-roles
    holders:
      service_level_manager: slm@example.org
      slm_process_owner: owner@example.org
    ---
    kind: Raci
    id: raci
    activities:
      tell-owner: {slm_process_owner: A/R}
    ---
    kind: Service
    id: email
    ---
    kind: Service
    id: hosting
    ---
    kind: Service
    id: desk
    ---
    kind: Agreement
    id: sla-email
    type: SLA
    service: email
    targets:
      - id: email-p1-response
        clock: {applies_to: {type: incident.opened, where: {priority: P1}}, stop: incident.acknowledged}
        goal: 15m
    ---
    kind: Agreement
    id: sla-hosting
    type: SLA
    service: hosting
    targets:
      - id: hosting-p1-response
        clock: {applies_to: {type: incident.opened, where: {priority: P1}}, stop: incident.acknowledged}
        goal: 30m
    """)


def rules(*documents: str):
    """The three services above plus the given Rule documents, loaded."""
    return load_texts({"services.yaml": SERVICES, "rules.yaml": "---\n".join(textwrap.dedent(d) for d in documents)})


def rule(rule_id: str, when: str, kind: str | None = None) -> str:
    then = f"[{{decide: {{kind: {kind}}}}}]" if kind else "[{notify: {activity: tell-owner}}]"
    return f"kind: Rule\nid: {rule_id}\nwhen: {when}\nthen: {then}\n"


SPLIT = PartitionMap({"email": "mail", "hosting": "web", "desk": "desk"})
SHARED = PartitionMap({"email": "mail", "hosting": "mail", "desk": "desk"})


def classes(ruleset, pmap=SPLIT) -> dict[str, tuple[str, str]]:
    return {name: (found.scope, found.reason) for name, found in classify_rules(ruleset, pmap).items()}


def test_services_the_rules_do_not_define_are_errors_at_the_maps_line():
    pmap = parse_partition_map("partitions:\n  email: mail\n  hostng: web\n  payroll: pay\n", "parts.yaml")
    assert [str(p) for p in check_against(pmap, rules())] == [
        "parts.yaml:3:3: partitions: service 'hostng' is not defined by the rule set: did you mean 'hosting'?",
        "parts.yaml:4:3: partitions: service 'payroll' is not defined by the rule set "
        "(services: email, desk, hosting)",
    ]


# ---- classifying Rules: each row of SCALING.md §2 -----------------------------------------------

@pytest.mark.parametrize("when, scope, reason", [
    # a Rule with one pattern
    ("[{type: decision.breach, where: {agreement_type: OLA}}]", "local", "one pattern"),
    ("{type: incident.opened}", "local", "one pattern"),
    # every later pattern tied to an earlier one by service
    ("[{as: ola, type: decision.breach}, {type: clock.running, where: {service: $ola.service, subject: $ola.subject}}]",
     "local", "joined by service: $ola.service"),
    ("[{as: a, type: decision.breach}, {as: b, type: decision.warning, where: {service: $a.service}},"
     " {type: decision.met, where: {all: [{service: $b.service}]}}]",
     "local", "joined by service: $a.service, $b.service"),
    # service pinned to constants in one partition
    ("[{type: decision.breach, where: {service: email}}, {type: decision.warning, where: {service: email}}]",
     "local", "service pinned to email (partition mail)"),
    ("[{type: decision.breach, where: {target: email-p1-response}},"
     " {type: clock.running, where: {service: {in: [email]}}}]",
     "local", "service pinned to email (partition mail)"),
    # a count whose same fixes the service, or whose of pins it
    ("{count: 3, of: {type: decision.breach}, same: [target], within: 30d}", "local", "count same: [target]"),
    ("{count: 3, of: {type: decision.breach}, same: [agreement]}", "local", "count same: [agreement]"),
    ("{count: 2, of: {type: incident.opened}, same: [service, subject]}", "local", "count same: [service, subject]"),
    ("{count: 2, of: {type: incident.opened, where: {service: hosting}}}", "local",
     "count of service hosting (partition web)"),
    # cross-partition: a join tied only by subject
    ("[{as: b, type: decision.breach}, {type: decision.warning, where: {subject: $b.subject}}]",
     "global", "joined by subject only: runs in the global partition"),
    # a tie that need not hold (inside any) does not tie
    ("[{as: b, type: decision.breach}, {type: decision.warning, where: {any: [{service: $b.service}, "
     "{subject: $b.subject}]}}]", "global", "joined by service, subject only: runs in the global partition"),
    ("[{type: decision.breach}, {type: decision.warning}]", "global",
     "its patterns share no field: runs in the global partition"),
    # cross-partition: a count with no same, or a same that fixes no service
    ("{count: 5, of: {type: decision.breach, where: {agreement_type: SLA}}, within: 7d}", "global",
     "count same: [] counts across all services: runs in the global partition"),
    ("{count: 3, of: {type: decision.breach}, same: [subject]}", "global",
     "count same: [subject] does not fix the service: runs in the global partition"),
    ("{count: 3, of: {type: incident.opened}, same: [target]}", "global",
     "count same: [target]: the target field of incident.opened facts is their own, not a target's, and does "
     "not fix the service: runs in the global partition"),
    # cross-partition: a join of facts from two services
    ("[{type: decision.breach, where: {service: email}}, {type: decision.breach, where: {service: hosting}}]",
     "global", "joins services email (mail) and hosting (web): runs in the global partition"),
    ("[{type: decision.breach, where: {target: email-p1-response}},"
     " {type: decision.breach, where: {target: hosting-p1-response}}]",
     "global", "joins services email (mail) and hosting (web): runs in the global partition"),
])
def test_each_row_of_the_table_classifies_as_designed(when, scope, reason):
    assert classes(rules(rule("r", when))) == {"r": (scope, reason)}


def test_services_pinned_in_one_partition_stay_local():
    ruleset = rules(rule("both", "[{type: decision.breach, where: {service: email}},"
                                 " {type: decision.breach, where: {service: hosting}}]"))
    assert classes(ruleset, SHARED) == {"both": ("local", "service pinned to email, hosting (partition mail)")}
    assert classes(ruleset, SPLIT)["both"][0] == "global"


def test_a_cross_partition_rule_on_running_clocks_is_an_error_at_its_pattern():
    ruleset = rules(rule("chase", "\n  - {as: b, type: decision.breach}\n"
                                  "  - {as: clk, type: clock.running, where: {subject: $b.subject}}"))
    assert classes(ruleset)["chase"] == ("global", "joined by subject only: runs in the global partition")
    assert [str(p) for p in check_against(SPLIT, ruleset)] == [
        "rules.yaml:5:5: rule 'chase' runs in the global partition (joined by subject only), where its pattern on "
        "clock.running can never match: clocks never leave their engine; add `service: $b.service` to this "
        "pattern to make the Rule local"]


def test_a_cross_partition_rule_on_other_facts_is_an_error_the_global_partition_sees_only_decisions():
    ruleset = rules(rule("ok", "[{type: decision.breach}]"),
                    rule("p1s", "{count: 10, of: {type: incident.opened, where: {priority: P1}}, within: 7d}"))
    assert [str(p) for p in check_against(SPLIT, ruleset)] == [
        "rules.yaml:8:23: rule 'p1s' runs in the global partition (count same: [] counts across all services), "
        "where its pattern on incident.opened can never match: the global partition receives only decisions, "
        "never incident.opened facts; add `service` to `same`, or pin `service` in `of`, to make the Rule local"]


def test_global_rules_on_decisions_alone_are_no_error():
    ruleset = rules(rule("org", "{count: 5, of: {type: decision.breach}, within: 7d}", "org-breaches"))
    assert classes(ruleset)["org"][0] == "global" and check_against(SPLIT, ruleset) == []


def test_a_rule_on_decisions_that_global_rules_make_is_global_to_a_fixpoint():
    ruleset = rules(
        rule("org", "{count: 5, of: {type: decision.breach}, within: 7d}", "org-breaches"),
        rule("review", "[{type: decision.org-breaches}]", "org-review"),
        rule("chase-review", "[{type: decision.org-review}]", "review-chased"),
        rule("warned", "[{type: decision.warning}]", "warned"),
        rule("improve", "{count: 2, of: {type: decision.review-chased}, same: [target]}", "improve"),
    )
    assert classes(ruleset) == {
        "org": ("global", "count same: [] counts across all services: runs in the global partition"),
        "review": ("global", "matches decision.org-breaches, which the global Rule 'org' decides: runs in the "
                             "global partition"),
        "chase-review": ("global", "matches decision.org-review, which the global Rule 'review' decides: runs in "
                                   "the global partition"),
        "improve": ("global", "matches decision.review-chased, which the global Rule 'chase-review' decides: "
                              "runs in the global partition"),
        "warned": ("local", "one pattern"),
    }
    found = classify_rules(ruleset, SPLIT)
    assert found["org"] == RuleClass("org", "global", found["org"].reason)
    assert global_kinds(found, ruleset) == {"breach", "org-breaches", "org-review", "review-chased"}


def test_a_kind_decided_both_locally_and_globally_makes_its_readers_global():
    # a local reader would miss the global Rule's decisions: global decisions never go back
    ruleset = rules(rule("local-credit", "[{type: decision.breach, where: {agreement_type: SLA}}]", "credit"),
                    rule("org-credit", "{count: 5, of: {type: decision.breach}}", "credit"),
                    rule("approve", "[{type: decision.credit}]", "approval"))
    assert classes(ruleset)["approve"] == (
        "global", "matches decision.credit, which the global Rule 'org-credit' decides: runs in the global partition")
    assert classes(ruleset)["local-credit"] == ("local", "one pattern")


def test_a_rule_made_global_by_the_fixpoint_that_needs_a_clock_is_an_error_naming_the_cause():
    ruleset = rules(rule("org", "{count: 5, of: {type: decision.breach}}", "org-breaches"),
                    rule("late", "\n  - {as: o, type: decision.org-breaches}\n"
                                 "  - {type: clock.running, where: {service: $o.service}}"))
    (problem,) = check_against(SPLIT, ruleset)
    assert str(problem).startswith("rules.yaml:10:5: rule 'late' runs in the global partition (matches "
                                   "decision.org-breaches, which the global Rule 'org' decides)")
    assert str(problem).endswith("keep the Rule 'org' local, or this one cannot be")


def test_with_one_partition_every_rule_is_local_and_says_what_it_would_be():
    ruleset = rules(rule("chase", "[{as: b, type: decision.breach}, "
                                  "{type: clock.running, where: {subject: $b.subject}}]"),
                    rule("pinned", "[{type: decision.breach, where: {service: email}}, "
                                   "{type: decision.breach, where: {service: hosting}}]"),
                    rule("mine", "{count: 3, of: {type: decision.breach}, same: [target]}"))
    for pmap in (PartitionMap.single(), PartitionMap({"email": "all", "hosting": "all", "desk": "all"}, "all")):
        assert classes(ruleset, pmap) == {
            "chase": ("local", "joined by subject only: global once its services are in different partitions, "
                               "where its clock.running pattern could never match (an error then)"),
            "pinned": ("local", "joins services email, hosting: global once its services are in different "
                                "partitions"),
            "mine": ("local", "count same: [target]"),
        }
        assert check_against(pmap, ruleset) == []
        assert global_kinds(classify_rules(ruleset, pmap), ruleset) == frozenset()


def test_the_shipped_rules_are_local():
    shipped = load_rules(RULES)
    pmap = load_partition_map(ROOT / "deploy" / "partitions.example.yaml")
    assert classes(shipped, pmap) == {
        "ola-breach-threatens-sla": ("local", "joined by service: $ola.service"),
        "repeated-breach-improvement": ("local", "count same: [target]"),
    }
    assert global_kinds(classify_rules(shipped, pmap), shipped) == frozenset()


# ---- slm check --partitions ----------------------------------------------------------------------

def check(*args: str):
    return CliRunner().invoke(main, ["check", *args], catch_exceptions=False)


def test_slm_check_prints_the_partitions_and_each_rules_class():
    example = str(ROOT / "deploy" / "partitions.example.yaml")
    result = check(str(RULES), "--partitions", example)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  partitions"))
    assert lines[start].startswith("  partitions     4  default, desk, mail, web  (map " + example + ", digest ")
    assert lines[start + 1:] == ["  rule classes   2  local 2, global 0",
                                 "    ola-breach-threatens-sla     local   joined by service: $ola.service",
                                 "    repeated-breach-improvement  local   count same: [target]"]


def test_slm_check_without_a_map_prints_no_partitions():
    result = CliRunner().invoke(main, ["check", str(RULES)], env={"SLM_PARTITIONS": None})
    assert result.exit_code == 0 and "partitions" not in result.output


def test_slm_check_fails_on_a_bad_map_naming_its_place(tmp_path):
    path = tmp_path / "parts.yaml"
    path.write_text("partitions:\n  email: mail\n  hosting: global\n")
    result = CliRunner().invoke(main, ["check", str(RULES), "--partitions", str(path)])
    assert result.exit_code == 1
    assert (f"1 error occurred:\n{path}:3:12: partitions.hosting: 'global' is reserved for the partition of "
            "cross-partition Rules: choose another name") in result.output
    assert "rule classes" not in result.output


def test_slm_check_prints_the_classes_then_fails_on_a_rule_the_global_partition_cannot_run(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "services.yaml").write_text(SERVICES)
    (tmp_path / "rules" / "rules.yaml").write_text(
        rule("chase", "\n  - {as: b, type: decision.breach}\n  - {type: clock.running, where: {subject: $b.subject}}")
        + "---\n" + rule("org", "{count: 5, of: {type: decision.breach}}", "org-breaches"))
    (tmp_path / "parts.yaml").write_text("partitions: {emial: mail, hosting: web}\n")
    result = CliRunner().invoke(main, ["check", str(tmp_path / "rules"), "--partitions", str(tmp_path / "parts.yaml")])
    assert result.exit_code == 1
    out = result.output
    assert "  rule classes   2  local 0, global 2\n" in out
    assert "    chase  global  joined by subject only: runs in the global partition\n" in out
    assert "  the global partition is fed the decisions: breach\n" in out
    assert "2 errors occurred:\n" in out
    assert f"{tmp_path / 'parts.yaml'}:1:14: partitions: service 'emial' is not defined by the rule set: " \
           "did you mean 'email'?" in out
    assert f"{tmp_path / 'rules' / 'rules.yaml'}:5:5: rule 'chase' runs in the global partition" in out


def test_the_map_can_come_from_the_environment():
    example = str(ROOT / "deploy" / "partitions.example.yaml")
    result = CliRunner().invoke(main, ["check", str(RULES)], env={"SLM_PARTITIONS": example})
    assert result.exit_code == 0 and "  rule classes   2  local 2, global 0" in result.output
