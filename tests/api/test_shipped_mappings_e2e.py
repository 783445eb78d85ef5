"""The shipped mappings on the shipped rules, through POST /v1/ingest/{mapping}: each
vendor's own published webhook samples (read from the shared external folder, never
copied here; skipped when it is absent) and a written Zendesk ticket, signed as each
vendor signs, become stored facts on the shipped services."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import ROOT, RULES

SAMPLES = Path(os.environ.get("SLM_EXTERNAL_SAMPLES", ROOT.parent / "shared" / "external")) / "webhooks"
SECRETS = {name: f"{name}-secret" for name in ("jira", "servicenow", "zendesk", "pagerduty", "opsgenie", "github")}
NOW = "2026-11-05T04:00:00Z"


@pytest.fixture
def env(url, wall, monkeypatch):
    for name, secret in SECRETS.items():
        monkeypatch.setenv(f"SLM_{name.upper()}_SECRET", secret)
    store = Store.open(url)
    wall.set(NOW)
    service = SlmService(store, RULES, now=wall)
    service.start(background=False)
    client = create_app(service).test_client()
    tokens = {role: store.add_token(role) for role in ("monitor", "auditor")}
    yield type("Env", (), {"client": client, "store": store, "tokens": tokens})
    service.stop()
    store.close()


def signature_headers(mapping: str, raw: bytes) -> dict[str, str]:
    """The headers each vendor signs a request with (rules/mappings/*.yaml)."""
    key = SECRETS[mapping].encode()
    digest = hmac.new(key, raw, hashlib.sha256).hexdigest()
    if mapping == "github":
        return {"X-Hub-Signature-256": "sha256=" + digest}
    if mapping == "jira":
        return {"X-Hub-Signature": "sha256=" + digest}
    if mapping == "pagerduty":
        return {"X-PagerDuty-Signature": f"v1={digest}"}
    if mapping == "zendesk":
        stamp = "2026-11-05T03:59:30Z"
        signed = base64.b64encode(hmac.new(key, stamp.encode() + raw, hashlib.sha256).digest()).decode()
        return {"X-Zendesk-Webhook-Signature": signed, "X-Zendesk-Webhook-Signature-Timestamp": stamp}
    return {"X-Slm-Secret": SECRETS[mapping]}


def deliver(env, mapping: str, raw: bytes, sent: bytes | None = None):
    """Post ``raw`` signed (or ``sent`` instead, with the signature of ``raw``)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {env.tokens['monitor']}",
               **signature_headers(mapping, raw)}
    return env.client.post(f"/v1/ingest/{mapping}", data=raw if sent is None else sent, headers=headers)


def stored(env, subject: str) -> list[dict]:
    answer = env.client.get("/v1/facts", query_string={"subject": subject},
                            headers={"Authorization": f"Bearer {env.tokens['auditor']}"})
    return [(i["fact"]["source"], i["fact"]["type"], i["fact"]["time"], i["fact"]["service"], i["fact"]["data"])
            for i in answer.get_json()["items"]]


def test_a_written_zendesk_ticket_is_stored_on_its_service(env):
    payload = {"type": "zen:event-type:ticket.created", "account_id": 22129848, "id": "cbe4028c-7239",
               "time": "2026-11-05T03:00:00Z", "zendesk_event_version": "2022-11-06", "subject": "zen:ticket:35436",
               "detail": {"id": "35436", "created_at": "2026-11-05T03:00:00Z", "priority": "URGENT", "status": "NEW",
                          "tags": ["service_email"]}, "event": {}}
    answer = deliver(env, "zendesk", json.dumps(payload).encode())
    assert answer.status_code == 200, answer.get_json()
    assert {d["target"] for d in answer.get_json()["decisions"] if d["kind"] == "breach"} >= {"email-p1-response"}
    assert stored(env, "ZD-35436") == [("zendesk", "incident.opened", "2026-11-05T03:00:00Z", "email",
                                        {"priority": "P1"})]
    other = json.dumps({**payload, "id": "another"}).encode()
    assert deliver(env, "zendesk", json.dumps(payload).encode(), sent=other).status_code == 401


# (file, mapping) in event-time order per subject, and what each becomes: (subject, type, time,
# service, data), or None for a sample that maps to no fact.
PUBLISHED = [
    ("jira/issue_created.json", "jira",
     ("BUG-15", "incident.opened", "2013-03-27T16:53:58.369Z", "service-desk", {"priority": "P3"})),
    ("jira/issue_updated.priority.json", "jira",
     ("TEST-1", "incident.updated", "2014-02-26T19:57:13.145Z", "service-desk", {"priority": "P3"})),
    ("jira/issue_updated.status.json", "jira",
     ("TEST-1", "incident.acknowledged", "2017-01-30T17:32:14.721Z", "service-desk", {})),
    ("servicenow/incident.record.json", "servicenow",
     ("INC0000060", "incident.resolved", "2016-12-14T02:46:44Z", "email", {})),
    ("pagerduty/incident.triggered.json", "pagerduty",
     ("PFQZPSY", "incident.opened", "2021-06-04T13:35:29.781Z", "hosting", {"priority": "P2"})),
    ("pagerduty/incident.acknowledged.json", "pagerduty",
     ("PQ1K5C8", "incident.acknowledged", "2021-06-04T13:55:30.394Z", "hosting", {"priority": "P2"})),
    ("pagerduty/incident.resolved.json", "pagerduty",
     ("PCPZE64", "incident.resolved", "2021-06-04T13:16:53.816Z", "hosting", {"priority": "P2"})),
    ("pagerduty/incident.priority_updated.json", "pagerduty",
     ("PGR0VU2", "incident.updated", "2020-10-02T18:45:22.169Z", "hosting", {"priority": "P1"})),
    ("pagerduty/service.updated.json", "pagerduty", None),
    ("opsgenie/create.json", "opsgenie",
     ("ec03dad6-62c8-4c94-b38b-d88f398e900f", "incident.opened", "2017-08-14T11:25:56.288Z", "hosting",
      {"priority": "P3"})),
    ("opsgenie/acknowledge.json", "opsgenie",
     ("052652ac-5d1c-464a-812a-7dd18bbfba8c", "incident.acknowledged", "2015-01-05T10:03:44.764002Z", "hosting", {})),
    ("opsgenie/close.json", "opsgenie",
     ("052652ac-5d1c-464a-812a-7dd18bbfba8c", "incident.resolved", "2015-01-05T10:06:14.669001Z", "hosting", {})),
    ("github/issues.opened.json", "github",
     ("Codertocat/Hello-World#1", "incident.opened", "2019-05-15T15:20:18Z", "hosting", {})),
    ("github/issues.labeled.json", "github", None),
    ("github/issues.closed.json", "github",
     ("Pritesh-30/test-repo#8", "incident.resolved", "2026-01-31T08:11:37Z", "hosting", {})),
]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no published webhook samples at {SAMPLES}")
def test_the_vendors_published_samples_become_the_expected_stored_facts(env):
    for file, mapping, expected in PUBLISHED:
        answer = deliver(env, mapping, (SAMPLES / file).read_bytes())
        assert answer.status_code == 200, (file, answer.get_json())
        body = answer.get_json()
        if expected is None:
            assert body["accepted"] == 0 and body["reasons"], file
            continue
        assert body["accepted"] == 1, (file, body)
        subject, *fact = expected
        assert (mapping, *fact) in stored(env, subject), file
