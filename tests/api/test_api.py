"""The HTTP API through Flask's test client over the real service, on SQLite and PostgreSQL.

Real clients' payloads: the CloudEvents Python SDK's structured and binary modes, and an
Alertmanager webhook payload (version 4) as Alertmanager sends it.
"""
from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from api.app import create_app
from api.auth import TOKEN_CACHE_SECONDS
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact, fact_count
from tests.support.api import ALERTS, PROBLEM, auth, get, p1, post

# ---- auth -------------------------------------------------------------------------------

def test_tokens_and_roles_guard_every_v1_route(env):
    moment = [1000.0]
    env.client.application.extensions["slm_tokens"].clock = lambda: moment[0]
    no_token = env.client.get("/v1/decisions")
    assert no_token.status_code == 401 and no_token.mimetype == PROBLEM
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")
    bad = env.client.get("/v1/decisions", headers={"Authorization": "Bearer slm_not-a-token"})
    assert bad.status_code == 401
    assert get(env, "/v1/decisions", role="monitor").status_code == 403
    forbidden = post(env, p1(), role="auditor")
    assert forbidden.status_code == 403 and "allowed: monitor, admin" in forbidden.json["detail"]
    assert env.client.post("/v1/rules/reload", headers=auth(env, "auditor")).status_code == 403
    assert fact_count(env.store) == 0
    revoked = env.tokens["auditor"]
    assert get(env, "/v1/decisions").status_code == 200
    env.store.revoke_token(revoked)
    assert get(env, "/v1/decisions").status_code == 200       # a checked token is trusted a while
    moment[0] += TOKEN_CACHE_SECONDS + 0.1
    assert get(env, "/v1/decisions").status_code == 401
    assert get(env, "/v1/decisions", role="admin").status_code == 200     # checked again: still valid
    for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert env.client.get(open_path).status_code == 200, open_path


# ---- ingestion --------------------------------------------------------------------------

def test_one_fact_is_accepted_and_its_decisions_listed(env):
    response = post(env, p1())
    assert response.status_code == 200
    body = response.json
    assert body["accepted"] == 1 and body["duplicates"] == 0
    assert body["results"][0]["status"] == "accepted"
    breach = [d for d in body["decisions"] if d["kind"] == "breach" and d["target"] == "email-p1-response"]
    assert [d["at"] for d in breach] == ["2026-11-05T03:15:00Z"]      # the wall clock is 04:00
    again = post(env, p1())
    assert again.json["duplicates"] == 1 and again.json["decisions"] == []
    assert again.json["results"][0]["decisions"] == body["results"][0]["decisions"]


def test_an_array_is_all_or_nothing_with_each_bad_field_named(env):
    bad = post(env, [p1(), {"id": "x", "source": "s", "type": "incident.opened", "time": "2026-11-05T03:00:00",
                            "service": "email", "colour": "red"}])
    assert bad.status_code == 422 and bad.mimetype == PROBLEM
    assert set(bad.json["errors"]) == {"[1].time", "[1].colour"}
    assert "no UTC offset" in bad.json["errors"]["[1].time"][0]
    assert fact_count(env.store) == 0
    good = post(env, [p1(), p1("f2", subject="INC-2")])
    assert good.json["accepted"] == 2


@pytest.mark.parametrize("body, content_type, status", [
    (b"{not json", "application/json", 400),
    (b"[]", "application/json", 422),
    (b"id=1", "application/x-www-form-urlencoded", 415),
    (b"[{}]", "application/cloudevents+json", 400),
    (b"{}", "application/cloudevents-batch+json", 400),
])
def test_malformed_bodies_get_a_problem_and_store_nothing(env, body, content_type, status):
    response = env.client.post("/v1/facts", data=body, content_type=content_type, headers=auth(env, "monitor"))
    assert response.status_code == status and response.mimetype == PROBLEM
    assert response.json["status"] == status and response.json["detail"]
    assert fact_count(env.store) == 0


def cloudevent(id, type, time, subject, **data):
    return CloudEvent(attributes={"id": id, "source": "itsm/prod", "type": type, "subject": subject,
                                  "time": datetime.fromisoformat(time.replace("Z", "+00:00")),
                                  "datacontenttype": "application/json", "service": "email"}, data=data)


def test_cloudevents_sdk_structured_binary_and_batch_modes_are_accepted(env):
    env.wall.set("2026-11-05T03:00:01Z")
    opened = ce_http.to_structured_event(cloudevent("ce-1", "incident.opened", "2026-11-05T03:00:00Z", "INC-7",
                                                    priority="P1"))
    response = env.client.post("/v1/facts", data=opened.body, headers={**opened.headers, **auth(env, "monitor")})
    assert response.status_code == 200, response.json
    assert response.json["accepted"] == 1

    env.wall.set("2026-11-05T03:05:01Z")
    pending = ce_http.to_binary_event(cloudevent("ce-2", "incident.pending", "2026-11-05T03:05:00Z", "INC-7",
                                                 reason="waiting for customer"))
    assert any(h.startswith("ce-") for h in pending.headers)
    response = env.client.post("/v1/facts", data=pending.body, headers={**pending.headers, **auth(env, "monitor")})
    assert response.status_code == 200, response.json
    stored = env.store.fact("itsm/prod", "ce-2")
    assert stored["service"] == "email" and stored["subject"] == "INC-7"
    assert stored["data"] == {"reason": "waiting for customer"}

    env.wall.set("2026-11-05T03:30:01Z")
    fmt = JSONFormat()
    batch = [json.loads(fmt.write(cloudevent(f"ce-{n}", t, at, "INC-7")))
             for n, t, at in ((3, "incident.resumed", "2026-11-05T03:25:00Z"),
                              (4, "incident.acknowledged", "2026-11-05T03:30:00Z"))]
    response = env.client.post("/v1/facts", data=json.dumps(batch), content_type="application/cloudevents-batch+json",
                               headers=auth(env, "monitor"))
    assert response.status_code == 200 and response.json["accepted"] == 2
    # paused 03:05-03:25: 10 of 15 minutes counted at 03:30: met, never breached
    decisions = get(env, "/v1/decisions", subject="INC-7", target="email-p1-response").json["items"]
    assert [(d["kind"], d["at"]) for d in decisions if d["kind"] in ("breach", "met")] == [
        ("met", "2026-11-05T03:30:00Z")]


def test_an_alertmanager_webhook_becomes_facts_and_repeats_are_duplicates(env):
    firing = json.loads((ALERTS / "email-down-firing.json").read_text())
    resolved = json.loads((ALERTS / "email-down-resolved.json").read_text())
    first = post(env, firing, path="/v1/ingest/alertmanager")
    assert first.status_code == 200 and first.json["accepted"] == 1
    assert post(env, firing, path="/v1/ingest/alertmanager").json["duplicates"] == 1
    stored = env.store.list_facts(type="alert.firing")[0][0]["fact"]
    assert stored["subject"] == "7f3ac2d8e9b1c0a4" and stored["service"] == "email"
    assert stored["time"] == "2026-11-05T03:00:00.412345Z"
    assert stored["data"]["alertname"] == "EmailDown"
    assert stored["data"]["annotations"]["summary"].startswith("SMTP on mx1")

    done = post(env, resolved, path="/v1/ingest/alertmanager")
    assert done.json["accepted"] == 1
    # 50 minutes down against a November budget of 43m12s: breached at 03:43:12.412345
    breach = get(env, "/v1/decisions", target="email-availability", kind="breach").json["items"]
    assert [d["at"] for d in breach] == ["2026-11-05T03:43:12.412345Z"]
    report = get(env, "/v1/reports/compliance", service="email", period="2026-11").json
    row = {r["target"]: r for r in report["targets"]}["email-availability"]
    assert row["breached"] == 1 and row["met"] == 0
    assert row["availability"] == pytest.approx(100 * (1 - (50 * 60 + 0.487655) / (30 * 86400)), abs=1e-4)


def test_a_bad_alertmanager_payload_names_the_bad_fields(env):
    payload = json.loads((ALERTS / "email-down-firing.json").read_text())
    payload["version"] = "3"
    response = post(env, payload, path="/v1/ingest/alertmanager")
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert "json.version" in response.json["errors"]
    payload["version"] = "4"
    payload["alerts"][0]["startsAt"] = "soon"
    response = post(env, payload, path="/v1/ingest/alertmanager")      # a bad alert is rejected, named
    assert response.status_code == 200 and response.json["accepted"] == 0
    assert "startsAt" in response.json["rejected"][0]["errors"]
    assert fact_count(env.store) == 0


# ---- reading ----------------------------------------------------------------------------

def test_decisions_filter_and_page_with_a_cursor(env):
    post(env, [p1(f"f{n}", subject=f"INC-{n}") for n in range(5)])
    seen, cursor = [], None
    while True:
        query = {"kind": "breach", "target": "email-p1-response", "limit": 2}
        if cursor:
            query["cursor"] = cursor
        page = get(env, "/v1/decisions", **query).json
        seen += page["items"]
        cursor = page["next"]
        if not cursor:
            break
    assert sorted(d["subject"] for d in seen) == [f"INC-{n}" for n in range(5)]
    assert len({d["id"] for d in seen}) == 5
    since = get(env, "/v1/decisions", kind="breach", since="2026-11-05T03:15:00Z", until="2026-11-05T03:15:01Z").json
    assert {d["at"] for d in since["items"]} == {"2026-11-05T03:15:00Z"}
    bad = get(env, "/v1/decisions", since="last week", cursor="x")
    assert bad.status_code == 400 and {"query.since", "query.cursor"} <= set(bad.json["errors"])


def test_a_decision_its_trace_and_its_notifications(env):
    post(env, p1())
    breach = get(env, "/v1/decisions", kind="breach", target="email-p1-response").json["items"][0]
    assert get(env, f"/v1/decisions/{breach['id']}").json == breach
    assert breach["rule"]["file"] == "services/email.yaml" and breach["rule"]["line"] > 0
    trace = get(env, f"/v1/decisions/{breach['id']}/trace").json
    leaves = {child["ref"]: child for child in trace["children"]}
    assert leaves["fact:itsm/prod#f1"]["fact"]["data"] == {"priority": "P1"}
    clock = leaves["clock:email-p1-response/INC-1"]
    assert clock["reading"]["counted"] == "15m" and clock["rule"]["file"] == "services/email.yaml"
    escalation = get(env, "/v1/decisions", kind="escalation", target="email-p1-response").json["items"][0]
    notes = get(env, "/v1/notifications", decision=escalation["id"]).json["items"]
    assert notes and all(n["decision"] == escalation["id"] and n["activity"] == escalation["activity"]
                         for n in notes)
    assert len({n["recipient"] for n in notes}) == len(notes)          # one per recipient
    assert {n["raci"] for n in notes} <= {"R", "A", "C", "I", "R,A", "A,C", "R,C", "R,I", "A,I", "C,I"}
    missing = get(env, "/v1/decisions/dec_nope/trace")
    assert missing.status_code == 404 and missing.mimetype == PROBLEM


def test_clocks_show_what_runs_now(env):
    env.wall.set("2026-11-05T03:05:00Z")
    post(env, p1())
    clocks = {c["target"]: c for c in get(env, "/v1/clocks", service="email").json["items"]}
    assert clocks["email-p1-response"]["remaining"] == "10m"
    assert clocks["email-p1-resolution"]["next_deadline"] == "2026-11-05T06:00:00Z"
    assert get(env, "/v1/clocks", service="hosting").json == {"items": [], "total": 0}
    one = get(env, "/v1/clocks", subject="INC-1", limit=1).json
    assert len(one["items"]) == 1 and one["total"] == len(clocks) > 1
    assert get(env, "/v1/clocks", target="email-p1-response").json["items"][0]["remaining"] == "10m"


def test_facts_read_back_with_their_outcome(env):
    post(env, [p1(), fact("r1", type="review.completed", subject="email", time="2026-11-05T01:00:00Z")])
    items = get(env, "/v1/facts", type="review.completed").json["items"]
    assert [i["fact"]["id"] for i in items] == ["r1"] and items[0]["outcome"] == []


def test_compliance_report_counts_met_and_breached_cycles(env):
    post(env, [p1("a", subject="INC-A"), p1("b", subject="INC-B"),
               fact("ack", type="incident.acknowledged", subject="INC-B", time="2026-11-05T03:05:00Z")])
    report = get(env, "/v1/reports/compliance", service="email", period="2026-11")
    rows = {r["target"]: r for r in report.json["targets"]}
    assert rows["email-p1-response"]["availability"] is None
    assert (rows["email-p1-response"]["met"], rows["email-p1-response"]["breached"]) == (1, 1)
    assert rows["email-p1-response"]["compliance"] == 50.0
    assert rows["email-availability"]["availability"] == 100.0
    unknown = get(env, "/v1/reports/compliance", service="mail", period="2026-11")
    assert unknown.status_code == 400 and "unknown service 'mail'" in unknown.json["errors"]["query.service"][0]
    assert get(env, "/v1/reports/compliance", service="email", period="2026-13").status_code == 400


def test_audit_verify_finds_the_first_edited_record(env):
    post(env, [p1(), p1("f2", subject="INC-2")])
    ok = get(env, "/v1/audit/verify").json
    assert ok["ok"] and ok["checked"] == env.store.decision_count()
    D = env.store.m.Decision
    victim = D.select().order_by(D.seq).offset(3).first()
    D.update(body=victim.body.replace('"breach"', '"met"').replace('"warning"', '"met"')).where(
        D.seq == victim.seq).execute()
    broken = get(env, "/v1/audit/verify").json
    assert broken["ok"] is False
    assert broken["first_broken"]["seq"] == victim.seq and broken["first_broken"]["id"] == victim.id
    assert broken["checked"] == victim.seq - 1
    assert get(env, "/v1/audit/verify", role="owner").status_code == 403


# ---- rules ------------------------------------------------------------------------------

def test_rules_summary_check_and_atomic_reload(env):
    summary = get(env, "/v1/rules").json
    assert summary["version"] == env.service.state.ruleset.version
    assert "services/email.yaml" in summary["files"] and summary["summary"]["targets"] > 0
    assert not any(name.startswith(("/", "rules/")) for name in summary["files"])   # relative to the rules directory
    bad = env.client.post("/v1/rules/check", headers=auth(env, "owner"), json={"files": {
        "svc.yaml": "kind: Service\nid: s\nname: S\nroles: {service_owner: a@example.org}\n---\n"
                    "kind: Agreement\nid: a\ntype: SLA\nservice: nowhere\ntargets:\n"
                    "  - {id: t, name: T, goal: 1h, clock: {applies_to: {type: incident.opened},\n"
                    "     start: incident.opened, stop: incident.resolved}}\n"}})
    assert bad.status_code == 422 and bad.mimetype == PROBLEM
    assert bad.json["problems"] and all(p["file"] == "svc.yaml" and p["line"] >= 1 for p in bad.json["problems"])
    assert [(p["line"], p["column"], p["message"]) for p in bad.json["problems"]] == [
        (9, 10, "service: unknown service 'nowhere' (known: s)")]
    files = {path: (PORTFOLIO / path).read_text() for path in summary["files"]}
    good = env.client.post("/v1/rules/check", headers=auth(env, "owner"), json={"files": files})
    assert good.status_code == 200 and good.json["summary"] == summary["summary"]
    assert good.json["version"] == summary["version"]        # the same files: the same version
    reload = env.client.post("/v1/rules/reload", headers=auth(env, "owner"))
    assert reload.status_code == 200 and reload.json["version"] == summary["version"]


def test_a_bad_rules_directory_is_refused_and_the_running_rules_stay(env, tmp_path):
    before = env.service.state.ruleset.version
    env.service.rules.rules_dir = tmp_path      # an empty directory: no rule files
    response = env.client.post("/v1/rules/reload", headers=auth(env, "owner"))
    assert response.status_code == 422 and "no rule files" in response.json["problems"][0]["message"]
    assert env.service.state.ruleset.version == before
    assert post(env, p1()).status_code == 200


# ---- documents and operations -----------------------------------------------------------

def test_openapi_document_validates_and_documents_security_and_schemas(env):
    from openapi_spec_validator import validate

    spec = env.client.get("/openapi.json").json
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/decisions"]["get"]["security"] == [{"bearerAuth": []}]
    assert "Fact" in spec["components"]["schemas"]
    params = {p["name"] for p in spec["paths"]["/v1/decisions"]["get"]["parameters"]}
    assert {"service", "target", "subject", "kind", "since", "until", "cursor", "limit"} <= params
    docs = env.client.get("/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()
    assets = re.findall(rb'(?:src|href)="([^"]+)"', docs.data)
    assert len(assets) == 3 and all(a.startswith(b"/docs/assets/") for a in assets)   # served here, no CDN
    for asset in assets:
        served = env.client.get(asset.decode())
        assert served.status_code == 200 and len(served.data) > 10_000, asset
    assert env.client.get("/docs/assets/../../pyproject.toml").status_code == 404


def test_metrics_count_facts_decisions_and_latency(env):
    post(env, p1())
    post(env, p1())
    post(env, [{"id": "bad"}])
    text = env.client.get("/metrics").data.decode()
    assert 'slm_facts_total{outcome="accepted"} 1.0' in text
    assert 'slm_facts_total{outcome="duplicate"} 1.0' in text
    assert 'slm_facts_total{outcome="rejected"} 1.0' in text
    assert 'slm_decisions_total{kind="breach"}' in text
    assert 'slm_request_seconds_count{endpoint="/v1/facts",method="POST"} 3.0' in text
    assert "slm_ready 1.0" in text


def test_readyz_says_starting_until_state_is_rebuilt(url, wall):
    store = Store.open(url)
    service = SlmService(store, PORTFOLIO, now=wall)
    app = create_app(service)
    token = store.add_token("monitor")
    client = app.test_client()
    try:
        assert client.get("/readyz").status_code == 503
        refused = client.post("/v1/facts", json=p1(), headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        service.start(background=False)
        assert client.get("/readyz").json["status"] == "ready"
    finally:
        service.stop()
        store.close()


def test_rules_check_an_upload_against_the_rules_in_force(env):
    """One changed file is checked with the calendars, RACI and escalations in force; its
    silent mistakes come back as warnings at file:line:column."""
    text = (PORTFOLIO / "services" / "email.yaml").read_text()
    typo = text.replace("      stop: incident.acknowledged\n      calendar: uk-office",
                        "      stop: incident.acknowledgd\n      calendar: uk-office", 1)
    assert typo != text
    alone = env.client.post("/v1/rules/check", headers=auth(env, "owner"),
                            json={"files": {"services/email.yaml": typo}})
    assert alone.status_code == 422        # alone, its calendar, escalations and RACI are missing
    merged = env.client.post("/v1/rules/check?in_force=true", headers=auth(env, "owner"),
                             json={"files": {"services/email.yaml": typo}})
    assert merged.status_code == 422       # the fact catalogue in force declares no such type
    [problem] = merged.json["problems"]
    typo_line = typo.splitlines().index("      stop: incident.acknowledgd") + 1
    assert (problem["file"], problem["line"]) == ("services/email.yaml", typo_line)
    assert "did you mean 'incident.acknowledged'" in problem["message"]
    late = text.replace("    warn_at: [75%]\n", "    warn_at: [100%]\n", 1)
    assert late != text
    merged = env.client.post("/v1/rules/check?in_force=true", headers=auth(env, "owner"),
                             json={"files": {"services/email.yaml": late}})
    assert merged.status_code == 200, merged.json
    assert merged.json["version"] != env.service.state.ruleset.version
    warn_line = late.splitlines().index("    warn_at: [100%]") + 1
    assert any(w.startswith(f"services/email.yaml:{warn_line}:") and "warn_at: 100% is not between 0% and 100%" in w
               for w in merged.json["warnings"]), merged.json["warnings"]
