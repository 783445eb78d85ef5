"""One writer per database, with real ``slm serve`` processes.

On PostgreSQL a second server is a standby while the first owns the lease, and takes over
when the first stops cleanly, is killed (SIGKILL) or is paused past its lease (SIGSTOP):
every acknowledged fact is stored once, nothing is decided twice, the audit chains verify,
a deadline that fell due while nobody owned is decided at its own event-time instant, and
a paused owner writes nothing once it resumes. On SQLite a second server refuses to start.

Leases are short (2 s) so that failover is quick; every wait is bounded generously and
nothing here asserts how long anything took (the failover times are printed).
"""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import requests

from schemas.values import parse_instant
from tests.support import PORTFOLIO
from tests.support.cluster import (
    PATIENCE,
    TTL,
    breaches,
    decided_once,
    due_soon,
    history,
    metric,
    named,
    pair,
    post,
    rows,
    standby,
    token,
    until,
    verified,
)
from tests.support.serving import Server, all_items, free_port, slm

pytestmark = [pytest.mark.wallclock,    # reads this machine's clock: CI runs it again years ahead
              pytest.mark.slow]

@pytest.mark.postgres
def test_a_second_server_stands_by_until_the_first_stops_and_then_takes_over_at_once(pg_url, tmp_path):
    first, second = pair(pg_url, tmp_path, token(pg_url))
    try:
        ready = second.readyz()
        assert ready.status_code == 503 and ready.json()["status"] == "standby"
        lease = ready.json()["lease"]
        assert named(first, lease["owner"]) and lease["expires_at"]
        refused = post(second, history(1, "s")[0])
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["title"] == "Standby" and "standby" in refused.json()["detail"]
        assert post(first, history(1, "s")[0]).status_code == 200
        assert metric(first, 'slm_lease_owner{partition="default"}') == 1.0
        assert metric(second, 'slm_lease_owner{partition="default"}') == 0.0

        stopped = time.monotonic()
        first.stop()                                    # SIGTERM: snapshot, then release the lease
        until(lambda: second.readyz().status_code == 200, "the standby to take over")
        print(f"clean handover: the standby was ready {time.monotonic() - stopped:.1f}s after SIGTERM")
        body = second.readyz().json()
        assert body["role"] == "owner" and named(second, body["lease"]["owner"])
        assert body["lease"]["epoch"] == 2 and body["replayed"] == 0      # from the snapshot taken at the stop
        assert "handed partition 'default' over" in first.log_path.read_text()
        assert metric(second, 'slm_lease_takeovers_total{partition="default"}') == 1.0
        assert [i["fact"]["id"] for i in all_items(second, "/v1/facts")] == ["s0-opened"]
    finally:
        first.stop()
        second.stop()


@pytest.mark.postgres
def test_the_standby_takes_over_from_a_killed_owner_and_decides_what_fell_due_meanwhile(pg_url, tmp_path):
    first, second = pair(pg_url, tmp_path, token(pg_url), "--snapshot-every", "50")
    facts = history(100, "k")
    acknowledged: list[str] = []
    servers = [first, second]

    def post_to_whoever_owns() -> None:
        for fact in facts:
            while True:
                for server in servers:
                    try:
                        if post(server, fact).status_code == 200:
                            acknowledged.append(fact["id"])
                            break
                    except requests.RequestException:
                        pass                            # killed under us, or not up
                else:
                    time.sleep(0.05)
                    continue
                break

    client = threading.Thread(target=post_to_whoever_owns)
    try:
        client.start()
        until(lambda: len(acknowledged) >= 90, "the first facts to be acknowledged")
        fact, deadline = due_soon("DUE-1", seconds=1)
        assert post(first, fact).status_code == 200
        first.kill()
        killed = time.monotonic()
        assert breaches(pg_url, "DUE-1") == []          # it fell due after the owner died
        until(lambda: second.readyz().status_code == 200, "the standby to take over")
        print(f"SIGKILL: the standby was ready {time.monotonic() - killed:.1f}s after the kill (lease {TTL})")
        client.join(PATIENCE)
        assert not client.is_alive() and sorted(acknowledged) == sorted(f["id"] for f in facts)

        stored = [item["fact"]["id"] for item in all_items(second, "/v1/facts")]
        assert sorted(stored) == sorted([f["id"] for f in facts] + [fact["id"]])     # each once
        decided_once(second)
        until(lambda: breaches(pg_url, "DUE-1"), "the breach to be decided")
        breach, = breaches(pg_url, "DUE-1")
        assert parse_instant(breach["at"]) == deadline  # at its own instant, not the takeover's
        verified(second)
        assert metric(second, 'slm_lease_takeovers_total{partition="default"}') == 1.0
    finally:
        first.stop()
        second.stop()
        client.join(PATIENCE)


@pytest.mark.postgres
def test_an_owner_paused_past_its_lease_writes_nothing_once_it_resumes(pg_url, tmp_path):
    first, second = pair(pg_url, tmp_path, token(pg_url))
    try:
        for fact in history(5, "p"):
            assert post(first, fact).status_code == 200
        fact, deadline = due_soon("DUE-2", seconds=1)
        assert post(first, fact).status_code == 200
        first.pause()                                   # SIGSTOP, before the deadline: it cannot fire it
        paused = time.monotonic()
        until(lambda: second.readyz().status_code == 200, "the standby to take over")
        print(f"SIGSTOP: the standby was ready {time.monotonic() - paused:.1f}s after the pause (lease {TTL})")
        until(lambda: breaches(pg_url, "DUE-2"), "the new owner to decide the breach")
        later, _ = due_soon("LATER-1", seconds=600)
        assert post(second, later).status_code == 200
        before = rows(pg_url)                           # all the new owner's doing, and it is idle now

        first.resume()                                  # SIGCONT: its scheduler finds the breach due
        refused = post(first, history(1, "r")[0])
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        until(lambda: named(second, (standby(first) or {}).get("owner", "")),
              "the paused owner to stand by")
        log = first.log_path.read_text()
        assert "stepping down from partition 'default' (epoch 1)" in log
        assert rows(pg_url) == before                   # no fact, decision, tick, snapshot or outcome from it

        breach, = breaches(pg_url, "DUE-2")
        assert parse_instant(breach["at"]) == deadline
        decided_once(second)
        verified(second)
        assert post(second, history(1, "r")[0]).status_code == 200
    finally:
        first.stop()
        second.stop()


def test_a_second_server_on_one_sqlite_file_refuses_to_start_naming_the_first(tmp_path):
    url = f"sqlite:///{tmp_path / 'slm.db'}"
    first = Server(url, tmp_path / "first.log", "--no-delivery").start()
    try:
        second = slm("serve", "--db", url, "--port", str(free_port()), "--rules", str(PORTFOLIO))
        assert second.returncode == 1, second
        message = " ".join(second.stderr.split())
        assert f"pid {first.process.pid}" in message and "SQLite runs one slm process per database" in message
        # readers and token commands work beside it
        assert slm("token", "create", "--role", "auditor", "--db", url).returncode == 0
        assert slm("audit", "verify", "--db", url).returncode == 0
        report = slm("report", "--service", "email", "--period", datetime.now(UTC).strftime("%Y-%m"),
                     "--rules", str(PORTFOLIO), "--db", url)
        assert report.returncode == 0, report.stderr
        assert first.readyz().status_code == 200
    finally:
        first.stop()
