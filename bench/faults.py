"""Memory over repeated forced failures: each failure inside the engine makes the
service rebuild its engine from the store and close the replaced one (``Engine.close``:
``delete_ruleset``). This measures what that leaves behind.

A service on SQLite with N stored facts; then ``--failures`` facts that fail inside the
engine (forced), each posted alone, each causing one rebuild. RSS after every tenth.
The comparison, in the same run: the same failures with ``Engine.close`` also calling
``delete_state(handle, "0")`` first, which returns the memory but crashes the process
intermittently (a double free inside durable_rules, seen under pytest): not used.

Run:  .venv/bin/python bench/faults.py [--facts 500] [--failures 100]
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import durable_rules_engine                                 # noqa: E402

from engine.eval.engine import Engine                      # noqa: E402
from engine.lang.errors import FactError                   # noqa: E402
from engine.service.live import SlmService                 # noqa: E402
from engine.store.store import Store                       # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(facts: int, failures: int, free: bool) -> list[float]:
    apply, close = Engine.apply_loaded, Engine.close

    def failing(self, fact, *args, **kwargs):
        if fact["id"].startswith("poison"):
            raise RuntimeError("forced failure")
        return apply(self, fact, *args, **kwargs)

    def close_with_state(self):
        for network in (self._targets, self._rules):
            for ruleset in network.rulesets:
                if ruleset.handle is not None:
                    try:
                        durable_rules_engine.delete_state(ruleset.handle, "0")
                    except durable_rules_engine.error:
                        pass
                    durable_rules_engine.delete_ruleset(ruleset.handle)
                    ruleset.handle = None

    Engine.apply_loaded = failing
    if free:
        Engine.close = close_with_state
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(f"sqlite:///{tmp}/slm.db")
            start = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
            now = [start + timedelta(minutes=facts)]
            service = SlmService(store, ROOT / "rules", now=lambda: now[0], snapshot_every=0)
            service.start(background=False)
            batch = [{"id": f"f{n}", "source": "bench", "type": "incident.opened",
                      "time": (start + timedelta(minutes=n)).isoformat(), "subject": f"INC-{n}",
                      "service": "email", "data": {"priority": "P2"}} for n in range(facts)]
            service.ingest(batch)
            gc.collect()
            figures = [rss_mb()]
            for n in range(failures):
                try:
                    service.ingest([{**batch[0], "id": f"poison-{n}", "subject": f"P-{n}"}])
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
    for label, free in (("close (delete_ruleset)", False), ("with delete_state too", True)):
        began = time.perf_counter()
        figures = run(args.facts, args.failures, free)
        print(f"{label:22} RSS MB before, then every 10 failures: "
              + " ".join(f"{f:.0f}" for f in figures)
              + f"   growth {figures[-1] - figures[0]:+.0f} MB over {args.failures} failures"
              + f"   ({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
