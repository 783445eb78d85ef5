"""The store over real SQLite (a WAL file) and real PostgreSQL: every test runs on both
(the ``url`` fixture of conftest.py)."""
from __future__ import annotations

import json
import sqlite3
import threading

import peewee as pw
import psycopg2
import pytest

from engine.store.store import GENESIS, Store, canonical_json, chain_hash, token_digest
from tests.support import fact_count

pytestmark = pytest.mark.wallclock     # reads this machine's clock: CI runs it again years ahead

# A fact stored twice or a row without its parent: the database refuses it (the driver's own error on
# the prepared fast path).
INTEGRITY_ERROR = (pw.IntegrityError, sqlite3.IntegrityError, psycopg2.IntegrityError)


@pytest.fixture
def opened(url):
    """Open stores on the test database (as separate processes would); close them after."""
    stores = []

    def open_store() -> Store:
        stores.append(Store.open(url))
        return stores[-1]

    yield open_store
    for store in stores:
        store.close()


@pytest.fixture
def store(opened):
    return opened()


def fact(id, source="zabbix/prod", type="incident.opened", time="2026-11-02T09:00:00Z",
         subject="INC-1", service="email", **data):
    return {"id": id, "source": source, "type": type, "time": time, "subject": subject,
            "service": service, "data": data}


def decision(id, kind="breach", at="2026-11-02T09:15:00Z", service="email",
             subject="INC-1", target="email-p1-response", **extra):
    return {"id": id, "kind": kind, "target": target, "subject": subject,
            "service": service, "agreement": "sla-email", "at": at, "shadow": False,
            "data": {"counted": "15m", "budget": "15m", "note": "überschritten"},
            "rule": {"id": target, "file": "rules/email.yaml", "line": 22,
                     "ruleset": "sha256:9c1e"},
            "because": ["fact:zbx-1", f"clock:{target}/{subject}"], **extra}


def notification(id, decision_id, recipient="slm-mail@example.org"):
    return {"id": id, "decision": decision_id, "activity": "breach-handling",
            "recipient": recipient, "roles": ["service_level_manager"], "raci": "R,A",
            "channel": "email", "message": "P1 breached", "status": "pending"}


def add(store: Store, *facts, outcome=()):
    """Store facts the way the service does, each with the decision ids it caused."""
    return store.add_facts([(f, list(outcome)) for f in facts])


def raw(store: Store, sql: str, *params):
    """Run SQL written with ``?`` placeholders on either database."""
    return store.db.execute_sql(sql.replace("?", store.db.param), params)


def all_pages(list_page, limit, **filters):
    items, cursor, pages = [], None, 0
    while True:
        page, cursor = list_page(cursor=cursor, limit=limit, **filters)
        items += page
        pages += 1
        assert len(page) <= limit
        if cursor is None:
            return items, pages


# ---- opening -------------------------------------------------------------------------

def test_sqlite_is_wal_with_foreign_keys(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'wal.db'}") as store:
        assert raw(store, "PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw(store, "PRAGMA foreign_keys").fetchone()[0] == 1
        assert raw(store, "PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_in_memory_sqlite_works_across_threads():
    with Store.open("sqlite:///:memory:") as store:
        threads = [threading.Thread(target=store.add_decisions,
                                    args=([decision(f"dec_{t}_{i}") for i in range(5)],))
                   for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.verify_chain() == {"ok": True, "checked": 20, "first_broken": None}


def test_unsupported_url_is_refused():
    with pytest.raises(ValueError, match="unsupported database URL"):
        Store.open("mysql://root@localhost/slm")


def test_reopening_keeps_everything_and_continues_the_chain(opened):
    first = opened()
    add(first, fact("f1"))
    first.add_decisions([decision("dec_1"), decision("dec_2")])
    first.close()
    again = opened()
    assert fact_count(again) == 1
    assert again.add_decisions([decision("dec_2"), decision("dec_3")]) == ["dec_3"]
    assert again.verify_chain() == {"ok": True, "checked": 3, "first_broken": None}


# ---- facts ---------------------------------------------------------------------------

def test_a_fact_is_stored_once_and_found_with_its_outcome(store):
    keys = {("zabbix/prod", "zbx-1"), ("zabbix/prod", "zbx-2"), ("zabbix/prod", "zbx-3"),
            ("zabbix/test", "zbx-1")}
    last = store.add_facts([(fact("zbx-1", priority="P1"), ["dec_a", "dec_b"]),
                            (fact("zbx-2"), [])])          # an empty outcome is an outcome too
    assert last == store.last_fact_seq()
    outcomes = {("zabbix/prod", "zbx-1"): ["dec_a", "dec_b"], ("zabbix/prod", "zbx-2"): []}
    assert store.find_facts(keys) == outcomes
    # a re-post is refused whole: the first posting and its outcome are kept
    with pytest.raises(INTEGRITY_ERROR):
        store.add_facts([(fact("zbx-3"), []), (fact("zbx-1", priority="changed"), ["dec_c"])])
    assert store.find_facts(keys) == outcomes and store.last_fact_seq() == last
    # the same id from another source is another fact
    assert add(store, fact("zbx-1", source="zabbix/test")) > last
    assert store.find_facts(keys) == {**outcomes, ("zabbix/test", "zbx-1"): []}
    stored = list(store.facts())
    assert [s["fact"] for s in stored] == [fact("zbx-1", priority="P1"), fact("zbx-2"),
                                           fact("zbx-1", source="zabbix/test")]
    assert [s["outcome"] for s in stored] == [["dec_a", "dec_b"], [], []]
    assert store.find_facts([]) == {}


def test_concurrent_posts_of_one_fact_store_it_once(opened):
    """Writers in other processes: looked up, then added; the unique index decides."""
    stores = [opened() for _ in range(6)]
    stored, refused, errors = [], [], []

    def post(s):
        try:
            with s.transaction():
                if s.find_facts([("zabbix/prod", "retry-1")]):
                    refused.append("found")
                    return
                stored.append(add(s, fact("retry-1")))
        except INTEGRITY_ERROR:
            refused.append("unique")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(stored) == 1 and len(refused) == 5
    assert fact_count(stores[0]) == 1


def test_facts_iterate_in_seq_order_for_rebuilding(store):
    with store.transaction():    # one transaction around many (nested) ones
        for i in range(1, 1203):     # more than one internal chunk
            add(store, fact(f"f{i}", time=f"2026-11-02T09:{i % 60:02d}:00Z"))
    stored = list(store.facts())
    assert [s["fact"]["id"] for s in stored] == [f"f{i}" for i in range(1, 1203)]
    seqs = [s["seq"] for s in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert stored[0]["received_at"].endswith("Z") and stored[0]["outcome"] == []
    tail = list(store.facts(after_seq=seqs[1000]))
    assert [s["seq"] for s in tail] == seqs[1001:]
    assert [s["seq"] for s in store.facts(after_seq=seqs[10], limit=600)] == seqs[11:611]
    assert fact_count(store) == 1202
    # what a replay reads: the same seqs and bodies, the same chunks, without the rest
    for after in (0, seqs[0], seqs[499], seqs[500], seqs[1000], seqs[-1]):
        assert [(s["seq"], s["fact"]) for s in store.replayed_facts(after_seq=after)] == \
            [(s["seq"], s["fact"]) for s in store.facts(after_seq=after)]
    raw(store, "INSERT INTO facts (source, id, type, time, body, received_at, pseq, partition) "
               "VALUES ('x', 'outside', 'incident.opened', '2026-11-02T09:00:00Z', '{}', 'now', ?, 'default')",
        seqs[-1] + 1)                           # past the chain's head: written outside the service
    assert [s["seq"] for s in store.replayed_facts(after_seq=seqs[-2])] == [seqs[-1]]


def test_a_replay_reads_each_chunk_from_where_the_last_ended(store):
    """Reading the fact log in chunks seeks to each chunk's start: on SQLite, the virtual
    machine steps a chunk takes do not grow with its place in the log (they did when the
    chain's start was a second lower bound beside it, and a long replay was quadratic)."""
    if store.postgres:
        pytest.skip("counts SQLite's virtual machine steps")
    with store.transaction():
        for i in range(1, 2502):          # five chunks and one fact
            add(store, fact(f"f{i}", time=f"2026-11-02T09:{i % 60:02d}:00Z"))
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0
    store.db.connection().set_progress_handler(count, 10)
    try:
        at_chunk, seen = [], 0
        for reads in (store.replayed_facts, store.facts):
            at_chunk.clear()
            for n, _ in enumerate(reads()):
                if n % 500 == 0:
                    at_chunk.append(steps[0])
                seen += 1
            costs = [b - a for a, b in zip(at_chunk[:-1], at_chunk[1:], strict=True)][:-1]  # full ones after the 1st
            assert len(costs) == 4 and max(costs) < 1.5 * min(costs), (reads.__name__, costs)
    finally:
        store.db.connection().set_progress_handler(None, 0)
    assert seen == 2 * 2501


def test_list_facts_filters_by_event_time_and_fields(store):
    add(store, fact("a", time="2026-11-02T08:59:59Z"),
        fact("b", time="2026-11-02T10:00:00+01:00"),                   # 09:00Z
        fact("c", time="2026-11-02T09:30:00.250Z", service="vpn", subject="INC-2"),
        fact("d", time="2026-11-02T10:00:00Z", type="incident.resolved"))
    def ids(page):
        return [item["fact"]["id"] for item in page[0]]

    assert ids(store.list_facts(since="2026-11-02T09:00:00Z", until="2026-11-02T10:00:00Z")) \
        == ["b", "c"]
    assert ids(store.list_facts(service="vpn")) == ["c"]
    assert ids(store.list_facts(subject="INC-1", type="incident.opened")) == ["a", "b"]
    assert ids(store.list_facts(type="incident.resolved")) == ["d"]
    with pytest.raises(ValueError, match="since"):
        store.list_facts(since="yesterday")


def test_a_failed_transaction_stores_nothing(store):
    store.add_decisions([decision("dec_0")])
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_decisions([decision("dec_1"), decision("dec_2")])
            add(store, fact("f1"), outcome=["dec_1", "dec_2"])
            raise RuntimeError("evaluation failed")
    assert fact_count(store) == 0 and store.decision("dec_1") is None
    with store.transaction():
        assert store.find_facts([("zabbix/prod", "f1")]) == {}    # the rolled-back one is gone
        add(store, fact("f1"))
        with pytest.raises(RuntimeError):
            with store.transaction():        # nested: a savepoint
                store.add_decisions([decision("dec_1")])
                raise RuntimeError
        store.add_decisions([decision("dec_2")])
    assert store.decision("dec_1") is None and store.decision("dec_2") is not None
    assert store.verify_chain() == {"ok": True, "checked": 2, "first_broken": None}


# ---- decisions and the chain ---------------------------------------------------------

def test_decisions_are_appended_once(store):
    assert store.add_decisions([decision("dec_1"), decision("dec_2")]) == ["dec_1", "dec_2"]
    assert store.add_decisions([decision("dec_2"), decision("dec_3"), decision("dec_1"),
                                decision("dec_3")]) == ["dec_3"]
    assert store.add_decisions([decision("dec_1")]) == []
    assert store.add_decisions([]) == []
    assert store.decision_count() == 3
    assert store.decision("dec_3") == decision("dec_3")     # the whole dict, as given
    assert store.decision("dec_nope") is None
    with pytest.raises(ValueError, match="'id'"):
        store.add_decisions([{"kind": "breach", "at": "2026-11-02T09:00:00Z"}])


def test_the_hash_chain_is_sha256_of_prev_hash_and_canonical_json(store):
    decisions = [decision(f"dec_{i}", extra_key={"b": 1, "a": [i]}) for i in range(5)]
    store.add_decisions(decisions[:2])
    store.add_decisions(decisions[2:])
    rows = raw(store, "SELECT seq, id, prev_hash, hash, body FROM decisions ORDER BY seq")
    prev = GENESIS
    for (_, _, prev_hash, hash, body), d in zip(rows.fetchall(), decisions, strict=True):
        assert body == canonical_json(d)
        assert prev_hash == prev and hash == chain_hash(prev, body)
        prev = hash
    assert canonical_json({"b": "ü", "a": 1}) == '{"a":1,"b":"ü"}'
    assert store.verify_chain() == {"ok": True, "checked": 5, "first_broken": None}


def test_an_empty_chain_verifies(store):
    assert store.verify_chain() == {"ok": True, "checked": 0, "first_broken": None}


def _six(store):
    store.add_decisions([decision(f"dec_{i}") for i in range(1, 7)])
    seq = {id: s for s, id in raw(store, "SELECT seq, id FROM decisions").fetchall()}
    assert sorted(seq.values()) == [1, 2, 3, 4, 5, 6]
    return seq


def test_an_edited_record_is_reported_where_it_is(store):
    seq = _six(store)
    edited = canonical_json(decision("dec_3", kind="met"))
    raw(store, "UPDATE decisions SET body = ? WHERE id = ?", edited, "dec_3")
    result = store.verify_chain()
    assert result["ok"] is False and result["checked"] == 2
    broken = result["first_broken"]
    assert (broken["seq"], broken["id"]) == (seq["dec_3"], "dec_3")
    assert "hash does not match" in broken["reason"]


def test_a_deleted_record_breaks_the_chain_at_the_next_one(store):
    seq = _six(store)
    raw(store, "DELETE FROM decisions WHERE id = ?", "dec_4")
    result = store.verify_chain()
    assert result["ok"] is False and result["checked"] == 3
    broken = result["first_broken"]
    assert (broken["seq"], broken["id"]) == (seq["dec_5"], "dec_5")
    assert "prev_hash" in broken["reason"] and "missing" in broken["reason"]


def test_an_edited_hash_is_reported_where_it_is(store):
    seq = _six(store)
    raw(store, "UPDATE decisions SET hash = ? WHERE id = ?", "f" * 64, "dec_2")
    result = store.verify_chain()
    assert result["ok"] is False and result["checked"] == 1
    assert (result["first_broken"]["seq"], result["first_broken"]["id"]) == (seq["dec_2"],
                                                                            "dec_2")


def test_a_record_cut_off_the_end_is_reported(store):
    _six(store)
    raw(store, "DELETE FROM decisions WHERE id = ?", "dec_6")
    result = store.verify_chain()
    assert result["ok"] is False and result["checked"] == 5
    assert result["first_broken"]["seq"] == 6 and result["first_broken"]["id"] == "dec_6"
    assert "missing from the end" in result["first_broken"]["reason"]


def test_a_rehashed_edit_breaks_at_the_following_record(store):
    seq = _six(store)
    row = raw(store, "SELECT prev_hash FROM decisions WHERE id = ?", "dec_2").fetchone()
    body = canonical_json(decision("dec_2", kind="met"))
    raw(store, "UPDATE decisions SET body = ?, kind = ?, hash = ? WHERE id = ?",
        body, "met", chain_hash(row[0], body), "dec_2")
    broken = store.verify_chain()["first_broken"]
    assert (broken["seq"], broken["id"]) == (seq["dec_3"], "dec_3")


def test_an_edited_index_column_is_reported(store):
    seq = _six(store)
    raw(store, "UPDATE decisions SET kind = ? WHERE id = ?", "met", "dec_5")
    broken = store.verify_chain()["first_broken"]
    assert (broken["seq"], broken["id"]) == (seq["dec_5"], "dec_5")
    assert "kind" in broken["reason"]


@pytest.mark.parametrize("shared", [False, True], ids=["own-store", "shared-store"])
def test_concurrent_appends_keep_one_unbroken_chain(opened, shared):
    """Threads append overlapping batches (each its own connection); one chain results."""
    first = opened()
    stores = [first if shared else opened() for _ in range(6)]
    errors = []

    def append(n, s):
        try:
            for batch in range(10):
                # each batch: two ids of this thread, two shared by all threads
                s.add_decisions([decision(f"dec_{n}_{batch}_a"),
                                 decision(f"dec_common_{batch}"),
                                 decision(f"dec_{n}_{batch}_b"),
                                 decision(f"dec_common_{batch + 1}")])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n, s)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    expected = 6 * 10 * 2 + 11
    assert first.verify_chain() == {"ok": True, "checked": expected, "first_broken": None}
    rows = raw(first, "SELECT seq, id FROM decisions ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == list(range(1, expected + 1))
    assert len({r[1] for r in rows}) == expected


# ---- paging --------------------------------------------------------------------------

def test_decision_pages_return_every_item_exactly_once(store):
    decisions = [decision(f"dec_{i:02d}", service=("email" if i % 3 else "vpn"),
                          kind=("warning" if i % 2 else "breach"),
                          at=f"2026-11-02T09:{i:02d}:00Z") for i in range(40)]
    store.add_decisions(decisions)
    items, pages = all_pages(store.list_decisions, 7)
    assert [d["id"] for d in items] == [d["id"] for d in decisions] and pages == 6
    items, _ = all_pages(store.list_decisions, 5, service="vpn")
    assert [d["id"] for d in items] == [d["id"] for d in decisions if d["service"] == "vpn"]
    items, _ = all_pages(store.list_decisions, 4, kind="breach", since="2026-11-02T09:10:00Z",
                         until="2026-11-02T10:20:00+01:00")
    assert [d["id"] for d in items] == [f"dec_{i:02d}" for i in range(10, 20, 2)]
    items, _ = all_pages(store.list_decisions, 40)
    assert len(items) == 40
    page, cursor = store.list_decisions(limit=40)
    assert len(page) == 40 and cursor is None
    assert store.list_decisions(target="nothing") == ([], None)
    assert store.list_decisions(subject="INC-1", limit=1)[1] is not None
    with pytest.raises(ValueError, match="cursor"):
        store.list_decisions(cursor="not-a-cursor")
    with pytest.raises(ValueError, match="limit"):
        store.list_decisions(limit=0)


def test_fact_pages_return_every_item_exactly_once(store):
    add(store, *[fact(f"f{i}", service="email" if i % 2 else "vpn") for i in range(23)])
    items, pages = all_pages(store.list_facts, 5)
    assert [s["fact"]["id"] for s in items] == [f"f{i}" for i in range(23)] and pages == 5
    items, _ = all_pages(store.list_facts, 3, service="vpn")
    assert [s["fact"]["id"] for s in items] == [f"f{i}" for i in range(0, 23, 2)]


# ---- notifications -------------------------------------------------------------------

def test_notifications_are_stored_once_and_listed(store):
    store.add_decisions([decision("dec_1"), decision("dec_2")])
    batch = [notification("n1", "dec_1"), notification("n2", "dec_1", "owner@example.org"),
             notification("n3", "dec_2")]
    assert store.add_notifications(batch) == ["n1", "n2", "n3"]
    assert store.add_notifications(batch + [notification("n4", "dec_2")]) == ["n4"]
    items, _ = store.list_notifications(decision="dec_1")
    assert [{k: n[k] for k in batch[0]} for n in items] == batch[:2]
    assert all(n["attempts"] == 0 and n["last_error"] is None and n["message_id"] is None
               and n["next_attempt_at"] for n in items)
    items, _ = all_pages(store.list_notifications, 1, recipient="slm-mail@example.org")
    assert [n["id"] for n in items] == ["n1", "n3", "n4"]
    sent = {**notification("n5", "dec_2"), "status": "sent"}
    unset = {k: v for k, v in notification("n6", "dec_2").items() if k != "status"}
    assert store.add_notifications([sent, unset]) == ["n5", "n6"]
    assert [(n["id"], n["status"]) for n in store.list_notifications(decision="dec_2")[0]] == [
        ("n3", "pending"), ("n4", "pending"), ("n5", "sent"), ("n6", "pending")]
    assert [n["id"] for n in store.list_notifications(status="sent")[0]] == ["n5"]
    with pytest.raises(INTEGRITY_ERROR):      # its decision must be stored (foreign key)
        store.add_notifications([notification("n9", "dec_unknown")])
    assert store.add_notifications([notification("n9", "dec_2")]) == ["n9"]


# ---- rule sets -----------------------------------------------------------------------

def test_rulesets_latest_is_the_last_loaded(store):
    def latest():
        row = raw(store, "SELECT hash, files FROM rulesets ORDER BY generation DESC LIMIT 1").fetchone()
        return row and (row[0], json.loads(row[1]))

    assert latest() is None
    store.save_ruleset("sha256:aaa", {"rules/email.yaml": "kind: Service\n"})
    store.save_ruleset("sha256:bbb", {"rules/email.yaml": "kind: Service  # ü\n"})
    assert latest() == ("sha256:bbb", {"rules/email.yaml": "kind: Service  # ü\n"})
    store.save_ruleset("sha256:aaa", {"rules/email.yaml": "kind: Service\n"})
    assert latest() == ("sha256:aaa", {"rules/email.yaml": "kind: Service\n"})
    assert raw(store, "SELECT COUNT(*) FROM rulesets").fetchone()[0] == 2


# ---- tokens --------------------------------------------------------------------------

def test_tokens_are_hashed_at_rest_and_map_to_roles(store):
    monitor = store.add_token("monitor", name="zabbix")
    auditor = store.add_token("auditor")
    assert monitor.startswith("slm_") and monitor != auditor
    assert store.token_role(monitor) == "monitor"
    assert store.token_role(auditor) == "auditor"
    assert store.token_role("slm_unknown") is None
    assert store.token_role("") is None and store.token_role(None) is None
    rows = raw(store, "SELECT * FROM tokens").fetchall()
    dumped = json.dumps([[str(v) for v in row] for row in rows])
    assert monitor not in dumped and auditor not in dumped
    assert token_digest(monitor) in dumped
    assert store.revoke_token(monitor) == "zabbix"
    assert store.token_role(monitor) is None and store.token_role(auditor) == "auditor"
    with pytest.raises(ValueError, match="role"):
        store.add_token("root")
