"""Restart time: how long ``slm serve`` takes to rebuild its state from N stored facts.

Fills a fresh SQLite database through the service (so facts, decisions, notifications and
ticks are stored as in production) with a history of incidents — opened, acknowledged,
resolved — spread over the validity of the shipped agreements, then times a cold start
(open the store, load the rules, rebuild) of a new service on it three ways: from the
snapshot taken at stop, from the snapshot before it (a restart after a kill: up to
``--snapshot-every`` facts to replay), and with snapshots off (a full replay). Baseline,
measured in the same run: reading the same facts back from the store without evaluating
them.

Run after ``make install``:  .venv/bin/python bench/restart.py [--facts 100000]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine.clock import utcnow
from engine.lang.loader import load_rules
from engine.service.live import SNAPSHOT_EVERY, SlmService
from engine.store.store import Store

SERVICES = (("email", "P1"), ("email", "P2"), ("service-desk", None), ("hosting", "P1"), ("hosting", "P2"))


def agreed_window(now: datetime) -> tuple[datetime, datetime]:
    """Where the history goes: inside the validity of every shipped agreement that has one
    (a fact outside it starts no clock, so it would measure nothing), ending at most an
    hour ago. Without such an overlap in the past: the year before the last hour."""
    end = now - timedelta(hours=1)
    spans = [t.valid_span() for t in load_rules(ROOT / "rules").targets.values()]
    start = max((s for s, _ in spans if s), default=None)
    end = min([end] + [e for _, e in spans if e])
    if start is None or end - start < timedelta(days=1):
        start, end = now - timedelta(days=366), now - timedelta(hours=1)
    return start, end


def history(count: int, now: datetime) -> list[dict]:
    """``count`` facts, three per incident (opened, acknowledged 5 minutes later, resolved
    after 45), incidents evenly spread over :func:`agreed_window`."""
    incidents = count // 3
    start, end = agreed_window(now)
    step = (end - timedelta(minutes=45) - start) / max(incidents, 1)
    facts = []
    for n in range(incidents):
        service, priority = SERVICES[n % len(SERVICES)]
        opened = start + step * n
        kind = "request" if priority is None else "incident"
        subject = f"{kind[:3].upper()}-{n}"
        data = {"priority": priority} if priority else {}
        for suffix, offset in (("opened", 0), ("acknowledged", 5), ("resolved", 45)):
            facts.append({"id": f"h{n}-{suffix}", "source": "bench", "type": f"{kind}.{suffix}",
                          "time": (opened + timedelta(minutes=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                          "subject": subject, "service": service, "data": data if suffix == "opened" else {}})
    facts.sort(key=lambda f: f["time"])
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--bulk", action="store_true",
                        help="store the facts without evaluating them (fast, for millions); "
                             "time a full replay, then a restart from the snapshot it leaves "
                             "with a snapshot interval's worth of facts stored after it")
    parser.add_argument("--restart", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--decisions", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot-every", type=int, default=SNAPSHOT_EVERY, help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.restart:
        cold_start(args.restart, args.decisions, args.snapshot_every, args.now)
        return
    now = datetime.now(UTC)
    facts = history(args.facts, now)
    if args.bulk:
        bulk(facts)
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/restart.db"
        store = Store.open(url)
        service = SlmService(store, ROOT / "rules")
        service.start(background=False)
        began = time.perf_counter()
        for i in range(0, len(facts), 1000):
            service.facts.ingest(facts[i:i + 1000])
        fill = time.perf_counter() - began
        service.stop()
        decisions = store.decision_count()
        store.close()

        began = time.perf_counter()
        with Store.open(url) as reader:
            read = sum(1 for _ in reader.facts())
        baseline = time.perf_counter() - began

        from_stop = _cold(url, SNAPSHOT_EVERY, decisions)           # the snapshot taken at stop
        with Store.open(url) as store:                               # as if killed: drop it
            S = store.m.Snapshot
            S.delete().where(S.seq == S.select(S.seq).order_by(S.seq.desc()).limit(1).scalar()).execute()
        from_older = _cold(url, SNAPSHOT_EVERY, decisions)
        full = _cold(url, 0, decisions)
        assert full[1] == len(facts) == read

    print(f"restart with {len(facts):,} stored facts ({decisions:,} decisions) on SQLite")
    print(f"  filled through the service in {fill:.1f}s ({len(facts) / fill:,.0f} facts/s, batches of 1,000)")
    print(f"  baseline: read all facts back                  {baseline:8.2f}s")
    for name, (elapsed, replayed, rss) in (("snapshot taken at stop", from_stop),
                                           ("older snapshot (after a kill)", from_older),
                                           ("no snapshot: full replay", full)):
        print(f"  restart, {name:<31} {elapsed:8.2f}s  ({replayed:,} facts replayed, RSS {rss:,.0f} MiB; "
              f"baseline/restart {baseline / elapsed:.3f})")


def bulk(facts: list[dict]) -> None:
    """Millions of facts: stored directly (no decisions), replayed once in full (which
    leaves a snapshot), then the last snapshot interval's facts stored after it."""
    tail = SNAPSHOT_EVERY - 1
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/restart.db"
        with Store.open(url) as store:
            began = time.perf_counter()
            for i in range(0, len(facts) - tail, 5000):
                store.add_facts([(f, []) for f in facts[i:min(i + 5000, len(facts) - tail)]])
            fill = time.perf_counter() - began
        # a full replay, at the wall-clock time the last fact stored so far came in; it
        # snapshots at the end, and the facts stored after that come after it in time
        full = _cold(url, SNAPSHOT_EVERY, now=facts[len(facts) - tail]["time"])
        with Store.open(url) as store:
            store.add_facts([(f, []) for f in facts[len(facts) - tail:]])
        from_snapshot = _cold(url, SNAPSHOT_EVERY)
    print(f"restart with {len(facts):,} stored facts on SQLite (stored directly in {fill:.0f}s, not evaluated)")
    for name, (elapsed, replayed, rss) in (("full replay", full),
                                           ("from the snapshot + the facts after it", from_snapshot)):
        print(f"  restart, {name:<40} {elapsed:8.2f}s  ({replayed:,} facts replayed, RSS {rss:,.0f} MiB)")


def _cold(url: str, snapshot_every: int, decisions: int = -1, now: str | None = None) -> tuple[float, int, float]:
    """A cold start in a process of its own (at the wall-clock time ``now``, if given):
    (seconds, facts replayed, RSS MiB)."""
    out = subprocess.run([sys.executable, __file__, "--restart", url, "--decisions", str(decisions),
                          "--snapshot-every", str(snapshot_every)] + (["--now", now] if now else []),
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1]), float(out[2])


def cold_start(url: str, decisions: int, snapshot_every: int, now: str | None) -> None:
    """Child process: start a service on ``url``; print seconds, facts replayed, RSS MiB."""
    fixed = datetime.fromisoformat(now.replace("Z", "+00:00")) if now else None
    began = time.perf_counter()
    store = Store.open(url)
    service = SlmService(store, ROOT / "rules", snapshot_every=snapshot_every,
                         now=(lambda: fixed) if fixed else utcnow)
    service.start(background=False)
    elapsed = time.perf_counter() - began
    assert decisions < 0 or store.decision_count() == decisions, "a restart must not decide anything twice"
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    print(elapsed, service.state.replayed, rss)
    service.keeper.snapshot_every = 0                # leave the snapshots as they are
    service.stop()
    store.close()

if __name__ == "__main__":
    main()
