"""One database, several partitions: each partition's owner writes and replays only its own
log (facts in its own ``pseq`` order, ticks, snapshots, cut-overs), and each partition's
facts form a chain of their own, which verification walks and names."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.store.audit import fact_chain, fact_partition
from engine.store.store import Store


@pytest.fixture
def stores(url):
    with Store.open(url) as default, Store.open(url, partition="mail") as mail:
        yield default, mail


def fact(id, service, time="2026-11-02T09:00:00Z"):
    return {"id": id, "source": "zabbix/prod", "type": "incident.opened", "time": time, "subject": "INC-1",
            "service": service, "data": {"priority": "P2"}}


def test_each_partition_has_its_own_log_order_and_replays_only_its_own(stores):
    default, mail = stores
    assert default.add_facts([(fact("a", "hosting"), [])]) == 1
    assert mail.add_facts([(fact("b", "email"), []), (fact("c", "email"), [])]) == 2
    assert default.add_facts([(fact("d", "hosting"), [])]) == 2
    assert [f["fact"]["id"] for f in default.facts()] == ["a", "d"]
    assert [(f["seq"], f["fact"]["id"]) for f in mail.facts()] == [(1, "b"), (2, "c")]
    assert (default.last_fact_seq(), mail.last_fact_seq()) == (2, 2)
    # the API's reads span every partition
    assert default.fact("zabbix/prod", "c")["service"] == "email"
    assert mail.fact("zabbix/prod", "a")["service"] == "hosting"


def test_ticks_snapshots_and_cut_overs_belong_to_their_partition(stores):
    default, mail = stores
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    mail.add_tick(0, at)
    default_tick = default.add_tick(0, at)
    assert [t[0] for t in default.ticks()] == [default_tick] and len(mail.ticks()) == 1
    mail.save_snapshot("r1", "state-v4", 7, 1, b"mail")
    for n in range(3):                       # the default partition keeps its newest two only
        default.save_snapshot("r1", "state-v4", n, 0, b"default-%d" % n)
    assert mail.latest_snapshot(None, "state-v4")["body"] == b"mail"
    assert default.latest_snapshot(None, "state-v4")["body"] == b"default-2"
    mail.add_cutover("r1", at, 2, 1, by="slm serve")
    default.add_cutover("r2", at, 0, 0, by="slm serve")
    assert [c["ruleset"] for c in mail.cutovers()] == ["r1"]
    assert [c["ruleset"] for c in default.cutovers()] == ["r2"]


def test_pending_facts_wait_for_the_owner_of_their_partition(stores):
    default, mail = stores
    stored = default.add_pending_facts([fact("a", "email")], partition="mail")
    default.add_pending_facts([fact("b", "hosting")])
    assert [body["id"] for _, body in mail.pending_facts()] == ["a"]
    assert [body["id"] for _, body in default.pending_facts()] == ["b"]
    assert default.pending_counts() == {"mail": 1, "default": 1} and default.pending_count() == 2
    with pytest.raises(LookupError):         # not the default partition's to settle
        default.settle_facts([(stored[("zabbix/prod", "a")], [])])
    assert mail.settle_facts([(stored[("zabbix/prod", "a")], [])]) == 1
    assert default.pending_counts() == {"default": 1}


def test_every_partition_chain_verifies_and_a_broken_one_is_named(stores):
    default, mail = stores
    default.add_facts([(fact("a", "hosting"), [])])
    mail.add_facts([(fact("b", "email"), []), (fact("c", "email"), [])])
    report = default.verify_audit()
    assert report["ok"], report
    assert report["chains"]["facts"]["checked"] == 1 and report["chains"]["facts:mail"]["checked"] == 2
    mail.db.execute_sql("UPDATE facts SET body = REPLACE(body, 'P2', 'P1') WHERE id = 'c'")
    report = default.verify_audit()
    assert not report["ok"] and report["chains"]["facts"]["ok"]
    assert report["chains"]["facts:mail"]["first_broken"]["seq"] == 2


def test_a_fact_put_in_the_log_of_a_partition_without_a_chain_is_named(stores):
    default, _ = stores
    default.add_facts([(fact("a", "hosting"), [])])
    default.db.execute_sql("UPDATE facts SET partition = 'ghost' WHERE id = 'a'")
    report = default.verify_audit()
    assert not report["ok"]
    assert report["chains"]["facts"]["outside_count"] == 1


def test_a_checkpoint_pins_every_partition_chain(url, tmp_path):
    key = bytes(range(32))
    with Store.open(url, audit_key=key) as default, Store.open(url, audit_key=key, partition="mail") as mail:
        mail.add_facts([(fact("b", "email"), [])])
        point = default.audit_checkpoint()
        assert "facts:mail" in point["chains"]
        mail.add_facts([(fact("c", "email"), [])])
        assert default.verify_audit(point)["checkpoint"]["ok"]


def test_chain_names_map_to_partitions():
    assert fact_chain("default") == "facts" and fact_partition("facts") == "default"
    assert fact_partition(fact_chain("mail")) == "mail"
    assert fact_partition("decisions") is None


def test_the_first_map_is_recorded_and_another_is_refused_naming_both(url):
    from engine.store.store import PartitionMapMismatch
    with Store.open(url) as store:
        store.agree_partition_map("a" * 64, '{"default":"main","partitions":{"email":"mail"}}')
        store.agree_partition_map("a" * 64, '{"default":"main","partitions":{"email":"mail"}}')   # the same: fine
        with pytest.raises(PartitionMapMismatch) as refused:
            store.agree_partition_map("b" * 64, '{"default":"default","partitions":{}}')
    message = str(refused.value)
    assert "bbbbbbbbbbbb" in message and "aaaaaaaaaaaa" in message and "--partitions" in message


@pytest.mark.postgres
def test_a_worker_that_prefers_a_partition_asks_its_owner_for_it():
    from datetime import timedelta

    from tests.support import postgres_schema_url
    with postgres_schema_url() as url, Store.open(url, partition="mail") as store:
        lease = store.acquire_lease("w1", "mail", timedelta(seconds=10))
        assert store.renew_lease(lease, timedelta(seconds=10)).wanted_by is None
        store.want_lease("mail", "w1", timedelta(seconds=10))          # its own asking counts for nothing
        assert store.renew_lease(lease, timedelta(seconds=10)).wanted_by is None
        store.want_lease("mail", "w2", timedelta(seconds=10))
        assert store.renew_lease(lease, timedelta(seconds=10)).wanted_by == "w2"
        store.want_lease("mail", "w2", timedelta(microseconds=1))      # an asking that ran out
        assert store.renew_lease(lease, timedelta(seconds=10)).wanted_by is None
