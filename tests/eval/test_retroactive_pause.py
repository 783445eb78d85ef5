"""A retroactive pause (docs/RULES.md, "Retroactive pause"): a pending/resumed pair posted
after the fact counts back. Whatever order the facts are posted in, the standing decisions
are those of the facts applied in event time, and the breach falls where the counted time
(without the paused stretch) reaches the goal, over real durable_rules."""
from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.eval.engine import Engine
from engine.lang.loader import load_rules
from schemas.values import parse_instant
from tests.support import ROOT

RULES = load_rules(ROOT / "fixtures" / "rulesets" / "late-facts")     # payroll-p1-resolution: 1h, 24x7
START = parse_instant("2026-11-17T09:00:00Z")
GOAL = timedelta(hours=1)


def fact(ident: str, kind: str, at: datetime) -> dict:
    return {"id": ident, "source": "test", "type": kind, "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subject": "INC-1", "service": "payroll", "data": {"priority": "P1"}}


def standing(facts: list[dict]) -> list[tuple]:
    engine = Engine(RULES)
    for f in facts:
        engine.apply(f)
    engine.advance(START + timedelta(hours=6))
    retracted = {d.data.get("retracts") for d in engine.decisions if d.kind == "retracted"}
    return sorted((d.kind, d.at, d.data.get("counted")) for d in engine.decisions
                  if d.target == "payroll-p1-resolution" and d.kind != "retracted" and d.id not in retracted)


minutes = st.integers(1, 240).map(lambda m: timedelta(minutes=m))


@settings(max_examples=100, deadline=None)
@given(pause=minutes, length=minutes, stop=minutes, order=st.permutations(range(3)))
def test_a_late_pair_counts_back_whatever_order_it_is_posted_in(pause, length, stop, order):
    p, r, e = START + pause, START + pause + length, START + stop
    later = [fact("pending", "incident.pending", p), fact("resumed", "incident.resumed", r),
             fact("resolved", "incident.resolved", e)]
    opened = fact("opened", "incident.opened", START)
    in_time = standing([opened, *sorted(later, key=lambda f: f["time"])])
    assert standing([opened, *(later[i] for i in order)]) == in_time

    # the oracle: counted time leaves out [p, r); the breach falls where it reaches 1h, but
    # a fact at that very instant wins (a stop there is met, a pause there holds it until
    # the resume), so a stop at or before the breach instant is met
    breach_at = START + GOAL if p - START > GOAL else r + (GOAL - (p - START))
    outcome = [(kind, at) for kind, at, _ in in_time if kind in ("met", "breach")]
    if e > breach_at:
        assert outcome == [("breach", breach_at)]
    else:
        assert outcome == [("met", e)]
