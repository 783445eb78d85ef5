"""/v1/silences on the real service (SQLite and PostgreSQL): a silence mutes the
notifications it matches while it is active, names itself on them, expires on time or
when ended, and is chained in the audit."""
from __future__ import annotations

import re

from tests.support import fact
from tests.support.api import PROBLEM, auth, get, p1, post


def silence(env, role="owner", **body):
    return env.client.post("/v1/silences", json={"reason": "relay swap", "duration": "1h", **body},
                           headers=auth(env, role))


def notifications_of(env, subject):
    decisions = get(env, "/v1/decisions", subject=subject, kind="escalation").json["items"]
    assert decisions, subject
    return [n for d in decisions for n in get(env, "/v1/notifications", decision=d["id"]).json["items"]]


def test_an_active_silence_mutes_what_it_matches_and_names_itself(env):
    made = silence(env, matchers={"service": "email", "subject": "INC-*"})
    assert made.status_code == 201, made.json
    body = made.json
    assert (body["state"], body["created_by"], body["starts_at"], body["ends_at"]) == (
        "active", "owner-1", "2026-11-05T04:00:00Z", "2026-11-05T05:00:00Z")
    assert post(env, p1()).status_code == 200                       # a P1 opened an hour ago: escalated now
    notes = notifications_of(env, "INC-1")
    assert notes and {n["status"] for n in notes} == {"muted"}
    assert all(n["last_error"] == f"silenced by {body['id']} until 2026-11-05T05:00:00Z (owner-1: relay swap)"
               for n in notes)
    post(env, fact("h1", subject="WEB-1", service="hosting", time="2026-11-05T03:00:00Z", priority="P1"))
    others = notifications_of(env, "WEB-1")           # not matched: told (but a draft SLR's, shadow-muted)
    assert "pending" in {n["status"] for n in others} and all(n["last_error"] is None for n in others)


def test_a_silence_stops_muting_when_it_expires(env):
    silence(env, matchers={"service": "email"}, duration="30m")
    env.wall.set("2026-11-05T04:30:00Z")
    assert post(env, p1(time="2026-11-05T04:00:00Z")).status_code == 200
    assert {n["status"] for n in notifications_of(env, "INC-1")} == {"pending"}
    (listed,) = get(env, "/v1/silences").json["items"]
    assert listed["state"] == "expired" and get(env, "/v1/silences", state="active").json["items"] == []


def test_ending_a_silence_early_is_recorded_and_chained(env):
    made = silence(env, matchers={"service": "email"}).json
    ended = env.client.delete(f"/v1/silences/{made['id']}", headers=auth(env, "admin"))
    assert ended.status_code == 200
    assert (ended.json["state"], ended.json["expired_by"], ended.json["expired_at"]) == (
        "expired", "admin-1", "2026-11-05T04:00:00Z")
    assert post(env, p1()).status_code == 200
    assert {n["status"] for n in notifications_of(env, "INC-1")} == {"pending"}
    again = env.client.delete(f"/v1/silences/{made['id']}", headers=auth(env, "admin"))
    assert again.status_code == 409 and again.mimetype == PROBLEM
    assert env.client.delete("/v1/silences/sil_nope", headers=auth(env, "admin")).status_code == 404
    audit = get(env, "/v1/audit/verify").json
    assert audit["ok"] and audit["chains"]["silences"]["checked"] == 2


def test_a_pending_silence_does_not_mute_yet(env):
    later = silence(env, matchers={"service": "email"}, starts_at="2026-11-05T06:00:00Z")
    assert later.status_code == 201 and later.json["state"] == "pending"
    post(env, p1())
    assert {n["status"] for n in notifications_of(env, "INC-1")} == {"pending"}


def test_bad_silences_are_422_naming_the_field_and_roles_are_checked(env):
    assert silence(env, matchers={}).json["errors"] == {"json.matchers": [
        "at least one of service, target, subject, recipient: a silence of everything would hide every breach"]}
    assert "json.matchers.service.value" in silence(env, matchers={"service": "**"}).json["errors"]
    assert "json.reason" in silence(env, matchers={"service": "email"}, reason="  ").json["errors"]
    assert "json.matchers.severity.key" in silence(env, matchers={"severity": "x"}).json["errors"]
    both = silence(env, matchers={"service": "email"}, ends_at="2026-11-05T05:00:00Z")
    assert both.status_code == 422 and "ends_at" in both.json["errors"]
    past = env.client.post("/v1/silences", json={"reason": "r", "matchers": {"service": "email"},
                                                 "starts_at": "2026-11-05T02:00:00Z",
                                                 "ends_at": "2026-11-05T03:00:00Z"}, headers=auth(env, "owner"))
    assert past.status_code == 422 and "has passed" in past.json["errors"]["ends_at"][0]
    assert silence(env, role="monitor", matchers={"service": "email"}).status_code == 403
    assert silence(env, role="auditor", matchers={"service": "email"}).status_code == 403
    assert get(env, "/v1/silences", role="auditor").status_code == 200
    assert get(env, "/v1/silences", state="gone").status_code == 400


def test_the_console_shows_silences_and_on_the_trace_who_one_kept_from_being_told(env):
    made = silence(env, matchers={"service": "email"}).json
    post(env, p1())
    escalation = get(env, "/v1/decisions", subject="INC-1", kind="escalation").json["items"][0]
    console = env.client.application.test_client()
    form = console.get("/ui/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    assert console.post("/ui/login", data={"token": env.tokens["auditor"], "csrf": csrf}).status_code == 302
    page = console.get(f"/ui/decisions/{escalation['id']}").get_data(as_text=True)
    assert f"silenced by {made['id']} until 2026-11-05T05:00:00Z (owner-1: relay swap)" in page
    listed = console.get("/ui/silences").get_data(as_text=True)
    assert f'<tr class="active" data-silence="{made["id"]}">' in listed
    assert "service <code>email</code>" in listed and "owner-1: relay swap" in listed
