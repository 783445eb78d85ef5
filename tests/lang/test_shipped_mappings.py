"""The mappings shipped in rules/mappings/, each fed payloads written from its vendor's
documented webhook format: the facts they become, on the shipped rules' services and fact
types, and the reasons for those that become none."""
from __future__ import annotations

import pytest

from engine.lang.loader import load_rules
from engine.webhooks.translate import translate
from tests.support import RULES


@pytest.fixture(scope="module")
def mappings():
    return load_rules(RULES).mappings


def facts_of(mappings, name, payload):
    return translate(mappings[name], payload).facts


def brief(facts):
    return [(f["id"], f["type"], f["time"], f["subject"], f["service"], f["data"]) for f in facts]


def test_every_tool_has_its_mapping(mappings):
    assert sorted(mappings) == ["github", "jira", "opsgenie", "pagerduty", "servicenow", "zendesk"]
    assert {m.source for m in mappings.values()} == set(mappings)


# ---- Jira Service Management (webhookEvent, issue, changelog, timestamp in ms) ------------

def jira_issue(key="MAIL-12", project="MAIL", priority="Highest", status="Open"):
    return {"key": key, "id": "10012", "fields": {"project": {"key": project}, "priority": {"name": priority},
                                                  "status": {"name": status}, "issuetype": {"name": "Incident"}}}


def test_jira_issue_created_opens_an_incident_with_its_priority_on_the_project_s_service(mappings):
    payload = {"webhookEvent": "jira:issue_created", "timestamp": 1793847600000, "issue": jira_issue()}
    assert brief(facts_of(mappings, "jira", payload)) == [
        ("MAIL-12:created", "incident.opened", "2026-11-05T03:00:00Z", "MAIL-12", "email", {"priority": "P1"})]


def test_jira_status_and_priority_changes_of_one_update_are_one_fact_each(mappings):
    payload = {"webhookEvent": "jira:issue_updated", "timestamp": 1793851200000,
               "issue": jira_issue(key="WEB-3", project="WEB", priority="High", status="In Progress"),
               "changelog": {"id": "20001", "items": [
                   {"field": "status", "fromString": "Waiting for customer", "toString": "In Progress"},
                   {"field": "priority", "fromString": "Medium", "toString": "High"},
                   {"field": "assignee", "fromString": None, "toString": "Ann"}]}}
    assert brief(facts_of(mappings, "jira", payload)) == [
        ("WEB-3:20001:status", "incident.acknowledged", "2026-11-05T04:00:00Z", "WEB-3", "hosting", {}),
        ("WEB-3:20001:resumed", "incident.resumed", "2026-11-05T04:00:00Z", "WEB-3", "hosting", {}),
        ("WEB-3:20001:priority", "incident.updated", "2026-11-05T04:00:00Z", "WEB-3", "hosting", {"priority": "P2"})]


def test_jira_a_service_request_is_a_request_with_its_request_type_and_its_statuses(mappings):
    issue = jira_issue(key="DESK-9", project="DESK")
    issue["fields"]["issuetype"] = {"name": "Service Request"}
    issue["fields"]["customfield_10010"] = {"requestType": {"name": "Get access"}}
    created = {"webhookEvent": "jira:issue_created", "timestamp": 1793847600000, "issue": issue}
    (fact,) = facts_of(mappings, "jira", created)
    assert (fact["type"], fact["service"], fact["data"]["category"]) == ("request.opened", "service-desk",
                                                                         "Get access")
    updated = {"webhookEvent": "jira:issue_updated", "timestamp": 1793851200000, "issue": issue,
               "changelog": {"id": "9", "items": [
                   {"field": "status", "fromString": "Waiting for customer", "toString": "In Progress"},
                   {"field": "priority", "fromString": "Low", "toString": "High"}]}}
    assert [f["type"] for f in facts_of(mappings, "jira", updated)] == ["request.acknowledged", "request.resumed"]


def test_jira_resolving_on_an_unknown_project_lands_on_the_service_desk(mappings):
    payload = {"webhookEvent": "jira:issue_updated", "timestamp": 1793851200000,
               "issue": jira_issue(key="OPS-1", project="OPS"),
               "changelog": {"id": "7", "items": [{"field": "status", "fromString": "In Progress",
                                                   "toString": "Done"}]}}
    (fact,) = facts_of(mappings, "jira", payload)
    assert (fact["type"], fact["service"]) == ("incident.resolved", "service-desk")


def test_jira_a_status_the_mapping_does_not_know_is_a_reason(mappings):
    payload = {"webhookEvent": "jira:issue_updated", "timestamp": 1793851200000, "issue": jira_issue(),
               "changelog": {"id": "8", "items": [{"field": "status", "fromString": "Open", "toString": "Triage"}]}}
    result = translate(mappings["jira"], payload)
    assert result.facts == []
    assert any('is "incident:Triage", which its map does not name' in r for r in result.reasons)


# ---- ServiceNow (an incident record as the Table API gives it) ----------------------------

def snow_record(state, **fields):
    return {"number": "INC0010001", "sys_id": "abc", "state": state, "priority": "1",
            "subcategory": "email", "opened_at": "2026-11-05 03:00:00", "sys_updated_on": "2026-11-05 03:20:00",
            "sys_mod_count": "0" if state == "1" else "3", **fields}


def test_servicenow_a_new_record_is_an_incident_opened_at_opened_at(mappings):
    assert brief(facts_of(mappings, "servicenow", snow_record("1"))) == [
        ("INC0010001:opened", "incident.opened", "2026-11-05T03:00:00Z", "INC0010001", "email", {"priority": "P1"})]


def test_servicenow_each_later_state_is_its_fact_at_the_update(mappings):
    assert [(f["type"], f["time"]) for f in facts_of(mappings, "servicenow", snow_record("2"))] == [
        ("incident.acknowledged", "2026-11-05T03:20:00Z")]
    assert [f["type"] for f in facts_of(mappings, "servicenow", snow_record("6"))] == ["incident.resolved"]
    cancelled = translate(mappings["servicenow"], snow_record("8"))
    assert cancelled.facts == [] and any('state is "8"' in r for r in cancelled.reasons)


def test_servicenow_the_business_service_s_name_wins_over_the_subcategory(mappings):
    record = snow_record("1", business_service={"value": "27d3", "display_value": "Hosting"})
    assert facts_of(mappings, "servicenow", record)[0]["service"] == "hosting"


# ---- Zendesk (event-subscribed webhooks: type, detail, event) -----------------------------

def zendesk_event(kind, event=None, **detail):
    ticket = {"id": "35436", "created_at": "2026-11-05T03:00:00Z", "updated_at": "2026-11-05T03:30:00Z",
              "priority": "URGENT", "status": "NEW", "subject": "Mail is down", "tags": ["vip", "service_email"],
              **detail}
    return {"type": f"zen:event-type:ticket.{kind}", "account_id": 22129848, "id": "cbe4028c-7239-495d-b020",
            "time": "2026-11-05T03:30:00Z", "zendesk_event_version": "2022-11-06", "subject": "zen:ticket:35436",
            "detail": ticket, "event": event or {}}


def test_zendesk_a_created_ticket_opens_an_incident_on_its_tagged_service(mappings):
    assert brief(facts_of(mappings, "zendesk", zendesk_event("created"))) == [
        ("35436:created", "incident.opened", "2026-11-05T03:00:00Z", "ZD-35436", "email", {"priority": "P1"})]


@pytest.mark.parametrize("previous, current, expected", [
    ("NEW", "OPEN", "incident.acknowledged"), ("OPEN", "PENDING", "incident.pending"),
    ("PENDING", "OPEN", "incident.resumed"), ("OPEN", "SOLVED", "incident.resolved"),
    ("SOLVED", "OPEN", "incident.reopened"), ("HOLD", "OPEN", "incident.resumed"),
])
def test_zendesk_a_status_change_is_the_fact_it_means(mappings, previous, current, expected):
    payload = zendesk_event("status_changed", {"previous": previous, "current": current}, status=current)
    (fact,) = facts_of(mappings, "zendesk", payload)
    assert (fact["type"], fact["time"], fact["id"]) == (expected, "2026-11-05T03:30:00Z",
                                                         "35436:cbe4028c-7239-495d-b020")


def test_zendesk_a_priority_change_and_an_untagged_ticket(mappings):
    payload = zendesk_event("priority_changed", {"previous": "NORMAL", "current": "HIGH"}, tags=[])
    assert brief(facts_of(mappings, "zendesk", payload)) == [
        ("35436:cbe4028c-7239-495d-b020", "incident.updated", "2026-11-05T03:30:00Z", "ZD-35436", "service-desk",
         {"priority": "P2"})]


# ---- PagerDuty (webhooks v3) --------------------------------------------------------------

def pd_event(kind, priority=None, urgency="high", service="Email"):
    return {"event": {"id": "01DEN2EWKDUAT7XC47GBZJ1GNA", "event_type": kind, "resource_type": "incident",
                      "occurred_at": "2026-11-05T03:00:00.123Z", "agent": None, "client": None,
                      "data": {"id": "PGR0VU2", "type": "incident", "number": 2, "status": "triggered",
                               "title": "Mail relay down", "urgency": urgency,
                               "service": {"id": "PF9KMXH", "summary": service, "type": "service_reference"},
                               "priority": priority and {"id": "PSO75BM", "summary": priority,
                                                         "type": "priority_reference"}}}}


def test_pagerduty_triggered_opens_an_incident_with_its_priority(mappings):
    assert brief(facts_of(mappings, "pagerduty", pd_event("incident.triggered", "P1"))) == [
        ("01DEN2EWKDUAT7XC47GBZJ1GNA", "incident.opened", "2026-11-05T03:00:00.123Z", "PGR0VU2", "email",
         {"priority": "P1"})]


def test_pagerduty_without_a_priority_the_urgency_gives_one(mappings):
    (fact,) = facts_of(mappings, "pagerduty", pd_event("incident.triggered", urgency="low", service="Billing"))
    assert (fact["data"], fact["service"]) == ({"priority": "P3"}, "hosting")


@pytest.mark.parametrize("kind, expected", [("incident.acknowledged", "incident.acknowledged"),
                                            ("incident.resolved", "incident.resolved"),
                                            ("incident.priority_updated", "incident.updated")])
def test_pagerduty_later_events(mappings, kind, expected):
    assert [f["type"] for f in facts_of(mappings, "pagerduty", pd_event(kind, "P2"))] == [expected]


def test_pagerduty_an_annotation_maps_to_nothing(mappings):
    result = translate(mappings["pagerduty"], pd_event("incident.annotated"))
    assert result.facts == [] and 'event.event_type is "incident.annotated"' in result.reasons[0]


# ---- Opsgenie (Webhook integration: action, alert) ----------------------------------------

def og_alert(action, **alert):
    return {"action": action, "alert": {"alertId": "70413a06-38d6-4c85-92b8-5ebc900d42e2", "alias": "mx-down",
                                        "message": "MX down", "tags": ["service:email", "prod"],
                                        "createdAt": 1793847600000, "updatedAt": 1793848500000000000,
                                        "priority": "P2", **alert},
            "source": {"name": "web", "type": "API"}, "integrationName": "Webhook"}


def test_opsgenie_create_acknowledge_and_close(mappings):
    assert brief(facts_of(mappings, "opsgenie", og_alert("Create"))) == [
        ("70413a06-38d6-4c85-92b8-5ebc900d42e2:create", "incident.opened", "2026-11-05T03:00:00Z",
         "70413a06-38d6-4c85-92b8-5ebc900d42e2", "email", {"priority": "P2"})]
    assert [(f["type"], f["time"]) for f in facts_of(mappings, "opsgenie", og_alert("Acknowledge"))] == [
        ("incident.acknowledged", "2026-11-05T03:15:00Z")]
    assert [f["type"] for f in facts_of(mappings, "opsgenie", og_alert("Close"))] == ["incident.resolved"]
    assert facts_of(mappings, "opsgenie", og_alert("AddNote")) == []


# ---- GitHub (issues events) ---------------------------------------------------------------

def gh_issue(action, labels=(), **extra):
    return {"action": action,
            "issue": {"id": 2110001, "number": 42, "title": "Web site down", "state": "open",
                      "labels": [{"id": n, "name": name} for n, name in enumerate(labels)],
                      "created_at": "2026-11-05T03:00:00Z", "updated_at": "2026-11-05T03:10:00Z",
                      "closed_at": None},
            "repository": {"id": 1, "name": "hosting", "full_name": "acme/hosting"},
            "sender": {"login": "octocat"}, **extra}


def test_github_an_opened_issue_with_a_priority_label(mappings):
    assert brief(facts_of(mappings, "github", gh_issue("opened", ["bug", "P1"]))) == [
        ("issue:2110001:opened", "incident.opened", "2026-11-05T03:00:00Z", "acme/hosting#42", "hosting",
         {"priority": "P1"})]


def test_github_labelled_with_a_priority_is_an_update_and_another_label_is_nothing(mappings):
    labelled = gh_issue("labeled", ["P2"], label={"id": 9, "name": "P2"})
    assert [(f["type"], f["data"]) for f in facts_of(mappings, "github", labelled)] == [
        ("incident.updated", {"priority": "P2"})]
    assert facts_of(mappings, "github", gh_issue("labeled", ["bug"], label={"id": 1, "name": "bug"})) == []


def test_github_closed_resolves_at_closed_at(mappings):
    closed = gh_issue("closed")
    closed["issue"].update(state="closed", closed_at="2026-11-05T05:00:00Z")
    assert [(f["type"], f["time"]) for f in facts_of(mappings, "github", closed)] == [
        ("incident.resolved", "2026-11-05T05:00:00Z")]
