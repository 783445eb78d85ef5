"""--max-lateness within one request: facts judged in event-time order (issue 23, item 9)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from engine.service.lateness import late_problems

BASE = datetime(2026, 11, 5, tzinfo=UTC)
BOUND = timedelta(days=7)

facts_strategy = st.lists(st.tuples(st.sampled_from(["A", "B", None]), st.integers(0, 30 * 24)), max_size=12)
stored_strategy = st.dictionaries(st.sampled_from(["A", "B"]), st.integers(0, 30 * 24))


def facts_of(items):
    return [{"subject": s, "time": BASE + timedelta(hours=h)} for s, h in items]


@given(facts_strategy, stored_strategy)
def test_a_fact_is_late_only_against_what_is_stored_never_its_own_request(items, stored):
    facts = facts_of(items)
    newest = {s: BASE + timedelta(hours=h) for s, h in stored.items()}
    late = late_problems(facts, newest, BOUND)
    expected = {i for i, f in enumerate(facts) if f["subject"] in newest and newest[f["subject"]] - f["time"] > BOUND}
    assert set(late) == expected


@given(facts_strategy, stored_strategy, st.randoms())
def test_the_order_of_a_request_does_not_change_which_facts_are_late(items, stored, rnd):
    newest = {s: BASE + timedelta(hours=h) for s, h in stored.items()}
    shuffled = list(enumerate(items))
    rnd.shuffle(shuffled)
    late = {items[i] for i in late_problems(facts_of(items), newest, BOUND)}
    late_shuffled = {shuffled[i][1] for i in late_problems(facts_of([x for _, x in shuffled]), newest, BOUND)}
    assert late == late_shuffled


def test_a_ticket_opened_and_resolved_eight_days_apart_in_one_request_is_not_late():
    resolved = {"subject": "INC-8", "time": BASE + timedelta(days=8)}
    opened = {"subject": "INC-8", "time": BASE}
    assert late_problems([resolved, opened], {}, BOUND) == {}
    (why,) = late_problems([resolved, opened], {"INC-8": BASE + timedelta(days=7, hours=1)}, BOUND).values()
    assert why.startswith("is 7d1h behind the newest event time of subject 'INC-8' (2026-11-12T01:00:00Z)")
