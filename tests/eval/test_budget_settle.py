"""A rolling budget holds bounded history (engine.eval.settle, Ledger.forget): what it
decides is the same as with its whole history kept, through late facts and a snapshot,
and a fact older than ``retain`` changes nothing."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.eval.budget import KEPT_ENTRIES, BudgetClock
from engine.eval.engine import Engine
from engine.eval.settle import SETTLE_AT
from engine.lang.loader import load_texts
from schemas.values import format_instant
from tests.support.ruletexts import SHOP_AGREEMENT

START = datetime(2026, 3, 2, tzinfo=UTC)
RETAIN = timedelta(hours=12)
FACTS = 3600                    # a minute each: two and a half days

RULESET = load_texts({"rules.yaml": SHOP_AGREEMENT + """\
  - id: pay
    name: payments
    ratio: {name: payment, window: rolling 2h}
    goal: 99%
    warn_at: [50%]
    burn_rate:
      - {factor: 14.4, long: 1h, short: 5m}
"""})


def count(n: int) -> dict:
    """The n-th minute's payments: mostly bad for ten minutes every 170."""
    bad = 900 if 100 <= n % 170 < 110 else 0
    return {"id": f"c{n}", "source": "test", "type": "sli.counts",
            "time": format_instant(START + timedelta(minutes=n + 1)), "service": "shop",
            "data": {"name": "payment", "good": 1000 - bad, "total": 1000,
                     "start": format_instant(START + timedelta(minutes=n))}}


def decided(engine: Engine) -> list[tuple[str, str, str | None]]:
    return [(d.kind, format_instant(d.at), d.level) for d in engine.decisions if d.target == "pay"]


def standing(engine: Engine) -> list[tuple[str, str, str | None]]:
    """What was decided and not retracted since."""
    gone = {d.data["retracts"] for d in engine.decisions if d.kind == "retracted"}
    return [(d.kind, format_instant(d.at), d.level) for d in engine.decisions
            if d.target == "pay" and d.kind != "retracted" and d.id not in gone]


def budget_record(engine: Engine):
    (record,) = [r for r in engine.context.state.book.records.values() if isinstance(r.clock, BudgetClock)]
    return record


@pytest.fixture(scope="module")
def whole() -> Engine:
    """No retain, and a ledger that forgets nothing: keeps everything."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("engine.eval.budget.KEPT_ENTRIES", 10 ** 9)
        engine = Engine(RULESET)
        for n in range(FACTS):
            engine.apply(count(n))
    return engine


@pytest.fixture(scope="module")
def kept() -> Engine:
    engine = Engine(RULESET, retain=RETAIN)
    for n in range(FACTS):
        engine.apply(count(n))
    return engine


def test_a_settled_budget_decides_as_one_that_kept_everything(whole, kept):
    assert len(decided(whole)) > 40
    assert decided(kept) == decided(whole)


def test_its_transitions_and_ledger_stay_bounded(whole, kept):
    record, full = budget_record(kept), budget_record(whole)
    assert len(full.transitions) == FACTS
    assert record.settled is not None and record.settled >= START + timedelta(minutes=FACTS) - RETAIN - \
        timedelta(minutes=SETTLE_AT)
    assert len(record.transitions) < SETTLE_AT
    assert all(change.at > record.settled for change in record.transitions)
    assert full.clock.ledger.entries() == FACTS
    assert record.clock.ledger.entries() <= KEPT_ENTRIES + 4 * 60 + 1     # twice the 2h window, a count a minute
    assert all(decision.at > record.settled for decision in record.issued.values())


def test_a_late_fact_after_the_settled_past_rebuilds_as_in_order():
    late = FACTS - 130             # all bad, two hours late, while the window holds no other bad
    facts = [count(n) for n in range(FACTS)]
    facts[late]["data"]["good"] = 0
    in_order, shuffled = Engine(RULESET), Engine(RULESET, retain=RETAIN)
    for fact in facts:
        in_order.apply(fact)
    for fact in facts[:late] + facts[late + 1:]:
        shuffled.apply(fact)
    assert budget_record(shuffled).settled is not None
    assert shuffled.apply(facts[late]).decisions, "the late bad count changes what is decided after it"
    assert sorted(standing(shuffled)) == sorted(standing(in_order))


def test_a_fact_older_than_the_settled_past_changes_nothing(kept):
    record = budget_record(kept)
    before, transitions = decided(kept), len(record.transitions)
    old = count(10) | {"id": "too-late"}
    old["data"] = old["data"] | {"good": 0}
    outcome = kept.apply(old)
    assert outcome.decisions == []
    assert decided(kept) == before and len(record.transitions) == transitions


def test_a_snapshot_keeps_the_settled_past():
    engine = Engine(RULESET, history=False, retain=RETAIN)
    for n in range(FACTS - 200):
        engine.apply(count(n))
    resumed = Engine.restore(RULESET, engine.snapshot(), retain=RETAIN)
    assert budget_record(resumed).base == budget_record(engine).base
    seen, later = [], []
    for n in range(FACTS - 200, FACTS):
        seen += resumed.apply(count(n)).decisions
        later += engine.apply(count(n)).decisions
    assert [(d.id, d.kind, d.at) for d in seen] == [(d.id, d.kind, d.at) for d in later]
