"""``kind: Inhibit`` on the real service (SQLite and PostgreSQL): while its source holds, the
escalations it aims at are stored muted, naming it; when the source ends, new ones are
told again and what was muted stays muted."""
from __future__ import annotations

import shutil

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, ROOT, fact
from tests.support.api import get, p1, post

INHIBITS = ROOT / "tests" / "rulesets" / "inhibits"


@pytest.fixture
def env(url, wall, tmp_path, request):
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    shutil.copy(INHIBITS / request.param, rules / request.param)
    store = Store.open(url)
    wall.set("2026-11-05T04:00:00Z")
    service = SlmService(store, rules, now=wall)
    service.start(background=False)
    client = create_app(service).test_client()
    tokens = {role: store.add_token(role) for role in ("monitor", "auditor")}
    yield type("Env", (), {"client": client, "service": service, "store": store, "tokens": tokens, "wall": wall})
    service.stop()
    store.close()


def escalations(env, subject, target):
    """(level, status, last_error) of each notification of ``target``'s escalations of ``subject``."""
    found = []
    for decision in get(env, "/v1/decisions", subject=subject, target=target, kind="escalation").json["items"]:
        for note in get(env, "/v1/notifications", decision=decision["id"]).json["items"]:
            found.append((decision["level"], note["status"], note["last_error"]))
    assert found, (subject, target)
    return sorted(found)


def statuses(env, subject, target="email-p1-response"):
    return {status for _, status, _ in escalations(env, subject, target)}


@pytest.mark.parametrize("env", ["relay-incident.yaml"], indirect=True)
def test_an_open_major_incident_mutes_the_other_tickets_escalations_until_it_is_resolved(env):
    assert post(env, p1("m1", subject="INC-9", time="2026-11-05T02:00:00Z", component="relay")).status_code == 200
    assert post(env, p1("f2", subject="INC-2", time="2026-11-05T02:05:00Z")).status_code == 200
    muted = escalations(env, "INC-2", "email-p1-response")
    assert {status for _, status, _ in muted} == {"muted"}
    assert {error for _, _, error in muted} == {
        "inhibited by relay-incident (relay-incident.yaml:3): incident.opened INC-9 (email) since "
        "2026-11-05T02:00:00Z, not yet incident.resolved"}
    assert statuses(env, "INC-9") == {"pending"}            # the source's own ticket still escalates
    post(env, fact("w1", subject="WEB-1", service="hosting", time="2026-11-05T02:05:00Z", priority="P1"))
    assert "pending" in statuses(env, "WEB-1", "hosting-p1-response")     # equal: [service]

    assert post(env, fact("m1-done", type="incident.resolved", subject="INC-9",
                          time="2026-11-05T02:30:00Z")).status_code == 200
    assert post(env, p1("f3", subject="INC-3", time="2026-11-05T02:40:00Z")).status_code == 200
    assert statuses(env, "INC-3") == {"pending"}            # ended: told again
    env.wall.set("2026-11-05T04:30:00Z")
    env.service.deadlines.tick()                             # INC-2's 100% + 2h level, at 04:20
    after = escalations(env, "INC-2", "email-p1-response")
    assert sorted({(level, status) for level, status, _ in after}) == [
        ("100%", "muted"), ("100% + 2h", "pending"), ("75%", "muted")]     # nothing muted is sent late


@pytest.mark.parametrize("env", ["email-down.yaml"], indirect=True)
def test_an_availability_breach_mutes_escalations_until_nothing_of_its_service_is_down(env):
    down = fact("a1", type="alert.firing", subject="mx", time="2026-11-05T01:00:00Z", source="am/prod",
                alertname="EmailDown")
    assert post(env, down).status_code == 200                # 43.2 min of budget: breached at 01:43:12
    assert post(env, p1("f1", subject="INC-1", time="2026-11-05T02:00:00Z")).status_code == 200
    muted = escalations(env, "INC-1", "email-p1-response")
    assert {status for _, status, _ in muted} == {"muted"}
    assert {error for _, _, error in muted} == {
        "inhibited by email-down (email-down.yaml:3): email-availability breached at 2026-11-05T01:43:12Z "
        "and email is still down (mx)"}
    assert statuses(env, "2026-11", "email-availability") == {"pending"}    # the breach itself is told

    post(env, fact("a3", type="alert.firing", subject="mx2", time="2026-11-05T01:50:00Z", source="am/prod",
                   alertname="EmailDown"))
    for id, subject, time in (("a2", "mx", "2026-11-05T02:30:00Z"), ("a4", "mx2", "2026-11-05T02:35:00Z")):
        up = fact(id, type="alert.resolved", subject=subject, time=time, source="am/prod", alertname="EmailDown")
        assert post(env, up).status_code == 200
    assert post(env, p1("f2", subject="INC-2", time="2026-11-05T02:20:00Z")).status_code == 200
    assert sorted({(level, status) for level, status, _ in escalations(env, "INC-2", "email-p1-response")}) == [
        ("100%", "pending"), ("75%", "muted")]      # 75% at 02:31:15: mx2 still down; 100% at 02:35: all up
    assert post(env, p1("f3", subject="INC-3", time="2026-11-05T02:40:00Z")).status_code == 200
    assert statuses(env, "INC-3") == {"pending"}
    assert statuses(env, "INC-1") == {"muted"}


@pytest.mark.parametrize("env", ["email-down.yaml"], indirect=True)
def test_each_escalation_is_judged_at_its_own_instant(env):
    """One tick decides the P1's levels before the breach, the breach and a level after it:
    only the one after is muted."""
    env.wall.set("2026-11-05T01:25:00Z")
    post(env, fact("a1", type="alert.firing", subject="mx", time="2026-11-05T01:00:00Z", source="am/prod",
                   alertname="EmailDown"))
    post(env, p1("f1", subject="INC-1", time="2026-11-05T01:20:00Z"))   # 75% 01:31:15, 100% 01:35, +2h 03:35
    env.wall.set("2026-11-05T04:00:00Z")
    env.service.deadlines.tick()
    assert sorted({(level, status) for level, status, _ in escalations(env, "INC-1", "email-p1-response")}) == [
        ("100%", "pending"), ("100% + 2h", "muted"), ("75%", "pending")]
