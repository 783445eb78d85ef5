"""What a page of clocks costs with many clocks running, and what polling it costs writers.

1. In process: N P1 incidents opened on two services (4 clocks each) through a real Engine
   on the shipped rules, published into the clocks read model; then a page of 10 clocks of
   one service, timed against two baselines in the same run: reading the same ten clocks
   straight from the view (the floor), and the page as it was served before the view kept
   its indexes in order (every clock key of the service sorted and filtered per read).
2. Over HTTP (``--http``): ``slm serve`` on a scratch database with the same incidents;
   ``GET /v1/clocks?service=email&limit=10`` against ``GET /v1/decisions?limit=10``, then
   the POST p50 of posting clients while 2 clients poll the clock page, against the same
   posting while 2 clients poll the decisions page.

Run after ``make install``:  .venv/bin/python bench/clockpage.py [--incidents 5000] [--http]
[--db postgresql://user@host/db]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import requests
from ingest import ROOT, Served, _pct, free_port, scratch_database
from load import BATCH, phase

from engine.eval.engine import Engine
from engine.lang.loader import load_rules
from engine.service.clockview import ClockReadModel, ClockView

START = datetime(2026, 11, 2, 9, tzinfo=UTC)
SERVICES = ("email", "hosting")


def opened(count: int, start: datetime) -> list[dict]:
    """P1 incidents 1 ms apart on the two services: four clocks each, none due."""
    return [{"id": f"o{n}", "source": "bench", "type": "incident.opened",
             "time": (start + timedelta(milliseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
             "subject": f"INC-{n}", "service": SERVICES[n % 2], "data": {"priority": "P1"}}
            for n in range(count)]


def page_before(view: ClockView, keys: frozenset, now: datetime, service: str, limit: int) -> tuple[list[dict], int]:
    """A filtered page as it was read before this round: the service's keys (kept in a hash
    map, in no order) sorted and filtered on every read (kept here as the baseline)."""
    at = view.reading_instant(now)
    rulings: dict = {}
    out, total = [], 0
    for key in sorted(keys):
        clock = view.running[key]
        if clock.service != service:
            continue
        total += 1
        if len(out) < limit:
            out.append(clock.at(at, rulings))
    return out, total


def timed(call, rounds: int) -> float:
    """Median seconds of ``rounds`` calls."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def in_process(incidents: int, rounds: int) -> None:
    engine, model = Engine(load_rules(ROOT / "rules"), history=False), ClockReadModel()
    began = time.perf_counter()
    for fact in opened(incidents, START):
        engine.apply(fact)
    view = model.publish(engine)
    print(f"{incidents} incidents opened in {time.perf_counter() - began:.1f} s: {len(view.running)} clocks "
          f"running, {len(view.by_service['email'])} of them on email")
    now = START + timedelta(minutes=30)
    first = view.by_service["email"].first(10)
    unordered = frozenset(view.by_service["email"])           # as the view held them before

    def floor() -> None:
        rulings: dict = {}
        [view.running[key].at(view.reading_instant(now), rulings) for key in first]

    page = timed(lambda: view.page(now, service="email", limit=10), rounds)
    base_floor = timed(floor, rounds)
    before = timed(lambda: page_before(view, unordered, now, "email", 10), max(rounds // 10, 5))
    assert view.page(now, service="email", limit=10) == page_before(view, unordered, now, "email", 10)
    print(f"page of 10 of one service: {page * 1e3:.3f} ms; the ten clocks read straight from the view "
          f"{base_floor * 1e3:.3f} ms (ratio {page / base_floor:.2f}); the page as read before "
          f"{before * 1e3:.2f} ms (ratio {page / before:.4f})")
    unfiltered = timed(lambda: view.page(now, limit=10), rounds)
    print(f"page of 10 of all clocks: {unfiltered * 1e3:.3f} ms")
    # a write's publish: one more incident opened, what the view copies for it
    costs = []
    for n in range(200):
        engine.apply({"id": f"w{n}", "source": "bench", "type": "incident.opened",
                      "time": (START + timedelta(milliseconds=incidents + n)).isoformat(),
                      "subject": f"W-{n}", "service": SERVICES[n % 2], "data": {"priority": "P1"}})
        began = time.perf_counter()
        model.publish(engine)
        costs.append(time.perf_counter() - began)
    print(f"publish after a one-fact write (4 clocks started): p50 {statistics.median(costs) * 1e6:.0f} µs")


def over_http(incidents: int, db_url: str | None, posters: int, seconds: float) -> None:
    with scratch_database(db_url) as db:
        token = subprocess.run([sys.executable, "-m", "cli", "token", "create", "--role", "admin", "--db", db],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        port = free_port()
        served = Served([sys.executable, "-m", "cli", "serve", "--db", db, "--port", str(port), "--threads", "8",
                         "--no-delivery"], port, {"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
        try:
            facts = opened(incidents, datetime.now(UTC) - timedelta(minutes=1))
            session = requests.Session()
            for at in range(0, len(facts), 500):
                session.post(served.base + "/v1/facts", json=facts[at:at + 500], headers=served.headers,
                             timeout=600).raise_for_status()
            clocks = session.get(served.base + "/v1/clocks?limit=1", headers=served.headers, timeout=60).json()
            print(f"\nover HTTP: {clocks['total']} clocks running")
            pages = {}
            for path in ("/v1/clocks?service=email&limit=10", "/v1/decisions?limit=10"):
                latencies = []
                for _ in range(200):
                    began = time.perf_counter()
                    session.get(served.base + path, headers=served.headers, timeout=60).raise_for_status()
                    latencies.append(time.perf_counter() - began)
                pages[path] = _pct(latencies, 50)
                print(f"  GET {path}: p50 {pages[path]:.2f} ms, p99 {_pct(latencies, 99):.2f} ms")
            results = {}
            for path in ("/v1/clocks?service=email&limit=10", "/v1/decisions?limit=10"):
                by_endpoint = phase(served, posters, 2, seconds, reads=(path,))
                post = by_endpoint["POST /v1/facts"]
                results[path] = _pct(post, 50)
                print(f"  {posters} posting (batches of {BATCH}), 2 polling {path}: POST p50 {_pct(post, 50):.1f} ms, "
                      f"p99 {_pct(post, 99):.1f} ms, {len(post) / seconds:.0f} posts/s; reads "
                      f"{len(by_endpoint.get('GET ' + path, [])) / seconds:.0f}/s")
            clocks_p50, decisions_p50 = results.values()
            print(f"POST p50 with 2 polling clocks / with 2 polling decisions: {clocks_p50 / decisions_p50:.2f}")
        finally:
            served.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=5000, help="P1 incidents opened (4 clocks each)")
    parser.add_argument("--rounds", type=int, default=500, help="timed reads per figure (median)")
    parser.add_argument("--http", action="store_true", help="also measure over HTTP with posting clients")
    parser.add_argument("--posters", type=int, default=4, help="posting clients over HTTP")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each HTTP phase")
    parser.add_argument("--db", metavar="URL", help="a PostgreSQL server for the HTTP part (a scratch schema)")
    args = parser.parse_args()
    in_process(args.incidents, args.rounds)
    if args.http:
        over_http(args.incidents, args.db, args.posters, args.seconds)


if __name__ == "__main__":
    main()
