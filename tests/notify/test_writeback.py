"""Write-back (engine/lang/writeback.py, engine/notify/writeback.py): an escalation level's
``call`` to Jira, ServiceNow or PagerDuty, loaded and checked with the rules, rendered when
the decision is routed and sent to a real HTTP receiver standing in for the tool, whose
requests are checked for method, path, headers, authentication and JSON body."""
from __future__ import annotations

import base64
import functools
import os
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from engine.notify.deliver import Channels, DeliveryError, send
from engine.notify.group import group
from engine.notify.route import route
from schemas.records import Decision
from tests.support import PORTFOLIO
from tests.support.receivers import ApiReceiver

ESCALATIONS = (PORTFOLIO / "policies" / "escalations.yaml").read_text()
LEVEL = "  - {at: 100%,      activity: breach-handling}\n"
LEVEL_LINE = ESCALATIONS[:ESCALATIONS.index(LEVEL)].count("\n") + 1
CREDENTIALS = {"JIRA_USER": "slm-bot@example.org", "JIRA_TOKEN": "jira-api-token", "SN_USER": "slm.integration",
               "SN_PASSWORD": "sn-password", "PD_ROUTING_KEY": "R0UT1NGKEY0123456789abcdef012345"}


@pytest.fixture(scope="module")
def server():
    receiver = ApiReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def tool(server):
    """The receiver, with no requests and no answers of an earlier test."""
    server.requests.clear()
    server.answers.clear()
    return server


@pytest.fixture
def environment(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


FILES = {str(p.relative_to(PORTFOLIO)): p.read_text() for p in sorted(PORTFOLIO.rglob("*.yaml"))}


def rules(call: str):
    """The portfolio with the P1 escalation's 100% level calling ``call`` (YAML, indented as
    a level's field); loaded once per text and set of credentials in the environment."""
    return _loaded(call, frozenset(name for name in CREDENTIALS if name in os.environ))


@functools.lru_cache(maxsize=16)
def _loaded(call: str, _environment: frozenset[str]):
    level = f"  - at: 100%\n    activity: breach-handling\n    call:\n{call}"
    return load_texts({**FILES, "policies/escalations.yaml": ESCALATIONS.replace(LEVEL, level, 1)})


def breach(ruleset, subject="MAIL-42"):
    level = ruleset.escalations["p1-escalation"].levels[1]
    return Decision(id="dec_7", kind="escalation", target="email-p1-response", subject=subject, service="email",
                    agreement="sla-email", at=datetime(2026, 11, 5, 3, 15, tzinfo=UTC), shadow=False, data={},
                    rule={"id": "p1-escalation", "file": "policies/escalations.yaml", "line": level.origin.line},
                    because=[], level="100%", activity="breach-handling")


def write_back(ruleset, decision):
    """The write-back notification routed for ``decision``, and its message as the worker sends it."""
    [note] = [n for n in route(decision, ruleset) if n.channel == "writeback"]
    [message] = group([note.as_dict()])
    return note, message


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


JIRA = """\
      jira:
        url: {url}
        comment: "SLA breached: {{{{ target }}}} at {{{{ level }}}} ({{{{ at }}}})"
        fields: {{priority: {{name: Highest}}, labels: [sla-breach, "{{{{ target }}}}"]}}
        credentials: {{user_env: JIRA_USER, token_env: JIRA_TOKEN}}
"""


def test_jira_gets_a_comment_and_a_field_update_with_basic_auth(tool, environment):
    ruleset = rules(JIRA.format(url=tool.url))
    note, message = write_back(ruleset, breach(ruleset))
    assert note.recipient == f"{tool.url}/rest/api/2/issue/MAIL-42" and note.roles == ["call"]
    assert note.call["comment"] == "SLA breached: email-p1-response at 100% (2026-11-05T03:15:00Z)"
    assert note.call["credentials"] == {"user_env": "JIRA_USER", "token_env": "JIRA_TOKEN"}     # names only
    assert "jira-api-token" not in str(note.as_dict())
    send(message, {}, Channels(timeout=5))
    comment, update = tool.requests
    assert (comment["method"], comment["path"]) == ("POST", "/rest/api/2/issue/MAIL-42/comment")
    assert comment["body"] == {"body": "SLA breached: email-p1-response at 100% (2026-11-05T03:15:00Z)"}
    assert (update["method"], update["path"]) == ("PUT", "/rest/api/2/issue/MAIL-42")
    assert update["body"] == {"fields": {"priority": {"name": "Highest"}, "labels": ["sla-breach",
                                                                                      "email-p1-response"]}}
    for request in tool.requests:
        assert request["headers"]["Authorization"] == basic("slm-bot@example.org", "jira-api-token")
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["headers"]["Accept"] == "application/json"


SERVICENOW = """\
      servicenow:
        url: {url}
        fields: {{urgency: "1", work_notes: "{{{{ message }}}}"}}
        credentials: {{user_env: SN_USER, token_env: SN_PASSWORD}}
"""


def test_servicenow_finds_the_incident_by_number_then_patches_it(tool, environment):
    tool.answer("GET", "/api/now/table/incident?", 200, {"result": [{"sys_id": "9d385017c611228701d22104cc95c371"}]})
    ruleset = rules(SERVICENOW.format(url=tool.url))
    note, message = write_back(ruleset, breach(ruleset, subject="INC0010023"))
    send(message, {}, Channels(timeout=5))
    lookup, patch = tool.requests
    assert lookup["method"] == "GET" and lookup["body"] is None
    assert lookup["path"] == ("/api/now/table/incident?sysparm_query=number%3DINC0010023&sysparm_fields=sys_id"
                              "&sysparm_limit=1")
    assert (patch["method"], patch["path"]) == ("PATCH", "/api/now/table/incident/9d385017c611228701d22104cc95c371")
    assert patch["body"] == {"urgency": "1", "work_notes": note.message}
    assert note.message.startswith("breach-handling: escalation of email-p1-response for INC0010023")
    assert {r["headers"]["Authorization"] for r in tool.requests} == {basic("slm.integration", "sn-password")}


def test_servicenow_with_a_sys_id_patches_at_once_and_a_token_alone_is_a_bearer(tool, environment):
    spec = SERVICENOW.replace("user_env: SN_USER, ", "").replace("        fields:", "        sys_id: abc123\n"
                                                                                       "        fields:")
    ruleset = rules(spec.format(url=tool.url))
    send(write_back(ruleset, breach(ruleset))[1], {}, Channels(timeout=5))
    [patch] = tool.requests
    assert (patch["method"], patch["path"]) == ("PATCH", "/api/now/table/incident/abc123")
    assert patch["headers"]["Authorization"] == "Bearer sn-password"


def test_servicenow_without_the_incident_fails_saying_so(tool, environment):
    tool.answer("GET", "/api/now/table/incident?", 200, {"result": []})
    ruleset = rules(SERVICENOW.format(url=tool.url))
    with pytest.raises(DeliveryError) as failed:
        send(write_back(ruleset, breach(ruleset, subject="INC0099999"))[1], {}, Channels(timeout=5))
    assert "has no record numbered 'INC0099999'" in failed.value.reason and not failed.value.retry
    assert [r["method"] for r in tool.requests] == ["GET"]


PAGERDUTY = """\
      pagerduty:
        url: {url}/v2/enqueue
        severity: "{{% if level == '100%' %}}critical{{% else %}}warning{{% endif %}}"
        component: "{{{{ service }}}}"
        custom_details: {{target: "{{{{ target }}}}", subject: "{{{{ subject }}}}"}}
        credentials: {{token_env: PD_ROUTING_KEY}}
"""


def test_pagerduty_gets_an_events_v2_trigger_with_the_routing_key(tool, environment):
    tool.answer("POST", "/v2/enqueue", 202, {"status": "success", "dedup_key": "email-p1-response/MAIL-42"})
    ruleset = rules(PAGERDUTY.format(url=tool.url))
    note, message = write_back(ruleset, breach(ruleset))
    assert "R0UT1NG" not in str(note.as_dict())
    send(message, {}, Channels(timeout=5))
    [trigger] = tool.requests
    assert (trigger["method"], trigger["path"]) == ("POST", "/v2/enqueue")
    assert "Authorization" not in trigger["headers"] and trigger["headers"]["Content-Type"] == "application/json"
    assert trigger["body"] == {
        "routing_key": "R0UT1NGKEY0123456789abcdef012345", "event_action": "trigger",
        "dedup_key": "email-p1-response/MAIL-42", "client": "slm",
        "payload": {"summary": note.message, "source": "slm", "severity": "critical", "component": "email",
                    "custom_details": {"target": "email-p1-response", "subject": "MAIL-42"}}}


@pytest.mark.parametrize("status, retried", [(503, True), (429, True), (400, False), (401, False)])
def test_a_refusal_is_a_delivery_error_retried_as_a_webhook_is(tool, environment, status, retried):
    tool.answer("POST", "/rest/api/2/issue/MAIL-42/comment", status, {"errorMessages": ["Issue does not exist"]})
    ruleset = rules(JIRA.format(url=tool.url))
    with pytest.raises(DeliveryError) as failed:
        send(write_back(ruleset, breach(ruleset))[1], {}, Channels(timeout=5))
    assert failed.value.retry is retried
    assert failed.value.reason == (f"HTTP {status} from POST {tool.url}/rest/api/2/issue/MAIL-42/comment: "
                                   '{"errorMessages":["Issue does not exist"]}')


def test_a_missing_credential_is_a_clear_delivery_error_and_a_check_warning(tool, environment, monkeypatch):
    monkeypatch.delenv("JIRA_TOKEN")
    ruleset = rules(JIRA.format(url=tool.url))
    [warning] = [w for w in ruleset.warnings if w.code == "credentials"]
    assert str(warning).startswith(f"policies/escalations.yaml:{LEVEL_LINE + 7}:")
    assert "JIRA_TOKEN is not set in this environment: slm serve needs it to write back to jira" in str(warning)
    with pytest.raises(DeliveryError) as failed:
        send(write_back(ruleset, breach(ruleset))[1], {}, Channels(timeout=5))
    assert failed.value.reason == (f"JIRA_TOKEN is not set in slm's environment: the jira write-back of "
                                   f"policies/escalations.yaml:{LEVEL_LINE} needs it (credentials: token_env)")
    assert not failed.value.retry and tool.requests == []


def test_each_write_back_is_a_message_of_its_own():
    ruleset = rules(JIRA.format(url="https://jira.example.org"))
    decisions = [breach(ruleset), replace(breach(ruleset), id="dec_8")]         # the same issue, twice
    notes = [n.as_dict() for d in decisions for n in route(d, ruleset) if n.channel == "writeback"]
    assert len(notes) == 2 and len(group(notes)) == 2


@pytest.mark.parametrize("call, expected", [
    (JIRA.replace('"SLA breached: {{{{ target }}}}', '"SLA breached: {{{{ target '), f"{LEVEL_LINE + 5}:18: "
     "comment: template error on its line 1: expected token 'end of print statement', got 'at'"),
    (JIRA.replace("        comment: \"SLA breached: {{{{ target }}}} at {{{{ level }}}} ({{{{ at }}}})\"\n", "")
     .replace("        fields: {{priority: {{name: Highest}}, labels: [sla-breach, \"{{{{ target }}}}\"]}}\n", ""),
     f"{LEVEL_LINE + 4}:9: comment: give a comment, fields to update, or both"),
    (PAGERDUTY.replace("token_env: PD_ROUTING_KEY", "user_env: PD_USER, token_env: PD_ROUTING_KEY"),
     f"{LEVEL_LINE + 8}:22: credentials: the Events API of PagerDuty takes a routing key alone"),
    (JIRA.replace("token_env: JIRA_TOKEN", "token_env: JIRA-TOKEN"),
     f"{LEVEL_LINE + 7}:55: token_env: 'JIRA-TOKEN' is not an environment variable name"),
    (JIRA.replace("      jira:", "      jira_cloud:"), f"{LEVEL_LINE + 3}:7: unknown field 'jira_cloud'"),
])
def test_each_mistake_is_an_error_at_its_place(call, expected, environment):
    with pytest.raises(RuleSetError) as caught:
        rules(call.format(url="https://jira.example.org"))
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1 and problems[0].startswith(f"policies/escalations.yaml:{expected}"), problems
