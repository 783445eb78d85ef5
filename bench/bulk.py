"""Batched ingest in process against bare durable_rules, in the same run.

A service on a scratch SQLite file (or a PostgreSQL scratch schema, ``--db``) takes N facts
in batches of ``--batch`` through ``FactIngestion.ingest``, as ``POST /v1/facts`` hands
them over (validation included, HTTP not): incidents opened (P1 and P2 on two services),
acknowledged and resolved, and metric samples, within the last hour so that no old
deadline falls due on the way. Baselines in the same run: the engine alone on the same
facts (``Engine.apply_loaded``, as the service calls it), and bare durable_rules asserting
and retracting them against the shipped rules as the engine compiles them.

Run after ``make install``:  .venv/bin/python bench/bulk.py [--facts 20000] [--batch 1000]
[--db postgresql://user@host/db] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ingest import ROOT, scratch_database

from engine.clock import utcnow
from engine.eval.compiler import compile_ruleset
from engine.lang.loader import load_rules
from engine.service.live import SlmService
from engine.service.recovery import rebuild
from engine.store.store import Store


def _engine_bench():
    """bench/engine.py (its name is the engine package's): its bare durable_rules baseline."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("engine_bench", Path(__file__).with_name("engine.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["engine_bench"] = module
    spec.loader.exec_module(module)
    return module


KINDS = (("email", "P1"), ("hosting", "P2"), ("email", "P2"), ("hosting", "P1"))


def mix(count: int) -> list[dict]:
    """``count`` facts ending a minute ago, 100 ms apart: per incident opened, acknowledged,
    resolved, and a metric sample between each."""
    start = utcnow() - timedelta(minutes=1) - timedelta(milliseconds=100 * count)
    facts: list[dict] = []
    open_ones: list[tuple[str, str]] = []
    n = 0
    while len(facts) < count:
        at = (start + timedelta(milliseconds=100 * len(facts))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        step = len(facts) % 4
        if step == 3:
            fact = {"type": "metric.sample", "subject": "web-1", "service": "hosting",
                    "data": {"name": "latency_p95", "value": 100 + n % 50}}
        elif step == 0 or not open_ones:
            service, priority = KINDS[n % len(KINDS)]
            open_ones.append((f"INC-{n}", service))
            fact = {"type": "incident.opened", "subject": f"INC-{n}", "service": service,
                    "data": {"priority": priority}}
        else:
            subject, service = open_ones.pop(0) if step == 2 else open_ones[0]
            fact = {"type": "incident.acknowledged" if step == 1 else "incident.resolved", "subject": subject,
                    "service": service, "data": {}}
        facts.append({"id": f"f{n}", "source": "bench", "time": at, **fact})
        n += 1
    return facts


def ingest(facts: list[dict], batch: int, db: str, profile: bool) -> tuple[float, float]:
    """Seconds to ingest ``facts`` in batches, and to replay them all from the store as a
    restart without a snapshot does (``engine.service.recovery.rebuild``)."""
    store = Store.open(db)
    service = SlmService(store, ROOT / "rules", snapshot_every=0, freeze_heap=True)
    service.start(background=False)
    service.scheduler.stop()
    profiler = cProfile.Profile() if profile else None
    began = time.perf_counter()
    if profiler:
        profiler.enable()
    for start in range(0, len(facts), batch):
        service.facts.ingest(facts[start:start + batch])
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - began
    service.stop()
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    began = time.perf_counter()
    rebuilt = rebuild(store, service.state.ruleset, history=False, retain=service.keeper.retain, snapshots=False)
    replay = time.perf_counter() - began
    assert rebuilt.replayed == len(facts)
    rebuilt.engine.close()
    store.close()
    return seconds, replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--db", metavar="URL", help="a PostgreSQL server (a scratch schema) instead of SQLite")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the ingest (slower)")
    args = parser.parse_args()
    facts = mix(args.facts)
    shipped = load_rules(ROOT / "rules")
    with scratch_database(args.db) as db:
        ingest_s, replay_s = ingest(facts, args.batch, db, args.profile)
    bench = _engine_bench()
    engine_s = bench.run_engine(shipped, facts)
    bare_s = min(bench.run_bare(facts, compile_ruleset(shipped)) for _ in range(2))
    n = len(facts)
    print(f"{n} facts in batches of {args.batch} on {'PostgreSQL' if args.db else 'SQLite'}:")
    print(f"  ingest (validate, evaluate, store): {n / ingest_s:8.0f} facts/s  {ingest_s / n * 1e6:6.0f} µs/fact")
    print(f"  engine alone (apply_loaded):        {n / engine_s:8.0f} facts/s  {engine_s / n * 1e6:6.0f} µs/fact")
    print(f"  bare durable_rules, same rules:     {n / bare_s:8.0f} facts/s  {bare_s / n * 1e6:6.0f} µs/fact")
    print(f"  restart replay of them all (read from the store, no snapshot): {n / replay_s:8.0f} facts/s")
    print(f"ratio ingest / bare durable_rules: {bare_s / ingest_s:.3f}; outside the engine: "
          f"{(ingest_s - engine_s) / n * 1e6:.0f} µs/fact")
    print(f"ratio restart replay / bare durable_rules: {bare_s / replay_s:.3f}")


if __name__ == "__main__":
    main()
