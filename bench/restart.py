"""Restart time: how long ``slm serve`` takes to rebuild its state from N stored facts.

Fills a fresh SQLite database through the service (so facts, decisions, notifications and
ticks are stored as in production) with a history of incidents — opened, acknowledged,
resolved — spread back from now, then times a cold start (open the store, load the
rules, replay) of a new service on it. Baseline, measured in the same run: reading the
same facts back from the store without evaluating them.

Run after ``make install``:  .venv/bin/python bench/restart.py [--facts 100000]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine.service import SlmService  # noqa: E402
from engine.store import Store  # noqa: E402

SERVICES = (("email", "P1"), ("email", "P2"), ("service-desk", None), ("hosting", "P1"), ("hosting", "P2"))


def history(count: int, end: datetime) -> list[dict]:
    """``count`` facts, three per incident, incidents 10 minutes apart, ending an hour ago."""
    incidents = count // 3
    start = end - timedelta(hours=1) - timedelta(minutes=10 * incidents)
    facts = []
    for n in range(incidents):
        service, priority = SERVICES[n % len(SERVICES)]
        opened = start + timedelta(minutes=10 * n)
        kind = "request" if priority is None else "incident"
        subject = f"{kind[:3].upper()}-{n}"
        data = {"priority": priority} if priority else {}
        for suffix, offset in (("opened", 0), ("acknowledged", 5), ("resolved", 45)):
            facts.append({"id": f"h{n}-{suffix}", "source": "bench", "type": f"{kind}.{suffix}",
                          "time": (opened + timedelta(minutes=offset)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "subject": subject, "service": service, "data": data if suffix == "opened" else {}})
    facts.sort(key=lambda f: f["time"])
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=100_000)
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    facts = history(args.facts, now)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/restart.db"
        store = Store.open(url)
        service = SlmService(store, ROOT / "rules")
        service.start(background=False)
        began = time.perf_counter()
        for i in range(0, len(facts), 1000):
            service.ingest(facts[i:i + 1000])
        fill = time.perf_counter() - began
        service.stop()
        decisions = store.decision_count()
        store.close()

        began = time.perf_counter()
        with Store.open(url) as reader:
            read = sum(1 for _ in reader.facts())
        baseline = time.perf_counter() - began

        began = time.perf_counter()
        store = Store.open(url)
        restarted = SlmService(store, ROOT / "rules")
        restarted.start(background=False)
        rebuild = time.perf_counter() - began
        assert restarted.replayed == len(facts) == read
        assert store.decision_count() == decisions, "a restart must not decide anything twice"
        restarted.stop()
        store.close()

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"restart with {len(facts):,} stored facts ({decisions:,} decisions) on SQLite")
    print(f"  filled through the service in {fill:.1f}s ({len(facts) / fill:,.0f} facts/s, batches of 1,000)")
    print(f"  baseline: read all facts back        {baseline:8.2f}s")
    print(f"  restart: open, load rules, replay     {rebuild:8.2f}s  ({len(facts) / rebuild:,.0f} facts/s)")
    print(f"  ratio baseline/restart                {baseline / rebuild:8.3f}")
    print(f"  peak RSS of this process              {rss:8.0f} MiB")


if __name__ == "__main__":
    main()
