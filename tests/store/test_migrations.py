"""Schema versions: databases left by earlier releases are upgraded when a store opens them.

The fixtures in fixtures/databases were written by the stores of earlier releases: 38f9306
(schema version 1, before versions were recorded), cad97d0 (version 5) and 48d3116
(version 7); each test
upgrades a fresh copy, on SQLite and on PostgreSQL (the script loaded into a scratch schema,
as conftest.py makes them).
"""
from __future__ import annotations

import logging
import shutil
import threading
from datetime import UTC

import psycopg2
import pytest
from click.testing import CliRunner

from cli import main
from engine.store import migrations
from engine.store.store import SCHEMA_VERSION, SchemaVersionError, Store
from tests.support import ROOT, postgres_schema_url, utc

pytestmark = pytest.mark.wallclock     # reads this machine's clock: CI runs it again years ahead

FIXTURES = ROOT / "fixtures" / "databases"
RULESET = "sha256:fixture-v1"
STATE_FORMAT = "code:0123456789abcdef"        # the snapshot's ``code`` in version 1
ADMIN, REVOKED = "slm_fixture-admin-token", "slm_fixture-revoked-token"


def verified(store: Store, point: dict | None = None) -> dict:
    """``store.verify_audit(point)``, the fixtures' rule sets aside: the releases that made
    them stored a made-up version (``sha256:fixture-…``) that is not the hash of its files,
    which verify names (test_a_made_up_rule_set_version_is_named_and_not_served); every
    other chain must hold."""
    result = store.verify_audit(point)
    cut = result["chains"]["cutovers"]
    if not cut["ok"] and cut["first_broken"]["id"].startswith("sha256:fixture-") \
            and "do not hash to its version" in cut["first_broken"]["reason"]:
        result["ok"] = all(c["ok"] for name, c in result["chains"].items() if name != "cutovers") and \
            result.get("checkpoint", {}).get("ok", True)
    return result


def fixture_copy(name: str, backend: str, tmp_path):
    """A fresh copy of the fixture database ``name`` (fixtures/databases/make_<name>.py) on
    ``backend``: its URL, yielded while the copy exists."""
    if backend == "sqlite":
        path = tmp_path / f"{name}.db"
        shutil.copyfile(FIXTURES / f"{name}.sqlite", path)
        yield f"sqlite:///{path}"
        return
    with postgres_schema_url() as url:
        conn = psycopg2.connect(url)
        with conn, conn.cursor() as cur:
            cur.execute((FIXTURES / f"{name}.postgresql.sql").read_text())
        conn.close()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def v1_url(request, tmp_path):
    """A fresh copy of the version-1 fixture database."""
    yield from fixture_copy("v1", request.param, tmp_path)


@pytest.fixture
def store_log(caplog):
    caplog.set_level(logging.INFO, logger="slm.store")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "slm.store"]


def raw_version(url: str) -> int:
    """The schema version as the database records it, read without upgrading anything."""
    from engine.store.models import database
    db = database(url)
    db.connect()
    try:
        return migrations.schema_version(db)
    finally:
        db.close()


def schema(store: Store) -> dict:
    """Tables, their columns, indexes and foreign keys, as the database describes them."""
    db = store.db
    return {table: (sorted((c.name, c.data_type.lower(), c.null, c.primary_key, c.default)
                           for c in db.get_columns(table)),
                    sorted((i.name, tuple(i.columns), i.unique) for i in db.get_indexes(table)),
                    sorted((k.column, k.dest_table, k.dest_column) for k in db.get_foreign_keys(table)))
            for table in db.get_tables()}


def test_the_fixture_is_version_1(v1_url):
    assert raw_version(v1_url) == 1


def test_a_version_1_database_opens_at_the_newest_version_with_everything_readable(v1_url, store_log):
    with Store.open(v1_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        stored = list(store.facts())
        assert [(s["seq"], s["fact"]["id"], s["outcome"]) for s in stored] == [
            (1, "f1", []), (2, "f2", []), (3, "f3", ["dec_3"])]
        assert stored[0]["fact"]["data"] == {"priority": "P1", "note": "überlastet"}
        assert store.last_fact_seq() == 3
        assert store.find_facts([("itsm/prod", "f3"), ("itsm/prod", "f9")]) == {("itsm/prod", "f3"): ["dec_3"]}
        assert store.fact("itsm/prod", "f2")["subject"] == "INC-2"
        assert [s["fact"]["id"] for s in store.list_facts(subject="INC-2")[0]] == ["f2", "f3"]

        decisions, cursor = store.list_decisions()
        assert [d["id"] for d in decisions] == ["dec_1", "dec_2", "dec_3"] and cursor is None
        assert [d["id"] for d in store.list_decisions(kind="breach")[0]] == ["dec_2"]
        assert store.decision("dec_3")["kind"] == "met" and store.decision_count() == 3
        assert store.verify_chain() == {"ok": True, "checked": 3, "first_broken": None}

        notifications, _ = store.list_notifications()
        assert [(n["id"], n["decision"], n["status"]) for n in notifications] == [("ntf_1", "dec_2", "failed")]
        assert store.token_role(ADMIN) == "admin" and store.token_role(REVOKED) is None
        assert store.ticks() == [(1, 2, utc("2026-11-02T09:15:00Z"))]
        snap = store.latest_snapshot(RULESET, STATE_FORMAT)
        assert (snap["fact_seq"], snap["tick_seq"], snap["body"]) == (3, 1, b"\x80\x04fixture snapshot\x00")
    assert raw_version(v1_url) == SCHEMA_VERSION
    assert store_log(), "each step applied is logged"


def test_new_writes_continue_the_old_logs(v1_url):
    with Store.open(v1_url) as store:
        fact = {"id": "f4", "source": "itsm/prod", "type": "incident.resolved",
                "time": "2026-11-02T10:00:00Z", "subject": "INC-1", "service": "email"}
        assert store.add_facts([(fact, ["dec_4"])]) == 4
        decision = {**store.decision("dec_2"), "id": "dec_4", "kind": "met", "at": "2026-11-02T10:00:00Z"}
        assert store.add_decisions([store.decision("dec_1"), decision]) == ["dec_4"]
        assert store.add_notifications([{"id": "ntf_2", "decision": "dec_4", "recipient": "owner@example.org"}]) \
            == ["ntf_2"]
        token = store.add_token("auditor")
        assert store.add_tick(4, "2026-11-02T10:05:00Z") == 2
        store.save_ruleset(RULESET, {"rules/email.yaml": "kind: Service\nid: email\n"})
        store.save_snapshot(RULESET, STATE_FORMAT, 4, 2, b"new")
    with Store.open(v1_url) as store:
        assert [s["seq"] for s in store.facts()] == [1, 2, 3, 4]
        assert store.verify_chain() == {"ok": True, "checked": 4, "first_broken": None}
        assert [n["id"] for n in store.list_notifications()[0]] == ["ntf_1", "ntf_2"]
        assert store.token_role(token) == "auditor" and store.token_role(ADMIN) == "admin"
        assert [t[0] for t in store.ticks()] == [1, 2]
        assert store.latest_snapshot(RULESET, STATE_FORMAT)["body"] == b"new"
        rulesets = store.db.execute_sql("SELECT hash, generation FROM rulesets").fetchall()
        assert rulesets == [(RULESET, 2)]


def test_opening_an_upgraded_database_again_changes_nothing(v1_url, store_log):
    with Store.open(v1_url) as store:
        before = schema(store), store.db.execute_sql("SELECT * FROM schema_version").fetchall()
    applied = store_log()
    with Store.open(v1_url) as store:
        assert (schema(store), store.db.execute_sql("SELECT * FROM schema_version").fetchall()) == before
    assert store_log() == applied


def test_an_empty_database_is_created_at_the_newest_version(url, store_log):
    with Store.open(url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.verify_chain() == {"ok": True, "checked": 0, "first_broken": None}
    assert store_log() == [f"created the store's tables at schema version {SCHEMA_VERSION}"]
    with Store.open(url) as store:
        assert store.schema_version() == SCHEMA_VERSION
    assert len(store_log()) == 1


def test_a_database_newer_than_the_code_is_refused_naming_both_versions(url):
    with Store.open(url) as store:
        store.db.execute_sql("UPDATE schema_version SET version = version + 1")
    with pytest.raises(SchemaVersionError) as err:
        Store.open(url)
    message = str(err.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message and f"version {SCHEMA_VERSION}" in message
    assert raw_version(url) == SCHEMA_VERSION + 1             # left as it was
    refused = CliRunner().invoke(main, ["audit", "verify", "--db", url])
    assert refused.exit_code == 1 and f"schema version {SCHEMA_VERSION + 1}" in refused.output


def test_a_failed_upgrade_leaves_the_database_at_its_old_version(v1_url, monkeypatch):
    def fail(db, version):
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(migrations, "_record", fail)
    with pytest.raises(RuntimeError, match="disk filled up"):
        Store.open(v1_url)
    assert raw_version(v1_url) == 1
    monkeypatch.undo()
    with Store.open(v1_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.verify_chain() == {"ok": True, "checked": 3, "first_broken": None}


def test_processes_opening_an_old_database_together_upgrade_it_once(v1_url, store_log):
    versions, errors = [], []
    start = threading.Barrier(4)

    def open_store():
        try:
            start.wait()
            with Store.open(v1_url) as store:
                versions.append(store.schema_version())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and versions == [SCHEMA_VERSION] * 4
    messages = store_log()
    assert messages and len(messages) == len(set(messages))      # each step once
    with Store.open(v1_url) as store:
        assert store.verify_chain() == {"ok": True, "checked": 3, "first_broken": None}


# ---- version 2: partition key, snapshots.state_format --------------------------------

PARTITIONED = ("facts", "decisions", "notifications", "ticks", "snapshots")


@pytest.fixture
def fresh_url(v1_url, tmp_path):
    """An empty database on the same kind of server as ``v1_url``."""
    if v1_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with postgres_schema_url() as url:
        yield url


def columns(store: Store, table: str) -> list[str]:
    return [c.name for c in store.db.get_columns(table)]


def test_version_2_puts_every_row_in_the_default_partition(v1_url, store_log):
    with Store.open(v1_url) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 2
        for table in PARTITIONED:
            partitions = store.db.execute_sql(f'SELECT DISTINCT "partition" FROM {table}').fetchall()
            assert partitions == [("default",)], table
        store.add_facts([({"id": "f4", "source": "itsm/prod", "type": "incident.resolved",
                           "time": "2026-11-02T10:00:00Z"}, [])])
        store.add_tick(4, "2026-11-02T10:05:00Z")
        new = store.db.execute_sql('SELECT "partition" FROM facts WHERE id = \'f4\'').fetchall()
        assert new == [("default",)]
        assert "code" not in columns(store, "snapshots") and "state_format" in columns(store, "snapshots")
        indexes = {i.name: i.columns for t in ("facts", "decisions") for i in store.db.get_indexes(t)}
        assert indexes["fact_partition_seq"] == ["partition", "seq"]
        assert indexes["decision_partition_seq"] == ["partition", "seq"]
        head = store.db.execute_sql("SELECT name, seq FROM chain_head WHERE name = 'decisions'").fetchall()
        assert head == [("decisions", 3)]
    assert store_log()[0] == ("upgraded the schema from version 1 to 2: partition key on facts, decisions, "
                              "notifications, ticks and snapshots; snapshots.code renamed state_format")


def test_version_3_puts_the_newest_rule_set_in_force_from_the_first_fact(v1_url, store_log):
    """Before versions were kept, a replay applied the newest rule set to all history: the
    upgrade records exactly that, so a restart after it replays as before."""
    with Store.open(v1_url) as store:
        (cutover,) = store.cutovers()
        assert cutover["ruleset"] == RULESET and cutover["after_fact"] == cutover["after_tick"] == 0
        first = store.db.execute_sql("SELECT MIN(received_at) FROM facts").fetchone()[0]
        assert cutover["at"] == utc(first)
        assert store.db.execute_sql("SELECT hash FROM rulesets").fetchall() == [(RULESET,)]
    assert store_log()[1] == ("upgraded the schema from version 2 to 3: cutovers: when and where in the "
                              "fact log each rule set took effect")


def test_an_upgraded_database_has_the_schema_of_a_new_one(v1_url, fresh_url):
    with Store.open(v1_url) as upgraded, Store.open(fresh_url) as fresh:
        assert schema(upgraded) == schema(fresh)


def test_snapshots_keep_their_positional_signature(v1_url):
    with Store.open(v1_url) as store:
        store.save_snapshot(RULESET, "state:2", 3, 1, b"v2")
        assert store.latest_snapshot(RULESET, "state:2")["body"] == b"v2"
        assert store.latest_snapshot(RULESET, STATE_FORMAT)["body"] == b"\x80\x04fixture snapshot\x00"
        store.save_snapshot(ruleset=RULESET, state_format="state:2", fact_seq=3, tick_seq=1, body=b"v2b")
        assert store.latest_snapshot(RULESET, state_format="state:2")["body"] == b"v2b"
        assert store.latest_snapshot(RULESET, "state:3") is None


def test_a_step_failing_half_way_leaves_version_1_as_it_was(v1_url, monkeypatch):
    what, step = migrations.STEPS[2]

    def half_then_fail(migrator):
        step(migrator)               # every column added, the index made, the column renamed …
        raise RuntimeError("the disk filled up")

    monkeypatch.setitem(migrations.STEPS, 2, (what, half_then_fail))
    with pytest.raises(RuntimeError, match="disk filled up"):
        Store.open(v1_url)
    assert raw_version(v1_url) == 1
    from engine.store.models import database
    db = database(v1_url)
    with db:
        assert "schema_version" not in db.get_tables()
        for table in PARTITIONED:
            assert "partition" not in [c.name for c in db.get_columns(table)], table
        assert "code" in [c.name for c in db.get_columns("snapshots")]
        assert "fact_partition_seq" not in [i.name for i in db.get_indexes("facts")]
    monkeypatch.undo()
    with Store.open(v1_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.verify_chain() == {"ok": True, "checked": 3, "first_broken": None}


# ---- version 4: delivery columns on notifications (the outbox) ---------------------------

DELIVERY = ("attempts", "last_error", "next_attempt_at", "message_id", "queued_at", "lease_until")


def test_version_4_keeps_old_notifications_but_does_not_send_them_unasked(v1_url, store_log):
    from datetime import datetime, timedelta
    with Store.open(v1_url) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 4
        assert set(DELIVERY) <= set(columns(store, "notifications"))
        old, = store.list_notifications()[0]
        assert (old["id"], old["status"], old["attempts"], old["message_id"], old["next_attempt_at"]) == \
            ("ntf_1", "failed", 0, None, None)
        assert "before this release delivered notifications" in old["last_error"]
        now = datetime.now(UTC)
        assert not store.due_exists(now)                 # an upgrade mails out no old news …
        assert store.requeue("ntf_1")["status"] == "retrying"      # … unless an admin asks
        now = datetime.now(UTC)
        assert store.due_exists(now)
        claimed = store.claim(now, now + timedelta(seconds=30))
        assert [n["id"] for n in claimed] == ["ntf_1"]
        store.record_sent(["ntf_1"], "ntf_1")
        sent = store.notification("ntf_1")
        assert (sent["status"], sent["attempts"], sent["message_id"]) == ("sent", 1, "ntf_1")
        indexes = {i.name: i.columns for i in store.db.get_indexes("notifications")}
        assert indexes["notification_status_next_attempt_at"] == ["status", "next_attempt_at"]
    assert any(line.startswith("upgraded the schema from version 3 to 4: delivery columns") for line in store_log())


def test_a_version_4_step_failing_half_way_leaves_the_database_at_version_3(v1_url, monkeypatch):
    with Store.open(v1_url):
        pass
    from engine.store.models import database
    db = database(v1_url)
    with db:                                     # back to version 3, as the release before left it
        db.execute_sql("DROP INDEX IF EXISTS notification_status_next_attempt_at")
        for name in DELIVERY:
            db.execute_sql(f"ALTER TABLE notifications DROP COLUMN {name}")
        for table, columns in (("facts", ("prev_hash", "hash")), ("notifications", ("prev_hash", "hash")),
                               ("chain_head", ("count", "chained_from", "keyed_from", "mac"))):
            for name in columns:                 # and what version 5 added
                db.execute_sql(f"ALTER TABLE {table} DROP COLUMN {name}")
        db.execute_sql("DELETE FROM chain_head WHERE name <> 'decisions'")
        db.execute_sql("DROP INDEX token_live_name")        # and what version 6 added
        for name in ("sources", "expires_at", "revoked_at"):
            db.execute_sql(f"ALTER TABLE tokens DROP COLUMN {name}")
        db.execute_sql("DROP INDEX fact_subject_time")      # and what version 7 added
        db.execute_sql("DROP TABLE deliveries")
        db.execute_sql("DELETE FROM chain_head WHERE name = 'deliveries'")
        db.execute_sql("DROP TABLE partition_leases")       # and what version 8 added
        db.execute_sql("DROP INDEX fact_partition_pseq")    # and what version 9 added
        for name in ("pseq", "refused"):
            db.execute_sql(f"ALTER TABLE facts DROP COLUMN {name}")
        db.execute_sql("DROP INDEX decision_retracts")      # and what version 10 added
        db.execute_sql("ALTER TABLE decisions DROP COLUMN retracts")
        for name in ("by", "body", "prev_hash", "hash"):
            db.execute_sql(f"ALTER TABLE cutovers DROP COLUMN {name}")
        db.execute_sql("DROP TABLE ended_sessions")           # and what version 11 added
        db.execute_sql("UPDATE schema_version SET version = 3")
    what, step = migrations.STEPS[4]

    def half_then_fail(migrator):
        step(migrator)
        raise RuntimeError("the disk filled up")

    monkeypatch.setitem(migrations.STEPS, 4, (what, half_then_fail))
    with pytest.raises(RuntimeError, match="disk filled up"):
        Store.open(v1_url)
    assert raw_version(v1_url) == 3
    with db:
        assert not set(DELIVERY) & {c.name for c in db.get_columns("notifications")}
    monkeypatch.undo()
    with Store.open(v1_url) as store:
        assert store.schema_version() == SCHEMA_VERSION and store.list_notifications()[0][0]["attempts"] == 0


def test_version_5_keeps_the_old_chain_and_keys_what_follows(v1_url, store_log, tmp_path):
    """The decisions a release before keyed chains wrote keep their SHA-256 links and are
    verified as such; facts and notifications stored before chaining are left out of their
    chains (counted from the row after them); the first write with the audit key starts the
    keyed part, and from then on the record cannot be rewritten without the key."""
    from engine.store.chain import load_key
    key = load_key(tmp_path / "audit.key", create=True)
    with Store.open(v1_url, audit_key=key) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 5
        assert any("from version 4 to 5" in line for line in store_log())
        before = verified(store)
        reason = before["chains"]["decisions"]["first_broken"]["reason"]
        assert not before["ok"] and "not keyed by the audit key" in reason
        assert before["chains"]["decisions"]["checked"] == 3 and before["chains"]["decisions"]["keyed_from"] is None
        assert before["chains"]["facts"]["checked"] == 0            # stored before chaining
        store.add_facts([({"id": "f4", "source": "itsm/prod", "type": "incident.resolved",
                           "time": "2026-11-02T10:00:00Z"}, [])])
        store.add_decisions([{"id": "dec_new", "kind": "met", "at": "2026-11-02T10:00:00Z"}])
        after = verified(store)
        assert after["ok"], after
        assert after["chains"]["decisions"]["keyed_from"] == 4 and after["chains"]["decisions"]["checked"] == 4
        assert after["chains"]["facts"]["checked"] == 1
        point = store.audit_checkpoint()
        store.db.execute_sql("UPDATE decisions SET hash = 'x' WHERE seq = 2")
        broken = verified(store, point)["chains"]["decisions"]
        assert not broken["ok"] and broken["first_broken"]["seq"] == 2
    with Store.open(v1_url) as unkeyed:          # a keyed chain is not written without its key
        with pytest.raises(Exception, match="audit key"):
            unkeyed.add_decisions([{"id": "dec_other", "kind": "met", "at": "2026-11-02T10:00:00Z"}])


# ---- version 6: token names, source patterns, expiry -------------------------------------

V5_TOKENS = {"admin": "slm_fixture-admin", "zabbix-1": "slm_fixture-zabbix-1", "zabbix-2": "slm_fixture-zabbix-2",
             "unnamed": "slm_fixture-unnamed", "revoked": "slm_fixture-revoked", "revoked-2": "slm_fixture-revoked-2"}


@pytest.fixture(params=["sqlite", "postgresql"])
def v5_url(request, tmp_path):
    """A fresh copy of the version-5 fixture database (release cad97d0): tokens for version 6,
    notifications sent, failed and pending under unkeyed chains for version 7."""
    yield from fixture_copy("v5", request.param, tmp_path)


def test_the_v5_fixture_is_version_5(v5_url):
    assert raw_version(v5_url) == 5


def test_version_6_names_every_token_once_among_the_unrevoked_and_keeps_them_working(v5_url, store_log):
    assert raw_version(v5_url) == 5
    with Store.open(v5_url) as store:
        listed = [(t["name"], t["role"], t["revoked"], t["sources"], t["expires_at"]) for t in store.tokens()]
        assert listed == [("ops", "admin", False, [], None), ("zabbix", "monitor", False, [], None),
                          ("zabbix-2", "monitor", False, [], None), ("auditor-1", "auditor", False, [], None),
                          ("ops", "monitor", True, [], None), ("monitor-1", "monitor", True, [], None)]
        roles = {key: store.token_role(token) for key, token in V5_TOKENS.items()}
        assert roles == {"admin": "admin", "zabbix-1": "monitor", "zabbix-2": "monitor", "unnamed": "auditor",
                         "revoked": None, "revoked-2": None}
        assert verified(store)["ok"] and [s["fact"]["id"] for s in store.facts()] == ["f1", "f2"]
        with pytest.raises(ValueError, match="'zabbix' exists and is not revoked"):
            store.add_token("monitor", "zabbix")
        assert store.revoke_token("zabbix") == "zabbix"          # by name: the oldest of the two
        assert store.token_role(V5_TOKENS["zabbix-1"]) is None
        assert store.token_role(V5_TOKENS["zabbix-2"]) == "monitor"
        store.add_token("monitor", "zabbix")                     # free again once revoked
        assert store.add_token("auditor").startswith("slm_")
        assert [t["name"] for t in store.tokens()][-1] == "auditor-2"
    assert any(line.startswith("upgraded the schema from version 5 to 6: token names") for line in store_log())


def test_version_6_names_are_unique_among_unrevoked_tokens_in_the_database_itself(v5_url):
    with Store.open(v5_url) as store:
        insert = ("INSERT INTO tokens (token_hash, role, name, created_at, revoked) "
                  f"VALUES ({store._params(range(5))})")
        store.db.execute_sql(insert, ("d1", "monitor", "ops", "2027-03-02T00:00:00.000000Z", True))
        with pytest.raises(Exception, match="(?i)unique"):
            with store.transaction():
                store.db.execute_sql(insert, ("d2", "monitor", "ops", "2027-03-02T00:00:00.000000Z", False))
        with pytest.raises(Exception, match="(?i)null"):
            with store.transaction():
                store.db.execute_sql(insert, ("d3", "monitor", None, "2027-03-02T00:00:00.000000Z", False))


def assert_upgraded_like_new(old_url: str, tmp_path) -> None:
    """The database at ``old_url``, upgraded, has the schema of a new one on the same backend."""
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    if not old_url.startswith("sqlite"):
        with Store.open(old_url) as upgraded, postgres_schema_url() as url, Store.open(url) as new:
            assert schema(upgraded) == schema(new)
        return
    with Store.open(old_url) as upgraded, Store.open(fresh) as new:
        assert schema(upgraded) == schema(new)


def test_a_version_5_database_upgraded_has_the_schema_of_a_new_one(v5_url, tmp_path):
    assert_upgraded_like_new(v5_url, tmp_path)


def test_a_version_6_step_failing_half_way_leaves_version_5_as_it_was(v5_url, monkeypatch):
    what, step = migrations.STEPS[6]

    def half_then_fail(migrator):
        step(migrator)
        raise RuntimeError("the disk filled up")

    monkeypatch.setitem(migrations.STEPS, 6, (what, half_then_fail))
    with pytest.raises(RuntimeError, match="disk filled up"):
        Store.open(v5_url)
    assert raw_version(v5_url) == 5
    from engine.store.models import database
    db = database(v5_url)
    with db:
        assert "expires_at" not in [c.name for c in db.get_columns("tokens")]
        assert db.execute_sql("SELECT COUNT(*) FROM tokens WHERE name IS NULL").fetchone()[0] == 2
    monkeypatch.undo()
    with Store.open(v5_url) as store:
        assert [t["name"] for t in store.tokens()][3] == "auditor-1"


# ---- version 7: delivery outcomes in their own chain -------------------------------------

def test_version_7_starts_an_empty_deliveries_chain_and_chains_what_follows(v5_url, store_log, tmp_path):
    """Outcomes recorded before version 7 stay in the notifications' columns only (not
    chained); the next change to any notification, old or new, is chained and checked."""
    from engine.store.chain import load_key
    with Store.open(v5_url, audit_key=load_key(tmp_path / "audit.key", create=True)) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 7
        assert any("to 7: deliveries" in line for line in store_log())
        before = verified(store)           # with the key: the chains the old release wrote are not keyed yet
        assert not before["ok"] and "not keyed" in before["chains"]["notifications"]["first_broken"]["reason"]
        assert before["chains"]["deliveries"]["checked"] == 0 and before["chains"]["notifications"]["checked"] == 3
        statuses = {n["id"]: (n["status"], n["message_id"]) for n in store.list_notifications()[0]}
        assert statuses == {"ntf_sent": ("sent", "msg-1"), "ntf_failed": ("failed", "msg-2"),
                            "ntf_pending": ("pending", None)}
        assert all(store.delivery_outcomes(nid) == [] for nid in statuses)
        store.requeue("ntf_failed")
        store.record_sent(["ntf_failed"], "msg-3")
        store.add_notifications([{"id": "ntf_new", "decision": "dec_2", "recipient": "d@example.org"}])
        store.add_decisions([{"id": "dec_new", "kind": "met", "at": "2027-03-01T08:00:00Z"}])   # keys these chains too
        store.add_facts([({"id": "f9", "source": "itsm/prod", "type": "incident.resolved",
                           "time": "2027-03-01T08:00:00Z"}, [])])
        assert [o["event"] for o in store.delivery_outcomes("ntf_failed")] == ["requeued", "sent"]
        assert [o["event"] for o in store.delivery_outcomes("ntf_new")] == ["created"]
        after = verified(store)
        assert after["ok"], after
        assert after["chains"]["deliveries"]["checked"] == 3 and after["chains"]["deliveries"]["keyed_from"] == 1
        store.db.execute_sql("UPDATE notifications SET attempts = 1 WHERE id = 'ntf_failed'")
        broken = verified(store)["chains"]["deliveries"]["first_broken"]
        assert broken["id"] == "ntf_failed" and "attempts" in broken["reason"]


# ---- version 8: partition leases -----------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def v7_url(request, tmp_path):
    """A fresh copy of the version-7 fixture database (release 48d3116)."""
    yield from fixture_copy("v7", request.param, tmp_path)


def test_the_v7_fixture_is_version_7(v7_url):
    assert raw_version(v7_url) == 7


def test_version_8_adds_an_empty_lease_table_and_an_owner_writes_on(v7_url, store_log):
    from datetime import timedelta
    with Store.open(v7_url) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 8
        assert any(line.startswith("upgraded the schema from version 7 to 8: partition_leases") for line in store_log())
        assert store.db.execute_sql("SELECT * FROM partition_leases").fetchall() == [] and store.lease() is None
        assert [s["fact"]["id"] for s in store.facts()] == ["f1", "f2"] and store.decision_count() == 2
        assert [o["event"] for o in store.delivery_outcomes("ntf_sent")] == ["created", "sent"]
        assert store.token_role("slm_fixture-admin") == "admin"
        assert verified(store)["ok"]
        lease = store.acquire_lease("host:1", ttl=timedelta(minutes=10))
        assert lease.epoch == 1
        store.fence_with(lease)
        store.add_facts([({"id": "f3", "source": "zabbix/prod", "type": "incident.resolved",
                           "time": "2027-06-01T08:00:00Z", "subject": "INC-1", "service": "email"}, [])])
        store.record_sent(["ntf_pending"], "msg-2")
        assert verified(store)["ok"]


def test_a_version_7_database_upgraded_has_the_schema_of_a_new_one(v7_url, tmp_path):
    assert_upgraded_like_new(v7_url, tmp_path)


def test_a_version_8_step_failing_half_way_leaves_version_7_as_it_was(v7_url, monkeypatch):
    what, step = migrations.STEPS[8]

    def half_then_fail(migrator):
        step(migrator)
        raise RuntimeError("the disk filled up")

    monkeypatch.setitem(migrations.STEPS, 8, (what, half_then_fail))
    with pytest.raises(RuntimeError, match="disk filled up"):
        Store.open(v7_url)
    assert raw_version(v7_url) == 7
    from engine.store.models import database
    db = database(v7_url)
    with db:
        assert "partition_leases" not in db.get_tables()
    monkeypatch.undo()
    with Store.open(v7_url) as store:
        assert store.schema_version() == SCHEMA_VERSION and store.lease() is None


def test_version_9_gives_every_stored_fact_its_place_in_the_log_and_the_chain_follows_it(v7_url, store_log):
    with Store.open(v7_url) as store:
        assert any(line.startswith("upgraded the schema from version 8 to 9") for line in store_log())
        seqs = [seq for seq, in store.db.execute_sql("SELECT seq FROM facts ORDER BY seq").fetchall()]
        places = [p for p, in store.db.execute_sql("SELECT pseq FROM facts ORDER BY seq").fetchall()]
        assert places == seqs and store.last_fact_seq() == seqs[-1]
        stored = store.add_pending_facts([{"id": "f3", "source": "api/node", "type": "incident.resolved",
                                           "time": "2027-06-01T08:00:00Z", "subject": "INC-1", "service": "email"}])
        assert store.settle_facts([(stored[("api/node", "f3")], [])]) == seqs[-1] + 1
        assert [s["fact"]["id"] for s in store.facts()] == ["f1", "f2", "f3"]
        assert verified(store)["ok"]
def test_version_10_chains_the_cut_overs_already_stored_and_reads_old_fact_references(v7_url, store_log):
    """The cut-over of the version-7 fixture becomes the first link of the cut-over chain
    (who made it was not recorded: ``by`` is None), the next one names who did; the
    fixture's decisions name their facts by id alone (``fact:f1``), which still resolves
    while one source posted that id."""
    with Store.open(v7_url) as store:
        assert any("to 10: audit records" in line for line in store_log())
        (old,) = store.cutovers()
        assert old["by"] is None and old["ruleset"] == "sha256:fixture-v7"
        chain = verified(store)["chains"]["cutovers"]
        assert chain["checked"] == 1 and chain["count"] == 1 and chain["outside"] == []
        files = {"services/email.yaml": "kind: Service\nid: email\n"}
        from engine.lang.loader import version_of
        store.save_ruleset(version_of(files), files)
        store.add_cutover(version_of(files), "2027-07-01T00:00:00Z", 2, 1, "carol")
        assert [c["by"] for c in store.cutovers()] == [None, "carol"]
        assert verified(store)["chains"]["cutovers"]["checked"] == 2
        legacy = [ref for d in store.list_decisions()[0] for ref in d["because"] if ref.startswith("fact:")]
        assert legacy and all("#" not in ref for ref in legacy)
        assert all(store.fact_by_ref(ref[5:]) is not None for ref in legacy)
        fid = legacy[0][5:]
        store.add_facts([({"id": fid, "source": "evil/x", "type": "incident.opened",
                           "time": "2027-06-01T08:00:00Z"}, [])])
        assert store.fact_by_ref(fid) is None          # two sources posted it: an old reference is ambiguous
        assert store.fact_by_ref(f"evil/x#{fid}")["source"] == "evil/x"


# ---- version 11: console sessions signed out ------------------------------------------------

def test_version_11_adds_an_empty_table_of_signed_out_sessions_that_every_store_reads(v7_url, store_log):
    from datetime import UTC, datetime, timedelta
    now = datetime(2027, 7, 1, 12, 0, tzinfo=UTC)
    with Store.open(v7_url) as store, Store.open(v7_url) as other:
        assert any(line.startswith("upgraded the schema from version 10 to 11: ended_sessions") for line in store_log())
        assert store.db.execute_sql("SELECT * FROM ended_sessions").fetchall() == []
        store.end_session("sid-1", now + timedelta(hours=9), now)
        assert other.session_ended("sid-1") and not other.session_ended("sid-2")
        assert verified(store)["ok"] and store.token_role("slm_fixture-admin") == "admin"


def test_a_version_11_step_failing_half_way_leaves_the_database_as_it_was(v7_url, monkeypatch):
    what, step = migrations.STEPS[11]

    def half_then_fail(migrator):
        step(migrator)
        raise RuntimeError("the disk filled up")

    monkeypatch.setitem(migrations.STEPS, 11, (what, half_then_fail))
    with pytest.raises(RuntimeError, match="disk filled up"):
        Store.open(v7_url)
    assert raw_version(v7_url) == 7            # every step of the opening is undone with it
    from engine.store.models import database
    db = database(v7_url)
    with db:
        assert "ended_sessions" not in db.get_tables()
    monkeypatch.undo()
    with Store.open(v7_url) as store:
        assert store.schema_version() == SCHEMA_VERSION and not store.session_ended("sid-1")


# ---- version 13: waivers ------------------------------------------------------------------

def test_version_13_adds_an_empty_waiver_chain_that_chains_what_follows(v7_url, store_log):
    with Store.open(v7_url) as store:
        assert any(line.startswith("upgraded the schema from version 12 to 13: waiver_events") for line in store_log())
        assert store.db.execute_sql("SELECT * FROM waiver_events").fetchall() == [] and store.waivers() == []
        assert verified(store)["chains"]["waivers"]["checked"] == 0
        asked = store.request_waiver({"decision": "dec_1", "reason": "the customer's VPN"}, "alice",
                                     "2027-07-01T00:00:00Z")

        def four_eyes(waiver):
            assert waiver["requested_by"] != "bob"

        store.waiver_event(asked["id"], "approved", "bob", "2027-07-01T01:00:00Z", four_eyes)
        assert [w["status"] for w in store.waivers()] == ["approved"]
        chain = verified(store)["chains"]["waivers"]
        assert chain["ok"] and chain["checked"] == 2 and verified(store)["ok"]


def test_a_version_13_step_failing_half_way_leaves_the_database_as_it_was(v7_url, monkeypatch):
    what, step = migrations.STEPS[13]

    def half_then_fail(migrator):
        step(migrator)
        raise RuntimeError("the disk filled up")

    monkeypatch.setitem(migrations.STEPS, 13, (what, half_then_fail))
    with pytest.raises(RuntimeError, match="disk filled up"):
        Store.open(v7_url)
    assert raw_version(v7_url) == 7            # every step of the opening is undone with it
    from engine.store.models import database
    db = database(v7_url)
    with db:
        assert "waiver_events" not in db.get_tables()
    monkeypatch.undo()
    with Store.open(v7_url) as store:
        assert store.schema_version() == SCHEMA_VERSION and store.waivers() == []


@pytest.fixture
def v12_url(url):
    """A database as version 12 left it: no waiver or silence tables, nor their chain heads."""
    with Store.open(url) as store:
        store.add_token("admin")
        store.db.execute_sql('DROP TABLE "silences"')
        store.db.execute_sql('DROP TABLE "waiver_events"')
        store.db.execute_sql('DROP TABLE "restatement_events"')
        store.db.execute_sql("DELETE FROM chain_head WHERE name IN ('silences', 'waivers', 'restatements')")
        store.db.execute_sql("UPDATE schema_version SET version = 12")
    return url


def test_version_14_adds_silences_chained_from_the_start(v12_url, store_log, tmp_path):
    from datetime import UTC, datetime, timedelta

    from engine.notify.silence import created_event, from_events, new_silence

    with Store.open(v12_url) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 14
        upgraded = [line.split(":")[0] for line in store_log() if line.startswith("upgraded the schema")]
        assert upgraded == ["upgraded the schema from version 12 to 13", "upgraded the schema from version 13 to 14",
                            "upgraded the schema from version 14 to 15"]
        now = datetime(2026, 11, 5, 4, tzinfo=UTC)
        made = new_silence({"service": "email"}, now, now + timedelta(hours=1), "ann", "relay swap", now)
        store.add_silence_event(made.id, "created", now, created_event(made))
        assert list(from_events(store.silence_events())) == [made.id]
        assert store.verify_audit()["chains"]["silences"]["ok"]
    assert_upgraded_like_new(v12_url, tmp_path)


# ---- version 15: restatements ---------------------------------------------------------------

@pytest.fixture
def v14_url(url):
    """A database as version 14 left it: no restatement table, nor its chain head."""
    with Store.open(url) as store:
        store.add_token("admin")
        store.db.execute_sql('DROP TABLE "restatement_events"')
        store.db.execute_sql("DELETE FROM chain_head WHERE name = 'restatements'")
        store.db.execute_sql("UPDATE schema_version SET version = 14")
    return url


def test_version_15_adds_an_empty_restatement_chain_that_chains_what_follows(v14_url, store_log, tmp_path):
    with Store.open(v14_url) as store:
        assert store.schema_version() == SCHEMA_VERSION == 15
        upgraded = [line.split(":")[0] for line in store_log() if line.startswith("upgraded the schema")]
        assert upgraded == ["upgraded the schema from version 14 to 15"]
        assert store.restatements() == [] and verified(store)["chains"]["restatements"]["checked"] == 0
        asked = store.request_restatement({"service": "email", "period": "2026-11", "reason": "OLA at 15m",
                                           "rules": "sha256:x", "facts": 3, "decisions": [], "withdraws": [],
                                           "windows": {}}, "alice", "2026-12-05T00:00:00Z")
        store.restatement_event(asked["id"], "approved", "bob", "2026-12-05T01:00:00Z", lambda item: None)
        assert [r["status"] for r in store.restatements()] == ["approved"]
        chain = verified(store)["chains"]["restatements"]
        assert chain["ok"] and chain["checked"] == 2 and verified(store)["ok"]
    assert_upgraded_like_new(v14_url, tmp_path)
