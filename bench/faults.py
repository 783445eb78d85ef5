"""Memory over repeated forced failures: each failure inside the engine makes the
service rebuild its engine from the store and close the replaced one (``Engine.close``:
``delete_state`` then ``delete_ruleset`` for each durable_rules ruleset, engine/eval/durable.py).
This measures what that leaves behind.

A service on SQLite with N stored facts; then ``--failures`` facts that fail inside the
engine (forced), each posted alone, each causing one rebuild. RSS after every tenth.
The baseline, in the same run: the same failures with ``Engine.close`` calling only
``delete_ruleset`` (as before the session primer made ``delete_state`` safe), which leaves
each replaced engine's session state behind.

Run:  .venv/bin/python bench/faults.py [--facts 500] [--failures 100]
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import durable_rules_engine

from engine.eval.engine import Engine
from engine.lang.errors import FactError
from engine.service.live import SlmService
from engine.store.store import Store


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(facts: int, failures: int, free: bool) -> list[float]:
    """RSS (MB) before the failures and after every tenth; ``free``: close as shipped."""
    apply, close = Engine.apply_loaded, Engine.close

    def failing(self, fact, *args, **kwargs):
        if fact["id"].startswith("poison"):
            raise RuntimeError("forced failure")
        return apply(self, fact, *args, **kwargs)

    def close_ruleset_only(self):
        for network in self.context.network.networks:
            for ruleset in network.rulesets:
                if ruleset.handle is not None:
                    durable_rules_engine.delete_ruleset(ruleset.handle)
                    ruleset.handle = None

    Engine.apply_loaded = failing
    if not free:
        Engine.close = close_ruleset_only
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(f"sqlite:///{tmp}/slm.db")
            start = datetime(2026, 11, 2, 9, tzinfo=UTC)
            now = [start + timedelta(minutes=facts)]
            service = SlmService(store, ROOT / "rules", now=lambda: now[0], snapshot_every=0)
            service.start(background=False)
            batch = [{"id": f"f{n}", "source": "bench", "type": "incident.opened",
                      "time": (start + timedelta(minutes=n)).isoformat(), "subject": f"INC-{n}",
                      "service": "email", "data": {"priority": "P2"}} for n in range(facts)]
            service.facts.ingest(batch)
            gc.collect()
            figures = [rss_mb()]
            for n in range(failures):
                try:
                    service.facts.ingest([{**batch[0], "id": f"poison-{n}", "subject": f"P-{n}"}])
                except FactError:
                    pass
                if (n + 1) % 10 == 0:
                    gc.collect()
                    figures.append(rss_mb())
            service.stop()
            store.close()
            return figures
    finally:
        Engine.apply_loaded, Engine.close = apply, close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=500)
    parser.add_argument("--failures", type=int, default=100)
    args = parser.parse_args()
    growth = {}
    for label, free in (("as shipped", True), ("baseline: delete_ruleset only", False)):
        began = time.perf_counter()
        figures = run(args.facts, args.failures, free)
        growth[free] = figures[-1] - figures[0]
        print(f"{label:30} RSS MB before, then every 10 failures: "
              + " ".join(f"{f:.0f}" for f in figures)
              + f"   growth {growth[free]:+.0f} MB over {args.failures} failures"
              + f"   ({time.perf_counter() - began:.0f} s)")
    print(f"growth as shipped / baseline: {growth[True] / max(growth[False], 1e-9):.2f}")


if __name__ == "__main__":
    main()
