"""Facts stored by a node that holds no engine and evaluated later by the partition's owner:
the log's order is the order of evaluation (``pseq``), not of arrival (``seq``)."""
from __future__ import annotations

import threading
import time

import pytest

from engine.store.facts import DECIDED_CHANNEL, FACTS_CHANNEL
from engine.store.listen import Listener
from engine.store.store import Store


@pytest.fixture
def store(url):
    with Store.open(url) as opened:
        yield opened


def fact(id, source="zabbix/prod", time="2026-11-02T09:00:00Z", subject="INC-1"):
    return {"id": id, "source": source, "type": "incident.opened", "time": time, "subject": subject,
            "service": "email", "data": {"priority": "P2"}}


def test_a_pending_fact_waits_unevaluated_then_takes_the_next_place_of_the_log(store):
    assert store.add_facts([(fact("a"), ["dec_a"])]) == 1
    pending = store.add_pending_facts([fact("b"), fact("c")])
    assert set(pending) == {("zabbix/prod", "b"), ("zabbix/prod", "c")}
    store.add_facts([(fact("d"), [])])                      # the owner's own, evaluated as posted
    assert [body["id"] for _, body in store.pending_facts()] == ["b", "c"] and store.pending_count() == 2
    listed, _ = store.list_facts()
    assert [(s["fact"]["id"], s["evaluated"], s["outcome"]) for s in listed] == [
        ("a", True, ["dec_a"]), ("b", False, None), ("c", False, None), ("d", True, [])]
    last = store.settle_facts([(pending[("zabbix/prod", "c")], ["dec_c"]), (pending[("zabbix/prod", "b")], [])])
    assert last == 4 and store.pending_facts() == [] and store.pending_count() == 0
    assert [(s["seq"], s["fact"]["id"]) for s in store.facts()] == [(1, "a"), (2, "d"), (3, "c"), (4, "b")]
    assert [s["seq"] for s in store.facts(after_seq=2)] == [3, 4]
    assert store.find_facts({("zabbix/prod", "c")}) == {("zabbix/prod", "c"): ["dec_c"]}
    assert store.verify_audit()["chains"]["facts"] == {**store.verify_audit()["chains"]["facts"], "ok": True,
                                                       "checked": 4, "last_seq": 4}


def test_a_fact_stored_twice_is_stored_once_and_keeps_its_first_body(store):
    first = store.add_pending_facts([fact("a")])
    again = store.add_pending_facts([fact("a", time="2026-11-02T10:00:00Z"), fact("b")])
    assert list(again) == [("zabbix/prod", "b")] and first[("zabbix/prod", "a")] < again[("zabbix/prod", "b")]
    assert [body["time"] for _, body in store.pending_facts()] == ["2026-11-02T09:00:00Z", "2026-11-02T09:00:00Z"]


def test_settling_a_fact_that_is_not_pending_writes_nothing(store):
    pending = store.add_pending_facts([fact("a"), fact("b")])
    seq_a, seq_b = pending[("zabbix/prod", "a")], pending[("zabbix/prod", "b")]
    store.settle_facts([(seq_a, [])])
    with pytest.raises(LookupError, match=r"not pending"):
        store.settle_facts([(seq_b, []), (seq_a, [])])     # another owner settled a already
    assert [body["id"] for _, body in store.pending_facts()] == ["b"] and store.last_fact_seq() == 1
    assert store.verify_audit()["ok"]


def test_a_fact_the_owner_refused_is_no_longer_pending_and_is_never_replayed(store):
    pending = store.add_pending_facts([fact("a"), fact("b")])
    store.refuse_pending({pending[("zabbix/prod", "a")]: "the engine could not evaluate this fact"})
    assert [body["id"] for _, body in store.pending_facts()] == ["b"]
    states = store.fact_states(pending.values())
    assert states[pending[("zabbix/prod", "a")]] == {"pseq": None, "outcome": None,
                                                     "refused": "the engine could not evaluate this fact"}
    store.settle_facts([(pending[("zabbix/prod", "b")], [])])
    assert [s["fact"]["id"] for s in store.facts()] == ["b"] and store.verify_audit()["ok"]
    listed, _ = store.list_facts()
    assert listed[0]["refused"] == "the engine could not evaluate this fact" and not listed[0]["evaluated"]


def test_a_pending_fact_edited_before_it_was_settled_is_chained_as_settled_and_an_edit_after_is_found(store):
    pending = store.add_pending_facts([fact("a")])
    store.settle_facts([(pending[("zabbix/prod", "a")], [])])
    store.db.execute_sql("UPDATE facts SET body = REPLACE(body, 'P2', 'P1')")
    broken = store.verify_audit()["chains"]["facts"]
    assert not broken["ok"] and broken["first_broken"]["id"] == "a"


@pytest.mark.postgres
def test_postgresql_wakes_listeners_when_facts_wait_and_when_they_were_settled():
    from tests.support import postgres_schema_url
    with postgres_schema_url() as url, Store.open(url) as store:
        owner, nodes = Listener(store.db, (FACTS_CHANNEL,)), Listener(store.db, (DECIDED_CHANNEL,))
        assert owner.wait(0.01) == set() and nodes.wait(0.01) == set()       # listening from now on
        pending = store.add_pending_facts([fact("a")])
        assert owner.wait(5) == {"default"}
        store.settle_facts([(pending[("zabbix/prod", "a")], [])])
        assert nodes.wait(5) == {"default"} and owner.wait(0.01) == set()
        threading.Timer(0.05, owner.close).start()
        started = time.monotonic()
        assert owner.wait(30) == set() and time.monotonic() - started < 10     # close() ends a wait at once
        nodes.close()


def test_a_listener_on_sqlite_or_closed_only_waits_out_its_time(store):
    listener = Listener(store.db, (FACTS_CHANNEL,))
    started = time.monotonic()
    assert listener.wait(0.05) == set() and time.monotonic() - started >= 0.05
    threading.Timer(0.05, listener.close).start()
    assert listener.wait(30) == set()          # close() ends a wait at once
