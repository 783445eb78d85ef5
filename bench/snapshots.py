"""How long a periodic snapshot holds the write lock: encoded beside the writer (a fork)
against encoded under the lock, in the same run.

A service on a scratch SQLite file (or a PostgreSQL scratch schema, ``--db``) is filled
in process with N P1 incidents (4 clocks each, about 17,000 clocks for 4,250); then
snapshots are taken as a write takes them (``EngineKeeper.maybe_snapshot`` under the write
lock), each way, several times: the time the lock was held, and for the background ones
the time until the snapshot was stored.

Run after ``make install``:  .venv/bin/python bench/snapshots.py [--incidents 4250] [--rounds 5]
[--db postgresql://user@host/db]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ingest import ROOT, scratch_database

from engine.clock import utcnow
from engine.service.live import SlmService
from engine.store.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=4250)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", metavar="URL", help="a PostgreSQL server (a scratch schema) instead of SQLite")
    args = parser.parse_args()
    with scratch_database(args.db) as db:
        store = Store.open(db)
        service = SlmService(store, ROOT / "rules", snapshot_every=1, freeze_heap=True)
        service.start(background=False)
        service.scheduler.stop()
        at = utcnow() - timedelta(minutes=1)
        facts = [{"id": f"o{n}", "source": "bench", "type": "incident.opened",
                  "time": (at + timedelta(milliseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                  "subject": f"INC-{n}", "service": "email", "data": {"priority": "P1"}}
                 for n in range(args.incidents)]
        keeper, state = service.keeper, service.state
        keeper.snapshot_every = 0                         # none while filling
        for start in range(0, len(facts), 500):
            service.facts.ingest(facts[start:start + 500])
        keeper.snapshot_every = 1
        print(f"{args.incidents} incidents: {len(state.readmodel.view.running)} clocks running")
        held: dict[str, list[float]] = {"beside the writer": [], "under the lock": []}
        stored: list[float] = []
        for _ in range(args.rounds):
            for way, background in (("beside the writer", True), ("under the lock", False)):
                keeper.snapshots.background = background
                with state.write_lock:
                    keeper._since_snapshot = 1
                    began = time.perf_counter()
                    keeper.maybe_snapshot()
                    held[way].append(time.perf_counter() - began)
                keeper.wait_for_snapshot()
                if background:
                    stored.append(time.perf_counter() - began)
        size = len(store.latest_snapshot(None, "state-v4")["body"]) / 2 ** 20
        beside, under = statistics.median(held["beside the writer"]), statistics.median(held["under the lock"])
        most = max(held["beside the writer"])
        print(f"snapshot of {size:.1f} MiB, median of {args.rounds}: write lock held {beside * 1e3:.1f} ms beside "
              f"the writer (max {most * 1e3:.1f} ms; stored {statistics.median(stored):.2f} s after) "
              f"against {under * 1e3:.0f} ms under the lock (max {max(held['under the lock']) * 1e3:.0f} ms): "
              f"ratio {beside / under:.3f}")
        service.stop()
        store.close()


if __name__ == "__main__":
    main()
