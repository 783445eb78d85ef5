"""The facts of the error-budget tests (fixtures/rulesets/budgets): payments counted every
five minutes, 5% bad from 10:00 to 10:20 (fixtures/scenarios/budget-burn-rate-page.yaml)."""
from __future__ import annotations

from datetime import timedelta

from schemas.values import format_instant, parse_instant


def counts(fid: str, end: str, good: object, total: object, start: str, name: str = "payment") -> dict:
    return {"id": fid, "source": "test", "type": "sli.counts", "time": end, "service": "shop",
            "data": {"name": name, "good": good, "total": total, "start": start}}


def payments() -> list[dict]:
    """Good, then 5% bad from 10:00 to 10:20, then good: the 14.4x page fires and clears."""
    facts = [counts("p0", "2026-11-12T09:00:00Z", 1_000_000, 1_000_000, "2026-11-12T00:00:00Z")]
    base, step = parse_instant("2026-11-12T09:00:00Z"), timedelta(minutes=5)
    for k in range(1, 19):
        start, end = base + (k - 1) * step, base + k * step
        bad = "10:00" < format_instant(end)[11:16] <= "10:20"
        facts.append(counts(f"p{k}", format_instant(end), 950 if bad else 1000, 1000, format_instant(start)))
    return facts
