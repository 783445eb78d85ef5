"""Partitions by service, as real ``slm serve`` processes on one PostgreSQL database: an API
node stores each fact for its partition's owner, two workers that prefer different
partitions share them out, and when one is killed the other takes its partition over and
decides what fell due there at its own instant. Every chain, one per partition for the
facts, verifies."""
from __future__ import annotations

import time

import pytest
import requests

from engine.store.store import Store
from schemas.values import parse_instant
from tests.support.cluster import TTL, breaches, decided_once, due_soon, history, post, token, until, verified
from tests.support.serving import Server, slm

pytestmark = [pytest.mark.wallclock, pytest.mark.slow, pytest.mark.postgres]

MAP = "partitions: {email: mail}\ndefault: main\n"


@pytest.fixture
def partition_map(tmp_path):
    path = tmp_path / "partitions.yaml"
    path.write_text(MAP)
    return path


def owned(server: Server, *, central: bool = False) -> list[str]:
    """The partitions of the map a worker owns (with ``central``: ``global`` too, which any
    worker takes, since no worker prefers it here)."""
    answer = server.readyz()
    found = answer.json().get("owned", []) if answer.status_code in (200, 503) else []
    return [p for p in found if central or p != "global"]


def worker(url: str, tmp_path, name: str, partition_map, prefer: str) -> Server:
    server = Server(url, tmp_path / f"{name}.log", "--role", "worker", "--partitions", str(partition_map),
                    "--prefer", prefer, "--lease-ttl", TTL, "--no-delivery", "--snapshot-every", "50")
    return server.start(ready=False)


def test_workers_share_the_partitions_out_and_one_takes_over_the_others_partition(pg_url, tmp_path, partition_map):
    headers = token(pg_url)
    api = Server(pg_url, tmp_path / "api.log", "--role", "api", "--partitions", str(partition_map)).start()
    api.headers = headers
    mail = worker(pg_url, tmp_path, "w-mail", partition_map, "mail")
    main = worker(pg_url, tmp_path, "w-main", partition_map, "main")
    try:
        until(lambda: owned(mail) == ["mail"] and owned(main) == ["main"] and mail.readyz().status_code == 200
              and main.readyz().status_code == 200, "each worker to own its partition and be ready")
        until(lambda: [*owned(mail, central=True), *owned(main, central=True)].count("global") == 1,
              "one worker to own the global partition")

        facts = history(10, "part")           # email, hosting and service-desk incidents
        answer = requests.post(api.base + "/v1/facts?wait=20s", json=facts, headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        assert all(r["evaluated"] for r in answer.json()["results"])
        with Store.open(pg_url) as reader:
            placed = dict(reader.db.execute_sql("SELECT id, partition FROM facts").fetchall())
        assert {placed[f["id"]] for f in facts if f["service"] == "email"} == {"mail"}
        assert {placed[f["id"]] for f in facts if f["service"] != "email"} == {"main"}

        due, deadline = due_soon("PART-DUE", seconds=3)          # a P1 email incident: the mail partition's
        assert post(api, due).status_code == 202
        mail.kill()
        started = time.monotonic()
        until(lambda: owned(main) == ["mail", "main"], "the other worker to take the mail partition over")
        print(f"\nmail partition failed over in {time.monotonic() - started:.1f}s (TTL {TTL})")
        until(lambda: breaches(pg_url, "PART-DUE"), "the breach that fell due in the gap")
        breach, = breaches(pg_url, "PART-DUE")
        assert parse_instant(breach["at"]) == deadline

        later = {**due, "id": "PART-LATE", "subject": "PART-LATE"}
        assert requests.post(api.base + "/v1/facts?wait=20s", json=later, headers=headers,
                             timeout=60).json()["results"][0]["evaluated"]
        decided_once(api)
        audit = verified(api)
        assert {"facts:mail", "facts:main"} <= set(audit["chains"])
        assert audit["chains"]["facts:mail"]["checked"] >= 1
    finally:
        for server in (api, mail, main):
            server.stop()


def test_a_fact_without_a_service_is_refused_where_partitions_run(pg_url, tmp_path, partition_map):
    headers = token(pg_url)
    api = Server(pg_url, tmp_path / "api.log", "--role", "api", "--partitions", str(partition_map)).start()
    try:
        fact = {"id": "x1", "source": "t", "type": "incident.opened", "time": "2026-11-02T09:00:00Z",
                "subject": "INC-9"}
        answer = requests.post(api.base + "/v1/facts", json=fact, headers=headers, timeout=30)
        assert answer.status_code == 422 and "service" in answer.text, answer.text
    finally:
        api.stop()


def test_a_node_with_another_map_refuses_to_start(pg_url, tmp_path, partition_map):
    api = Server(pg_url, tmp_path / "api.log", "--role", "api", "--partitions", str(partition_map)).start()
    api.stop()
    other = tmp_path / "other.yaml"
    other.write_text("partitions: {email: mail, hosting: web}\n")
    refused = slm("serve", "--db", pg_url, "--role", "api", "--partitions", str(other), "--rules",
                  "tests/rulesets/portfolio")
    assert refused.returncode == 1
    assert "partition map" in refused.stderr and "--partitions" in refused.stderr
