"""A bounded load test: writers and readers together against a real ``slm serve``.

The server runs as a subprocess on a scratch database (SQLite by default, ``--db URL`` for
a scratch schema on that PostgreSQL server), preloaded with open incidents so that many
clocks run. Then, for a fixed duration each, two phases:

1. baseline: the posting clients alone (half of ``--clients``, each posting small batches
   of facts back to back), plus one client polling /healthz, /readyz and /metrics;
2. full load: the same posting clients, the other half reading /v1/clocks and
   /v1/decisions back to back, and the same ops poller.

Posters, readers and the ops poller each run in a process of their own, so one group's
Python does not slow the others' clocks. Prints p50/p99 per endpoint and phase, and the
ratio of the posts' latency under full load to the baseline's.

Run after ``make install``:  .venv/bin/python bench/load.py [--clients 50] [--seconds 20]
[--preload 4000] [--db postgresql://user@host/db]
"""
from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import requests
from ingest import ROOT, Served, _pct, free_port, scratch_database

BATCH = 5                    # facts per post: what a monitoring tool sends at a time


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def preload(served: Served, incidents: int) -> None:
    """Open incidents (P1 and P2 on email and hosting) a minute ago: their clocks run."""
    at = datetime.now(UTC) - timedelta(minutes=1)
    facts = [{"id": f"pre-{n}", "source": "load", "type": "incident.opened", "time": _stamp(at),
              "subject": f"PRE-{n}", "service": ("email", "hosting")[n % 2],
              "data": {"priority": ("P1", "P2")[n // 2 % 2]}} for n in range(incidents)]
    session = requests.Session()
    for start in range(0, len(facts), 500):
        r = session.post(served.base + "/v1/facts", json=facts[start:start + 500], headers=served.headers,
                         timeout=600)
        r.raise_for_status()


def _post_batches(client: str):
    """An endless stream of small batches: incidents opened and acknowledged, metric samples."""
    n = 0
    while True:
        at = _stamp(datetime.now(UTC) - timedelta(seconds=2))
        batch = []
        for _ in range(BATCH):
            kind = n % 3
            if kind == 0:
                fact = {"type": "incident.opened", "subject": f"{client}-{n}", "service": "email",
                        "data": {"priority": "P2"}}
            elif kind == 1:
                fact = {"type": "incident.acknowledged", "subject": f"{client}-{n - 1}", "service": "email",
                        "data": {}}
            else:
                fact = {"type": "metric.sample", "subject": "web-1", "service": "hosting",
                        "data": {"name": "latency_p95", "value": 100 + n % 50}}
            batch.append({"id": f"{client}-{n}", "source": "load", "time": at, **fact})
            n += 1
        yield batch


READS = ("/v1/clocks", "/v1/decisions")


def _group(role: str, clients: int, base: str, headers: dict, start_at: float, stop_at: float, out,
           reads: tuple[str, ...] = READS) -> None:
    """One process: ``clients`` threads of one role until ``stop_at`` (readers take turns
    over ``reads``); (endpoint, latency) pairs and errors sent back through ``out``."""
    samples: list[tuple[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        session, mine = requests.Session(), []
        batches = _post_batches(f"{role}{start_at:.0f}-{index}")
        ops = ["/healthz", "/readyz", "/metrics"]
        n = index
        while time.time() < start_at:
            time.sleep(0.005)
        while time.time() < stop_at:
            if role == "post":
                endpoint, call = "POST /v1/facts", lambda: session.post(
                    base + "/v1/facts", json=next(batches), headers=headers, timeout=120)
            elif role == "read":
                path = reads[n % len(reads)]
                endpoint, call = "GET " + path, lambda path=path: session.get(base + path, headers=headers, timeout=120)
            else:
                path = ops[n % 3]
                endpoint, call = "GET " + path, lambda path=path: session.get(base + path, timeout=120)
            t0 = time.perf_counter()
            try:
                r = call()
                ok = r.status_code == 200
                detail = f"{endpoint}: {r.status_code} {r.text[:200]}"
            except requests.RequestException as exc:
                ok, detail = False, f"{endpoint}: {exc}"
            mine.append((endpoint, time.perf_counter() - t0))
            if not ok:
                with lock:
                    errors.append(detail)
            n += 1
            if role == "ops":
                time.sleep(0.02)                 # a poller, not a flood: ~40 probes a second
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((samples, errors[:5], len(errors)))


def phase(served: Served, posters: int, readers: int, seconds: float,
          reads: tuple[str, ...] = READS) -> dict[str, list[float]]:
    """Run the groups for ``seconds`` (the readers reading ``reads``); latencies by endpoint."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 3                   # every process started before the clock runs
    stop_at = start_at + seconds
    groups = [("post", posters), ("ops", 1)] + ([("read", readers)] if readers else [])
    processes = [context.Process(target=_group, args=(role, count, served.base, served.headers, start_at,
                                                       stop_at, out, reads)) for role, count in groups]
    for p in processes:
        p.start()
    by_endpoint: dict[str, list[float]] = {}
    failures = 0
    for _ in processes:
        samples, errors, count = out.get(timeout=seconds + 600)
        failures += count
        for message in errors:
            print("  error:", message, file=sys.stderr)
        for endpoint, latency in samples:
            by_endpoint.setdefault(endpoint, []).append(latency)
    for p in processes:
        p.join()
    if failures:
        print(f"  {failures} requests failed", file=sys.stderr)
    return by_endpoint


def report(name: str, by_endpoint: dict[str, list[float]], seconds: float) -> None:
    print(f"\n{name}")
    print(f"  {'endpoint':<22} {'requests':>9} {'per s':>8} {'p50 ms':>9} {'p99 ms':>9}")
    for endpoint in sorted(by_endpoint):
        values = by_endpoint[endpoint]
        print(f"  {endpoint:<22} {len(values):>9} {len(values) / seconds:>8.1f} {_pct(values, 50):>9.1f} "
              f"{_pct(values, 99):>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="posting + reading clients (half each)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each phase")
    parser.add_argument("--preload", type=int, default=4000, help="incidents opened before the phases")
    parser.add_argument("--threads", type=int, default=8, help="server request threads")
    parser.add_argument("--snapshot-every", type=int, help="passed to slm serve (default: its own)")
    parser.add_argument("--no-background-snapshots", action="store_true",
                        help="slm serve encodes each snapshot under the write lock (as before 2026-12-07)")
    parser.add_argument("--db", metavar="URL", help="a PostgreSQL server to run on (a scratch schema, dropped "
                                                   "afterwards) instead of a temporary SQLite file")
    args = parser.parse_args()
    posters = max(1, args.clients // 2)
    readers = max(0, args.clients - posters - 1)      # one more client: the ops poller

    with scratch_database(args.db) as db:
        token = subprocess.run([sys.executable, "-m", "cli", "token", "create", "--role", "admin", "--db", db],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        port = free_port()
        served = Served([sys.executable, "-m", "cli", "serve", "--db", db, "--port", str(port), "--threads",
                         str(args.threads), "--no-delivery"]
                        + ([] if args.snapshot_every is None else ["--snapshot-every", str(args.snapshot_every)])
                        + (["--no-background-snapshots"] if args.no_background_snapshots else []), port,
                        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            began = time.perf_counter()
            preload(served, args.preload)
            clocks = requests.get(served.base + "/v1/clocks?limit=1", headers=served.headers, timeout=60).json()
            print(f"preloaded {args.preload} incidents in {time.perf_counter() - began:.1f} s: "
                  f"{clocks['total']} clocks running; {posters} posting clients (batches of {BATCH}), "
                  f"{readers} reading, 1 polling ops; {args.seconds:.0f} s per phase")
            baseline = phase(served, posters, 0, args.seconds)
            report("baseline: posting clients and the ops poller only", baseline, args.seconds)
            full = phase(served, posters, readers, args.seconds)
            report("full load: posting, reading and the ops poller", full, args.seconds)
            post = "POST /v1/facts"
            if baseline.get(post) and full.get(post):
                print(f"\nPOST p50 {_pct(full[post], 50):.1f} ms vs {_pct(baseline[post], 50):.1f} ms baseline "
                      f"(ratio {_pct(full[post], 50) / _pct(baseline[post], 50):.2f}); p99 "
                      f"{_pct(full[post], 99):.1f} vs {_pct(baseline[post], 99):.1f} ms "
                      f"(ratio {_pct(full[post], 99) / _pct(baseline[post], 99):.2f}); throughput "
                      f"{len(full[post]) / len(baseline[post]):.2f} of the baseline's")
                for name, phase_ in (("baseline", baseline), ("full load", full)):
                    print(f"POST p99 / p50, {name}: {_pct(phase_[post], 99) / _pct(phase_[post], 50):.2f}")
            snapshots = [line for line in requests.get(served.base + "/metrics", timeout=60).text.splitlines()
                         if line.startswith("slm_snapshot")]
            if snapshots:
                print("\n" + "\n".join(snapshots))
        finally:
            served.close()


if __name__ == "__main__":
    main()
