"""Error budgets under real traffic: `sli.counts` facts every few minutes for weeks into a
ratio target with a rolling 28-day window and the SRE workbook's three burn-rate levels
(14.4x 1h/5m, 6x 6h/30m, 1x 3d/6h), through the Engine as the service runs it (retain
35 days). Run: .venv/bin/python bench/budgets.py [--days 90] [--every 5]

Prints the time per fact early and late in the run (flat: the clock's work does not grow
with its history), the history the budget holds at the end (ledger entries, transitions
kept for a rebuild, snapshot size) against what it was given, and, as the baseline of the
same run, bare durable_rules asserting and retracting the same facts against the same
rules as the engine compiles them.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bulk import _engine_bench  # the bare durable_rules baseline of bench/engine.py

from engine.eval.budget import BudgetClock
from engine.eval.compiler import compile_ruleset
from engine.eval.engine import Engine
from engine.lang.loader import load_texts
from schemas.values import format_instant

START = datetime(2026, 3, 2, tzinfo=UTC)
RULES = """
kind: Service
id: shop
name: Shop
roles: {service_level_manager: slm@example.org}
---
kind: Agreement
id: sla-shop
type: SLA
service: shop
targets:
  - id: pay
    name: payments, 99.9% over 28 days
    ratio: {name: payment, window: rolling 28d}
    goal: 99.9%
    burn_rate:
      - {factor: 14.4, long: 1h, short: 5m}
      - {factor: 6, long: 6h, short: 30m}
      - {factor: 1, long: 3d, short: 6h}
"""


def counts(days: int, every: int) -> list[dict]:
    """A count every ``every`` minutes; a bad hour (5%) every four days."""
    out = []
    for n in range(days * 24 * 60 // every):
        start, end = START + timedelta(minutes=n * every), START + timedelta(minutes=(n + 1) * every)
        bad = 50 if (end - START) % timedelta(days=4) < timedelta(hours=1) else 0
        out.append({"id": f"c{n}", "source": "bench", "type": "sli.counts", "time": format_instant(end),
                    "service": "shop", "data": {"name": "payment", "good": 1000 - bad, "total": 1000,
                                                "start": format_instant(start)}})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--every", type=int, default=5, help="minutes between counts")
    args = parser.parse_args()
    ruleset = load_texts({"rules.yaml": RULES})
    facts = counts(args.days, args.every)
    engine = Engine(ruleset, history=False, retain=timedelta(days=35))
    loaded = [engine.validate(fact) for fact in facts]
    tenth = len(loaded) // 10
    times, decided = [], 0
    for part in range(10):
        began = time.perf_counter()
        for fact in loaded[part * tenth:(part + 1) * tenth]:
            decided += len(engine.apply_loaded(fact).decisions)
        times.append(time.perf_counter() - began)
    engine_s = sum(times)
    bare_s = min(_engine_bench().run_bare(facts[:10 * tenth], compile_ruleset(ruleset)) for _ in range(2))
    (record,) = [r for r in engine.context.state.book.records.values() if isinstance(r.clock, BudgetClock)]
    print(f"facts: {10 * tenth} sli.counts, one every {args.every} min for {args.days} days; {decided} decisions")
    print(f"engine: {engine_s:.1f} s, {engine_s / (10 * tenth) * 1e3:.2f} ms/fact; per tenth of the run (ms/fact): "
          + " ".join(f"{t / tenth * 1e3:.2f}" for t in times))
    print(f"bare durable_rules, same facts and rules: {bare_s:.2f} s; ratio engine/bare {bare_s / engine_s:.3f}")
    print(f"held at the end: {record.clock.ledger.entries()} ledger entries, {len(record.transitions)} transitions "
          f"(settled up to {record.settled}), snapshot {len(engine.snapshot()) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
