"""Two API nodes and two workers on one PostgreSQL database, as real ``slm serve`` processes
under a bounded load, through four faults: the owner killed (SIGKILL), the owner paused past
its lease (SIGSTOP), every database session terminated, and the owner cut off from the
database by a TCP proxy that stops relaying (written here, no outside tool).

Each case asserts that every fact an API node acknowledged is stored once and evaluated,
that nothing was decided twice, that the audit chains verify, and that a deadline that fell
due during the fault was decided at its own event-time instant. The failover times are
printed, never asserted (docs/BENCHMARKS.md measures them).
"""
from __future__ import annotations

import re
import threading
import time

import pytest
import requests

from engine.store.store import Store
from schemas.values import parse_instant
from tests.support import named_sessions, terminate_sessions
from tests.support.cluster import PATIENCE, TTL, decided_once, due_soon, history, named, standby, token, until
from tests.support.proxy import TcpProxy
from tests.support.serving import Server

pytestmark = [pytest.mark.wallclock, pytest.mark.slow, pytest.mark.postgres]

BATCH = 6          # facts per request: two incidents' opened, acknowledged and resolved


class Cluster:
    """Worker ``w1`` (through the proxy: the owner), worker ``w2`` (a standby), API nodes
    ``a1`` and ``a2``; every session of theirs named for :func:`terminate_sessions`."""

    def __init__(self, url: str, tmp_path):
        self.url, self.name = named_sessions(url)
        self.proxy, proxied = TcpProxy.before(self.url)
        self.headers = token(self.url)
        worker = ("--role", "worker", "--lease-ttl", TTL, "--no-delivery", "--snapshot-every", "100")
        self.w1 = Server(proxied, tmp_path / "w1.log", *worker).start()
        self.w2 = Server(self.url, tmp_path / "w2.log", *worker)
        self.w2.start(ready=False)
        until(lambda: named(self.w1, (standby(self.w2) or {}).get("owner", "")), "w2 to stand by")
        self.apis = [Server(self.url, tmp_path / f"a{n}.log", "--role", "api").start() for n in (1, 2)]
        for server in self.apis:
            server.headers = self.headers
        self.acknowledged: list[str] = []
        self.posted: list[str] = []                 # ids of every fact a client sent (acknowledged or not)

    def post(self, facts: list[dict], turn: int) -> bool:
        """Post to one API node, or the other if that one fails; whether it was acknowledged."""
        for server in (self.apis[turn % 2], self.apis[(turn + 1) % 2]):
            try:
                answer = requests.post(server.base + "/v1/facts", json=facts, headers=self.headers, timeout=30)
            except requests.RequestException:
                continue
            if answer.status_code in (200, 202):
                assert all(r["status"] in ("accepted", "duplicate") for r in answer.json()["results"])
                self.acknowledged += [f["id"] for f in facts]
                return True
        return False

    def load(self, facts: list[dict], pace: float = 0.02, enough: threading.Event | None = None) -> threading.Thread:
        """Post ``facts`` in batches, one every ``pace`` seconds at most, retrying what was
        not acknowledged, until all are posted or ``enough`` is set."""
        def run() -> None:
            for turn, start in enumerate(range(0, len(facts), BATCH)):
                if enough is not None and enough.is_set():
                    return
                batch = facts[start:start + BATCH]
                self.posted += [f["id"] for f in batch]
                while not self.post(batch, turn):
                    time.sleep(0.1)
                time.sleep(pace)
        client = threading.Thread(target=run, name="load")
        client.start()
        return client

    def owned_by(self, server: Server) -> bool:
        answer = server.readyz()
        return answer.status_code == 200 and answer.json().get("role") == "owner"

    def settled(self) -> list[dict]:
        """Every stored fact once nothing is pending any more."""
        with Store.open(self.url) as reader:
            until(lambda: reader.pending_count() == 0, "the owner to evaluate every stored fact")
            return [item for item in reader.list_facts(limit=1000)[0]]

    def check(self, due: dict, deadline) -> None:
        stored = self.settled()
        ids = [item["fact"]["id"] for item in stored]
        assert sorted(ids) == sorted(set(self.posted) | {due["id"]})                 # each once
        assert set(self.acknowledged) <= set(ids) and all(item["evaluated"] for item in stored)
        decided_once(self.apis[0])
        with Store.open(self.url) as reader:
            audit = reader.verify_audit()
            assert audit["ok"], audit
            until(lambda: reader.list_decisions(target="email-p1-response", subject=due["subject"],
                                                kind="breach", limit=5)[0], "the breach to be decided")
            breach, = reader.list_decisions(target="email-p1-response", subject=due["subject"], kind="breach",
                                            limit=5)[0]
        assert parse_instant(breach["at"]) == deadline

    def stop(self) -> None:
        for server in (self.w1, self.w2, *self.apis):
            server.stop()
        self.proxy.stop()


@pytest.fixture
def cluster(pg_url, tmp_path):
    made = Cluster(pg_url, tmp_path)
    yield made
    made.stop()


def run_with(cluster: Cluster, fault, recover=lambda: None, subject: str = "DUE-1", takeover: bool = True) -> None:
    """Load the cluster, inject ``fault`` into the owner a third of the way in with a deadline
    about to fall due, wait for the other worker to own (``takeover``), ``recover``, and
    check it all."""
    facts = history(60, subject.lower().replace("-", ""))
    client = cluster.load(facts)
    until(lambda: len(cluster.acknowledged) >= len(facts) // 3, "a third of the load to be acknowledged")
    due, deadline = due_soon(subject, seconds=1)
    assert cluster.post([due], 0)
    started = time.monotonic()
    what = fault()
    if takeover:
        until(lambda: cluster.owned_by(cluster.w2), "the other worker to take over")
        print(f"{what}: the other worker owned the partition {time.monotonic() - started:.1f}s later "
              f"(lease {TTL})")
    recover()
    client.join(PATIENCE)
    assert not client.is_alive()
    cluster.check(due, deadline)


def test_the_owner_killed(cluster):
    def kill():
        cluster.w1.kill()
        return "SIGKILL"
    run_with(cluster, kill)


def test_the_owner_paused_past_its_lease_writes_nothing_when_it_resumes(cluster):
    def pause():
        cluster.w1.pause()
        return "SIGSTOP"

    def resume():
        cluster.w1.resume()
        until(lambda: named(cluster.w2, (standby(cluster.w1) or {}).get("owner", "")), "w1 to stand by")
    run_with(cluster, pause, resume)
    assert "stepping down from partition 'default'" in cluster.w1.log_path.read_text()


def test_every_database_session_terminated(cluster):
    def terminate():
        ended = terminate_sessions(cluster.name)
        assert ended >= 4
        return f"{ended} sessions terminated"
    run_with(cluster, terminate, takeover=False)      # the owner reconnects, or the other takes over
    assert any(cluster.owned_by(worker) for worker in (cluster.w1, cluster.w2))


def test_the_owner_cut_off_from_the_database(cluster):
    def cut():
        cluster.proxy.cut()
        probed = requests.get(cluster.w1.base + "/readyz", timeout=15)    # in bounded time, naming why
        assert probed.status_code == 503 and re.search("did not answer|has not answered",
                                                       probed.json()["database"]), probed.text
        return "TCP cut"

    def heal():
        cluster.proxy.heal()
        until(lambda: named(cluster.w2, (standby(cluster.w1) or {}).get("owner", "")),
              "the cut-off worker to stand by once it can reach the database again")
    run_with(cluster, cut, heal)


def test_an_api_node_answers_at_once_or_waits_and_a_worker_serves_no_api(cluster):
    api = cluster.apis[0]
    due, _ = due_soon("WAIT-1", seconds=600)
    at_once = requests.post(api.base + "/v1/facts", json=due, headers=cluster.headers, timeout=30)
    assert at_once.status_code in (200, 202)
    entry = at_once.json()["results"][0]
    assert entry["status"] == "accepted" and isinstance(entry["seq"], int)

    opened, _ = due_soon("WAIT-2", seconds=-60)      # its response target breached a minute ago
    waited = requests.post(api.base + "/v1/facts?wait=20s", json=opened, headers=cluster.headers, timeout=60)
    assert waited.status_code == 200, waited.text
    body = waited.json()
    assert body["results"][0]["evaluated"] and body["results"][0]["decisions"]
    assert [d["id"] for d in body["decisions"]] == body["results"][0]["decisions"]

    too_long = requests.post(api.base + "/v1/facts?wait=2m", json=opened, headers=cluster.headers, timeout=30)
    assert too_long.status_code == 400 and "30s" in too_long.text
    clocks = requests.get(api.base + "/v1/clocks", headers=cluster.headers, timeout=30)
    assert clocks.status_code == 503 and "--role all" in clocks.json()["detail"]
    assert requests.get(api.base + "/readyz", timeout=10).json()["node"] == "api"

    worker = cluster.w1
    assert requests.get(worker.base + "/v1/decisions", headers=cluster.headers, timeout=10).status_code == 404
    assert requests.get(worker.base + "/metrics", timeout=10).status_code == 200
    assert "slm_facts_pending" in requests.get(worker.base + "/metrics", timeout=10).text


def test_a_rolling_restart_under_load_loses_nothing(cluster):
    """Each process stopped (SIGTERM) and started again in turn while facts keep coming:
    the workers hand the partition over at their clean stop, the API nodes' clients retry
    on the other one."""
    enough = threading.Event()
    client = cluster.load(history(1000, "roll"), pace=0.1, enough=enough)   # coming while every process restarts
    due, deadline = due_soon("DUE-R", seconds=1)
    assert cluster.post([due], 0)
    for server in (cluster.w2, cluster.w1, cluster.apis[0], cluster.apis[1]):
        server.stop()
        server.start(ready=server not in (cluster.w1, cluster.w2))
        until(lambda: any(cluster.owned_by(w) for w in (cluster.w1, cluster.w2)), "a worker to own")
    enough.set()
    client.join(PATIENCE)
    assert not client.is_alive()
    cluster.check(due, deadline)
    assert "handed partition 'default' over" in cluster.w1.log_path.read_text()
