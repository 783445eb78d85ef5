"""A ratio target's budget clock against an oracle (docs/RULES.md, "Error budgets"): what
it decides, and when, equals what the definitions give when every window is summed
afresh, minute by minute.

The counts fall on whole minutes and every window is whole minutes, so every sum of a
window ending at an instant changes only at a whole minute: reading each minute is
reading every instant. The oracle shares nothing with the clock but the rule text.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.eval.engine import Engine
from engine.lang.loader import load_texts
from schemas.values import format_instant
from tests.support.ruletexts import SHOP_AGREEMENT

START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW, ALLOWED, OVER = 240, Fraction(1, 100), 60          # minutes, 1 − 99%, forecast.over
WARN = Fraction(1, 2)
BURNS = [("14.4x", Fraction(72, 5), 60, 5), ("6x", Fraction(6), 120, 15)]     # text, factor, long, short

RULES = SHOP_AGREEMENT + f"""\
  - id: pay
    name: payments
    ratio: {{name: payment, window: rolling {WINDOW}m}}
    goal: 99%
    warn_at: [50%]
    forecast: {{over: {OVER}m}}
    burn_rate:
      - {{factor: 14.4, long: 60m, short: 5m}}
      - {{factor: 6, long: 120m, short: 15m}}
"""

intervals = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 200), st.integers(0, 100)),
                     min_size=1, max_size=25)


def posted(drawn: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(end minute, bad, total) of each interval, back to back from minute 0."""
    out, minute = [], 0
    for length, total, bad_percent in drawn:
        minute += length
        out.append((minute, total * bad_percent // 100 if bad_percent > 70 else total * bad_percent // 1000, total))
    return out


def oracle(counts: list[tuple[int, int, int]], until: int) -> list[tuple[str, int, str | None]]:
    """(kind, minute, level) of every decision, from sums taken afresh at each minute."""

    def sums(end: int, length: int) -> tuple[int, int]:
        inside = [(b, t) for at, b, t in counts if end - length < at <= end]
        return sum(b for b, _ in inside), sum(t for _, t in inside)

    out: list[tuple[str, int, str | None]] = []
    active: set[str] = set()
    for minute in range(counts[0][0], until + 1):
        bad, total = sums(minute, WINDOW)
        budget = ALLOWED * total
        exhausted = bad > 0 and bad >= budget
        if exhausted and "exhausted" not in active:
            active.add("exhausted")
            out.append(("breach", minute, "100%"))
        elif not exhausted and "exhausted" in active:
            active.discard("exhausted")
            out.append(("recovered", minute, "100%"))
        warned = bad > 0 and bad >= WARN * budget
        if warned and "warn" not in active:
            active.add("warn")
            out.append(("warning", minute, "50%"))
        elif not warned:
            active.discard("warn")
        for text, factor, long, short in BURNS:
            holds = []
            for length in (long, short):
                b, t = sums(minute, length)
                holds.append(b > 0 and b >= factor * ALLOWED * t)
            if text not in active and all(holds):
                active.add(text)
                out.append(("burn_rate", minute, text))
            elif text in active and not holds[1]:
                active.discard(text)
                out.append(("burn_rate_cleared", minute, text))
        recent, _ = sums(minute, OVER)
        at_risk = recent > 0 and recent * WINDOW > (budget - bad) * OVER
        if at_risk and "at_risk" not in active:
            active.add("at_risk")
            out.append(("at_risk", minute, None))
        elif not at_risk and "at_risk" in active:
            active.discard("at_risk")
            out.append(("retracted", minute, None))
    return out


def at(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def facts(counts: list[tuple[int, int, int]]) -> list[dict]:
    out, previous = [], 0
    for n, (end, bad, total) in enumerate(counts):
        out.append({"id": f"c{n}", "source": "test", "type": "sli.counts", "time": format_instant(at(end)),
                    "service": "shop", "data": {"name": "payment", "good": total - bad, "total": total,
                                                "start": format_instant(at(previous))}})
        previous = end
    return out


RULESET = load_texts({"rules.yaml": RULES})


def decided(engine: Engine) -> list[tuple[str, int, str | None]]:
    order = {"retracted": 1}
    out = [(d.kind, int((d.at - START) / timedelta(minutes=1)), d.level) for d in engine.decisions
           if d.target == "pay" and d.kind != "escalation"]
    return sorted(out, key=lambda d: (d[1], order.get(d[0], 0), d[0], d[2] or ""))


def ordered(expected: list[tuple[str, int, str | None]]) -> list[tuple[str, int, str | None]]:
    order = {"retracted": 1}
    return sorted(expected, key=lambda d: (d[1], order.get(d[0], 0), d[0], d[2] or ""))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(intervals)
def test_a_ratio_budget_decides_what_the_oracle_does_at_the_same_minute(drawn):
    counts = posted(drawn)
    until = counts[-1][0] + WINDOW + 1          # every count has left every window
    engine = Engine(RULESET)
    for fact in facts(counts):
        engine.apply(fact)
    engine.advance(at(until))
    assert decided(engine) == ordered(oracle(counts, until))


def test_the_oracle_sees_each_kind_on_a_known_history():
    """The oracle itself decides each kind on a history made to show them all."""
    counts = [(5, 0, 1000), (10, 0, 1000), (15, 200, 1000), (20, 0, 1000)]
    kinds = {d[0] for d in oracle(counts, 20 + WINDOW + 1)}
    assert kinds == {"breach", "recovered", "warning", "burn_rate", "burn_rate_cleared", "at_risk", "retracted"}
