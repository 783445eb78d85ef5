"""Failover and evaluation lag with API nodes and workers on PostgreSQL (docs/OPERATIONS.md).

Real ``slm serve`` processes on a scratch schema of the PostgreSQL server at ``--db``:

1. **Failover.** Two workers (one owns, one stands by) and an API node, preloaded with
   ``--preload`` facts. A P1 incident is posted whose response deadline falls one second
   later, and the owner is killed (SIGKILL) at once. Measured: from the kill to the first
   decision of the new owner (that breach, stored at its own instant). The baseline, in
   the same run: the lease TTL, which no takeover can beat (the target is TTL + 5 s), and
   the same measurement after a clean stop (SIGTERM: snapshot, lease released at once).
2. **Evaluation lag.** ``--clients`` clients post batches of 5 facts back to back for
   ``--seconds``, each with ``?wait=30s`` to an API node: its answer comes once the owner
   evaluated the facts, so its latency is the lag plus the API node's own work. The
   baseline: the same clients posting to one ``--role all`` process on another scratch
   schema, which evaluates as it answers. p50 and p99 of both, and their ratio.

Run after ``make install``:  .venv/bin/python bench/failover.py --db postgresql://postgres@127.0.0.1/test
[--lease-ttl 15s] [--preload 5000] [--clients 8] [--seconds 20]
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import requests
from ingest import ROOT, _pct, facts, free_port, scratch_database

sys.path.insert(0, str(ROOT))
from engine.store.store import Store  # noqa: E402 - the project's root is on the path only now
from schemas.values import parse_duration  # noqa: E402


class Node:
    """One ``slm serve`` process in a role."""

    def __init__(self, url: str, role: str, ttl: str, ready: bool = True):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--db", url, "--port", str(self.port), "--role", role,
             "--lease-ttl", ttl, "--no-delivery", "--rules", "rules"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                answer = requests.get(self.base + "/readyz", timeout=2)
                if answer.status_code == 200 or not ready:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"slm serve --role {role} did not start")

    def owns(self) -> bool:
        try:
            return requests.get(self.base + "/readyz", timeout=2).json().get("role") == "owner"
        except requests.RequestException:
            return False

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(120)


def token(url: str) -> dict:
    made = subprocess.run([sys.executable, "-m", "cli", "token", "create", "--role", "admin", "--db", url],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def settle(url: str) -> None:
    with Store.open(url) as store:
        while store.pending_count():
            time.sleep(0.1)


def first_decision_after(url: str, subject: str, since: float) -> float:
    """Seconds from ``since`` (monotonic) until the 15-minute response breach of ``subject``
    is stored."""
    with Store.open(url) as store:
        while not store.list_decisions(target="email-p1-response", subject=subject, kind="breach", limit=1)[0]:
            time.sleep(0.05)
    return time.monotonic() - since


def failover(url: str, ttl: str, preload: int, how: signal.Signals, subject: str) -> float:
    headers = token(url)
    first = Node(url, "worker", ttl)
    second = Node(url, "worker", ttl, ready=False)
    api = Node(url, "api", ttl)
    try:
        loaded = facts(subject.lower(), preload)
        for start in range(0, len(loaded), 500):
            requests.post(api.base + "/v1/facts", json=loaded[start:start + 500], headers=headers,
                          timeout=300).raise_for_status()
        settle(url)
        opened = datetime.now(UTC) - timedelta(minutes=15) + timedelta(seconds=1)
        due = {"id": f"{subject}-due", "source": "bench", "type": "incident.opened", "time": stamp(opened),
               "subject": subject, "service": "email", "data": {"priority": "P1"}}
        requests.post(api.base + "/v1/facts?wait=10s", json=due, headers=headers, timeout=30).raise_for_status()
        owner = first if first.owns() else second
        with Store.open(url) as store:
            assert not store.list_decisions(target="email-p1-response", subject=subject, kind="breach")[0], \
                "the deadline fell due before the owner was stopped"
        started = time.monotonic()
        owner.stop(how)
        return first_decision_after(url, subject, started)
    finally:
        for node in (api, first, second):
            node.stop()


def lag(url: str, role: str, clients: int, seconds: float, ttl: str) -> list[float]:
    """Latencies of posts of 5 facts, each waited for (``?wait=30s``) on an API node, or
    answered by a process that evaluates (``role`` all)."""
    headers = token(url)
    nodes = [Node(url, "worker", ttl), Node(url, "api", ttl)] if role == "api" else [Node(url, "all", ttl)]
    target = nodes[-1].base + "/v1/facts" + ("?wait=30s" if role == "api" else "")
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        session, n = requests.Session(), 0
        while time.monotonic() < stop:
            batch = facts(f"c{index}-{n}", 5)
            n += 1
            started = time.monotonic()
            answer = session.post(target, json=batch, headers=headers, timeout=60)
            answer.raise_for_status()
            assert all(r.get("evaluated", True) for r in answer.json()["results"]), answer.text
            latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for node in reversed(nodes):
            node.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a PostgreSQL server (a scratch schema is made on it)")
    parser.add_argument("--lease-ttl", default="15s")
    parser.add_argument("--preload", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    ttl = parse_duration(args.lease_ttl).total_seconds()

    with scratch_database(args.db) as url:
        killed = failover(url, args.lease_ttl, args.preload, signal.SIGKILL, "KILLED")
    with scratch_database(args.db) as url:
        stopped = failover(url, args.lease_ttl, args.preload, signal.SIGTERM, "STOPPED")
    print(f"failover, SIGKILL of the owner to the new owner's first decision: {killed:.1f}s "
          f"(lease TTL {ttl:g}s, target TTL + 5 = {ttl + 5:g}s; overhead over the TTL {killed - ttl:+.1f}s)")
    print(f"handover, SIGTERM of the owner to the new owner's first decision: {stopped:.1f}s")

    with scratch_database(args.db) as url:
        waited = lag(url, "api", args.clients, args.seconds, args.lease_ttl)
    with scratch_database(args.db) as url:
        direct = lag(url, "all", args.clients, args.seconds, args.lease_ttl)
    print(f"evaluation lag: {args.clients} clients, batches of 5, {args.seconds:g}s each")
    print(f"  API node ?wait (stored, then evaluated by the worker): {len(waited)} posts, "
          f"p50 {_pct(waited, 50):.1f} ms, p99 {_pct(waited, 99):.1f} ms (target p99 <= 1000 ms)")
    print(f"  baseline, one --role all process evaluating as it answers: {len(direct)} posts, "
          f"p50 {_pct(direct, 50):.1f} ms, p99 {_pct(direct, 99):.1f} ms")
    print(f"  ratio p99 {_pct(waited, 99) / _pct(direct, 99):.2f}x, p50 {_pct(waited, 50) / _pct(direct, 50):.2f}x")


if __name__ == "__main__":
    main()
