"""Reload time: how long a rule change holds writers back, with N stored facts.

Stores N facts directly (a history of incidents over the shipped agreements' validity, as
bench/restart.py makes it, and N/50 incidents opened in the last half hour, whose clocks
run at the change), starts the service on them (a full replay: what every reload
cost before rule changes had cut-overs, the baseline measured in the same run), then
changes the P1 response goal and reloads, timing how long the reload holds the write lock
(writers wait that long; reading and checking the files comes before, without it). Last,
the what-if replay of the same change over the whole history (``slm replay``), as facts
per second.

Run after ``make install``:  .venv/bin/python bench/reload.py [--facts 100000]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from restart import history  # the restart benchmark's history: one definition

from engine.lang.loader import load_rules
from engine.service.live import SlmService
from engine.service.whatif import what_if
from engine.store.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=100_000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    facts = history(args.facts, now)
    running = max(args.facts // 50, 1)               # incidents still open at the change: their clocks run
    facts += [{"id": f"open-{n}", "source": "bench", "type": "incident.opened",
               "time": (now - timedelta(minutes=30, seconds=-n % 600)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
               "subject": f"OPEN-{n}", "service": "email", "data": {"priority": "P1" if n % 2 else "P2"}}
              for n in range(running)]
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules"
        shutil.copytree(ROOT / "rules", rules)
        url = f"sqlite:///{tmp}/reload.db"
        with Store.open(url) as store:
            for i in range(0, len(facts), 5000):
                store.add_facts([(f, []) for f in facts[i:i + 5000]])
        store = Store.open(url)
        service = SlmService(store, rules, snapshot_every=0)
        began = time.perf_counter()
        service.start(background=False)
        replay_s = time.perf_counter() - began
        clocks = sum(1 for r in service.state.engine.state.book.records.values() if r.clock.running)
        email = rules / "services" / "email.yaml"
        email.write_text(email.read_text().replace("    goal: 15m\n", "    goal: 20m\n", 1))
        began = time.perf_counter()
        service.rules.reload()
        reload_s = time.perf_counter() - began
        service.stop()
        began = time.perf_counter()
        result = what_if(store, load_rules(rules), now - timedelta(days=3650), now)
        whatif_s = time.perf_counter() - began
        store.close()
    print(f"reload with {len(facts):,} stored facts on SQLite ({clocks:,} clocks running at the change)")
    print(f"  baseline: a full replay (what a reload cost before)   {replay_s:8.2f}s")
    held = service.rules.held_seconds
    print(f"  reload, writers held back (the write lock)            {held:8.3f}s   "
          f"(baseline/held {replay_s / held:,.0f})")
    print(f"  reload in all (reading and checking the files first)  {reload_s:8.3f}s")
    print(f"  what-if replay of the change over the whole history   {whatif_s:8.2f}s   "
          f"({result['facts'] / whatif_s:,.0f} facts/s; the facts were stored directly, with no "
          f"decisions, so all {len(result['added']):,} it decides count as added)")


if __name__ == "__main__":
    main()
