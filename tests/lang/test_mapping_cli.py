"""Mappings checked like rules (``slm check``) and a payload explained
(``slm explain --mapping NAME FILE.json``), through the CLI as a user runs it."""
from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from cli import main
from tests.support import PORTFOLIO, ROOT, RULES

TICKETS = ROOT / "tests" / "rulesets" / "mappings" / "tickets.yaml"


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_check_lists_the_mappings_of_the_shipped_rules():
    result = run("check", "--strict", str(RULES))
    assert result.exit_code == 0, result.output
    assert "  mappings       6  github, jira, opsgenie, pagerduty, servicenow, zendesk" in result.output


def test_check_places_every_mistake_of_a_mapping_at_file_line_column(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    text = TICKETS.read_text().replace("join('-', [ticket.key, 'created'])", "join('-', [ticket.key, 'created']")
    first_map = "WEB: hosting}, default: service-desk}\n    data"
    text = text.replace(first_map, first_map.replace("hosting", "hostng"))
    (rules / "tickets.yaml").write_text(text)
    result = run("check", str(rules))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "tickets.yaml" in line]
    assert len(lines) == 2 and result.output.startswith("2 errors occurred:")
    assert lines[0].startswith(f"{rules / 'tickets.yaml'}:9:") and "id: not a JMESPath expression" in lines[0]
    assert lines[1].startswith(f"{rules / 'tickets.yaml'}:13:") and "'hostng' is not a service" in lines[1]


def test_explain_shows_the_facts_a_payload_becomes_and_why(tmp_path):
    payload = tmp_path / "created.json"
    payload.write_text(json.dumps({"webhookEvent": "jira:issue_created", "timestamp": 1793847600000,
                                   "issue": {"key": "MAIL-12", "fields": {"project": {"key": "MAIL"},
                                                                          "priority": {"name": "Highest"}}}}))
    result = run("explain", "--rules", str(RULES), "--mapping", "jira", str(payload))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "mapping jira (source jira): 1 fact"
    assert lines[1] == ("fact MAIL-12:created (incident.opened, MAIL-12) on service email at 2026-11-05T03:00:00Z, "
                        "made by facts[0]:")
    assert "  time: timestamp is 1793847600000, read as epoch_ms: 2026-11-05T03:00:00Z" in lines
    assert "  service: issue.fields.project.key is \"MAIL\", mapped to \"email\"" in lines
    assert "  email-p1-response: starts the clock of MAIL-12 (as its state allows)" in lines
    assert "  email-p2-response: not affected: applies_to: where priority: \"P1\" ≠ \"P2\"" in lines
    assert sum(line.startswith("not made: facts[") for line in lines) == 3


def test_explain_says_when_a_payload_maps_to_nothing_and_what_the_intake_would_refuse(tmp_path):
    nothing = run("explain", "--rules", str(RULES), "--mapping", "github", '{"action": "deleted"}')
    assert nothing.output.splitlines()[0] == ("mapping github (source github): 0 facts, so POST /v1/ingest "
                                              "answers 200 and stores nothing")
    bad_time = {"action": "opened", "issue": {"id": 1, "number": 2, "created_at": "yesterday", "labels": []},
                "repository": {"name": "email", "full_name": "acme/email"}}
    answer = json.loads(run("explain", "--rules", str(RULES), "--mapping", "github", "--json",
                            json.dumps(bad_time)).output)
    (fact,) = answer["facts"]
    assert fact["fact"]["service"] == "email" and list(fact["refused"]) == ["time"]


def test_explain_names_the_mappings_when_the_name_is_unknown():
    result = run("explain", "--rules", str(RULES), "--mapping", "jria", "{}")
    assert result.exit_code == 2
    assert "no mapping 'jria' in the rules (mappings: github, jira, opsgenie, pagerduty, servicenow, zendesk)" \
        in result.output
