"""End to end: ``slm serve`` as a real process on a free port, plain HTTP, real database.

Also the crash test: the server is SIGKILLed while a client posts; after a restart every
acknowledged fact is stored, no decision is recorded twice and the hash chain holds.
"""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.support.serving import Server, all_items, slm

pytestmark = pytest.mark.wallclock     # reads this machine's clock: CI runs it again years ahead


@pytest.fixture
def server(url, tmp_path):
    token = slm("token", "create", "--role", "admin", "--db", url)
    assert token.returncode == 0, token.stderr
    srv = Server(url, tmp_path / "serve.log")
    srv.headers = {"Authorization": f"Bearer {token.stdout.strip().splitlines()[-1]}"}
    srv.start()
    yield srv
    srv.stop()


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_post_facts_and_read_decisions_traces_and_notifications_over_http(server):
    opened = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    fact = {"id": "e2e-1", "source": "itsm/prod", "type": "incident.opened", "time": stamp(opened),
            "subject": "INC-E2E", "service": "email", "data": {"priority": "P1"}}
    response = requests.post(server.base + "/v1/facts", json=fact, headers=server.headers, timeout=30)
    assert response.status_code == 200 and response.json()["accepted"] == 1
    breach = [d for d in all_items(server, "/v1/decisions", subject="INC-E2E", kind="breach")
              if d["target"] == "email-p1-response"]
    assert [d["at"] for d in breach] == [stamp(opened + timedelta(minutes=15))]
    trace = requests.get(f"{server.base}/v1/decisions/{breach[0]['id']}/trace", headers=server.headers,
                         timeout=30).json()
    assert {c["ref"] for c in trace["children"]} >= {"fact:itsm/prod#e2e-1", "clock:email-p1-response/INC-E2E"}
    notifications = all_items(server, "/v1/notifications")
    decision_ids = {d["id"] for d in all_items(server, "/v1/decisions")}
    assert notifications and {n["decision"] for n in notifications} <= decision_ids
    clocks = requests.get(server.base + "/v1/clocks", headers=server.headers, timeout=30).json()["items"]
    assert "email-p1-resolution/INC-E2E" in {c["clock"] for c in clocks}
    assert requests.get(server.base + "/v1/decisions", timeout=30).status_code == 401
    assert "slm_facts_total" in requests.get(server.base + "/metrics", timeout=30).text


@pytest.mark.slow
def test_sigkill_while_posting_loses_nothing_acknowledged(server):
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    facts = [{"id": f"k-{n}", "source": "itsm/prod", "type": "incident.opened",
              "time": stamp(base + timedelta(seconds=n)), "subject": f"INC-K{n}", "service": "email",
              "data": {"priority": "P1" if n % 2 else "P2"}} for n in range(400)]
    acknowledged: list[str] = []
    stop = threading.Event()

    def client():
        for fact in facts:
            if stop.is_set():
                return
            try:
                r = requests.post(server.base + "/v1/facts", json=fact, headers=server.headers, timeout=10)
            except requests.RequestException:
                return
            if r.status_code == 200:
                acknowledged.append(fact["id"])

    poster = threading.Thread(target=client)
    poster.start()
    while len(acknowledged) < 20 and poster.is_alive():
        time.sleep(0.01)
    server.kill()                                   # mid-stream: requests are in flight
    stop.set()
    poster.join(30)
    assert 20 <= len(acknowledged) < len(facts)

    server.start()
    stored = {item["fact"]["id"] for item in all_items(server, "/v1/facts")}
    assert set(acknowledged) <= stored
    again = requests.post(server.base + "/v1/facts", json=facts, headers=server.headers, timeout=120).json()
    assert {r["id"] for r in again["results"] if r["status"] == "duplicate"} == stored
    assert len(all_items(server, "/v1/facts")) == len(facts)
    decisions = all_items(server, "/v1/decisions")
    assert len(decisions) == len({d["id"] for d in decisions})
    notifications = all_items(server, "/v1/notifications")
    assert len(notifications) == len({n["id"] for n in notifications})
    audit = requests.get(server.base + "/v1/audit/verify", headers=server.headers, timeout=60).json()
    chains = audit.pop("chains")
    assert audit == {"ok": True, "checked": len(decisions), "first_broken": None}
    deliveries = chains.pop("deliveries")           # one outcome per notification made, then per attempt
    assert deliveries["ok"] and deliveries["checked"] >= len(notifications)
    cutovers = chains.pop("cutovers")               # the rule set put in force at the first start
    assert cutovers["ok"] and cutovers["checked"] >= 1
    silences = chains.pop("silences")               # none made
    assert silences["ok"] and silences["checked"] == 0
    waivers = chains.pop("waivers")                 # none made
    assert waivers["ok"] and waivers["checked"] == 0
    restatements = chains.pop("restatements")       # none made
    assert restatements["ok"] and restatements["checked"] == 0
    assert {name: (c["ok"], c["checked"]) for name, c in chains.items()} == {
        "decisions": (True, len(decisions)), "facts": (True, len(facts)), "notifications": (True, len(notifications))}


def test_sigterm_stops_cleanly_and_the_next_start_replays_nothing(server):
    opened = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    facts = [{"id": f"t-{n}", "source": "itsm/prod", "type": "incident.opened", "time": stamp(opened),
              "subject": f"INC-T{n}", "service": "email", "data": {"priority": "P2"}} for n in range(3)]
    assert requests.post(server.base + "/v1/facts", json=facts, headers=server.headers, timeout=30).ok
    server.process.terminate()                                   # SIGTERM, as a service manager stops it
    assert server.process.wait(30) == 0
    log = server.log_path.read_text()
    assert "snapshot at fact 3:" in log and "stopped" in log
    server.start()
    assert "rebuilt state from a snapshot at fact 3, 0 facts" in server.log_path.read_text()
    assert len(all_items(server, "/v1/facts")) == 3
