"""Ingestion over loopback HTTP: ``slm serve`` on SQLite, driven by this (separate) process.

Measures batch posts (1,000 facts per request) and single-fact posts at 1, 8 and 32
concurrent clients: throughput and p50/p99 latency. The baseline, measured in the same
run, is the same server setup (waitress, same thread count) answering a trivial Flask
route that only parses the JSON body: the ratio says what storing and evaluating costs
on top of HTTP.

Run after ``make install``:  .venv/bin/python bench/ingest.py [--quick]
[--postgres postgresql://user@host/db]  (the latter in a scratch schema, dropped afterwards)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def trivial_server(port: int, threads: int) -> None:
    """The baseline: the same WSGI server and thread count, a route that parses JSON only."""
    from flask import Flask, jsonify, request
    from waitress import serve

    app = Flask("baseline")

    @app.post("/v1/facts")
    def facts():
        body = request.get_json()
        return jsonify(accepted=len(body) if isinstance(body, list) else 1)

    @app.get("/readyz")
    def ready():
        return "ok"

    serve(app, host="127.0.0.1", port=port, threads=threads, ident="baseline")


class Served:
    def __init__(self, args: list[str], port: int, headers: dict):
        self.base, self.headers = f"http://127.0.0.1:{port}", headers
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"{args} did not become ready")

    def close(self):
        self.process.terminate()
        self.process.wait(10)


@contextlib.contextmanager
def scratch_database(postgres: str | None):
    """A database URL for one run: a temporary SQLite file, or a fresh schema on the
    PostgreSQL server at ``postgres`` (dropped afterwards)."""
    if not postgres:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    import psycopg2
    schema = f"slm_bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(postgres)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{postgres}{'&' if '?' in postgres else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def facts(prefix: str, count: int) -> list[dict]:
    """A realistic mix over the shipped rules, in the recent past so no deadline is due."""
    now = datetime.now(UTC) - timedelta(seconds=60)
    out = []
    for n in range(count):
        at = (now + timedelta(microseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        kind = n % 4
        if kind == 0:
            fact = {"type": "incident.opened", "subject": f"{prefix}-INC-{n}", "service": "email",
                    "data": {"priority": "P1" if n % 8 == 0 else "P2"}}
        elif kind == 1:
            fact = {"type": "incident.acknowledged", "subject": f"{prefix}-INC-{n - 1}", "service": "email",
                    "data": {}}
        elif kind == 2:
            fact = {"type": "request.opened", "subject": f"{prefix}-REQ-{n}", "service": "service-desk",
                    "data": {}}
        else:
            fact = {"type": "metric.sample", "subject": "web-1", "service": "hosting",
                    "data": {"name": "latency_p95", "value": 120 + n % 50}}
        out.append({"id": f"{prefix}-{n}", "source": "bench", "time": at, **fact})
    return out


def run_batches(served: Served, batches: list[list[dict]]) -> dict:
    session = requests.Session()
    latencies = []
    began = time.perf_counter()
    for batch in batches:
        t0 = time.perf_counter()
        r = session.post(served.base + "/v1/facts", data=json.dumps(batch), headers=served.headers, timeout=300)
        latencies.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"batch post failed: {r.status_code} {r.text[:300]}")
    elapsed = time.perf_counter() - began
    total = sum(len(b) for b in batches)
    return {"facts_per_s": total / elapsed, "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99)}


def run_singles(served: Served, clients: int, per_client: int, prefix: str) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    errors = []

    def client(index: int):
        session = requests.Session()
        mine = []
        for fact in facts(f"{prefix}-{index}", per_client):
            t0 = time.perf_counter()
            r = session.post(served.base + "/v1/facts", json=fact, headers=served.headers, timeout=60)
            mine.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:200]}")
                return
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"single posts failed: {errors[0]}")
    return {"facts_per_s": len(latencies) / elapsed, "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99)}


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0] * 1000
    return statistics.quantiles(ordered, n=100, method="inclusive")[pct - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer facts (a smoke run)")
    parser.add_argument("--threads", type=int, default=8, help="server request threads")
    parser.add_argument("--postgres", metavar="URL", help="run slm on this PostgreSQL server instead of SQLite")
    parser.add_argument("--trivial-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trivial_server:
        trivial_server(args.trivial_server, args.threads)
        return
    batches, singles = (3, 100) if args.quick else (10, 400)

    with scratch_database(args.postgres) as db:
        token = subprocess.run([sys.executable, "-m", "cli", "token", "create", "--role", "monitor", "--db", db],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        port = free_port()
        slm = Served([sys.executable, "-m", "cli", "serve", "--db", db, "--port", str(port),
                      "--threads", str(args.threads)], port, {"Authorization": f"Bearer {token}",
                                                              "Content-Type": "application/json"})
        base_port = free_port()
        baseline = Served([sys.executable, __file__, "--trivial-server", str(base_port), "--threads",
                           str(args.threads)], base_port, {"Content-Type": "application/json"})
        try:
            rows = []
            payloads = [facts(f"b{n}", 1000) for n in range(batches)]
            run_batches(slm, [facts("warm", 200)])
            rows.append(("batch of 1,000", run_batches(slm, payloads), run_batches(baseline, payloads)))
            for clients in (1, 8, 32):
                per = max(singles // clients, 10) if clients > 1 else singles
                rows.append((f"single, {clients} client{'s' if clients > 1 else ''}",
                             run_singles(slm, clients, per, f"s{clients}"),
                             run_singles(baseline, clients, per, f"s{clients}")))
        finally:
            slm.close()
            baseline.close()

    store = "PostgreSQL" if args.postgres else "SQLite"
    print(f"ingest over loopback, {store}, waitress {args.threads} threads; baseline: trivial Flask route, same server")
    print(f"{'mode':<20}{'slm facts/s':>13}{'p50 ms':>9}{'p99 ms':>9}   {'baseline/s':>11}{'p50 ms':>9}"
          f"{'p99 ms':>9}{'ratio':>8}")
    for name, ours, base in rows:
        print(f"{name:<20}{ours['facts_per_s']:>13,.0f}{ours['p50_ms']:>9.1f}{ours['p99_ms']:>9.1f}   "
              f"{base['facts_per_s']:>11,.0f}{base['p50_ms']:>9.1f}{base['p99_ms']:>9.1f}"
              f"{ours['facts_per_s'] / base['facts_per_s']:>8.3f}")


if __name__ == "__main__":
    main()
