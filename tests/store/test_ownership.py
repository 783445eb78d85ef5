"""One writer, enforced: a SQLite file's writer lock, PostgreSQL's partition leases and the
fence every write transaction of an owner runs first (engine/store/ownership.py).

Two Store objects on one database stand for two processes (each names its own owner); the
SQLite lock is tried from real subprocesses. Expiry is waited for by the database's clock;
nothing here asserts how fast anything is.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from engine.lang.loader import version_of
from engine.store.store import DatabaseUnavailable, Lease, LeaseHeld, LeaseLost, Store, WriterLockHeld
from tests.support import ROOT, postgres_schema_url

A, B = "host-a:101", "host-b:202"
SHORT = timedelta(seconds=1)
LONG = timedelta(minutes=10)
PATIENCE = 60                  # seconds any wait here may take before the test gives up


@pytest.fixture
def pair(url):
    """Two stores on one database: two processes."""
    a, b = Store.open(url), Store.open(url)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def pg_url():
    with postgres_schema_url() as url:
        yield url


def expire(store: Store, lease: Lease) -> None:
    """Wait until ``lease`` has expired by the database's clock."""
    deadline = time.monotonic() + PATIENCE
    while store.database_now() < lease.expires_at:
        assert time.monotonic() < deadline, "the database's clock did not reach the lease's expiry"
        time.sleep(0.05)


def fact(id, subject="INC-1"):
    return {"id": id, "source": "itsm/prod", "type": "incident.opened", "time": "2026-11-02T09:00:00Z",
            "subject": subject, "service": "email"}


def decision(id, kind="breach"):
    return {"id": id, "kind": kind, "target": "email-p1-response", "subject": "INC-1", "service": "email",
            "at": "2026-11-02T09:15:00Z", "because": ["fact:f1"]}


def contents(store: Store) -> dict:
    """Every row of every table, to show that a refused transaction changed nothing."""
    out = {}
    for model in store.m.all:
        table = model._meta.table_name
        rows = store.db.execute_sql(f'SELECT * FROM "{table}"').fetchall()
        out[table] = sorted(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)) for row in rows)
    return out


# ---- leases --------------------------------------------------------------------------

def test_only_one_acquires_and_the_other_is_told_who_holds_it_until_when(pair):
    a, b = pair
    assert a.lease() is None
    lease = a.acquire_lease(A, ttl=LONG)
    assert (lease.partition, lease.owner, lease.epoch) == ("default", A, 1)
    assert lease.expires_at > a.database_now()
    with pytest.raises(LeaseHeld) as refused:
        b.acquire_lease(B, ttl=LONG)
    assert refused.value.lease == lease
    message = str(refused.value)
    assert "'default'" in message and A in message and "epoch 1" in message
    assert lease.expires_at.strftime("%Y-%m-%dT%H:%M:%S") in message
    assert b.lease() == lease                                 # what an operator sees, from any process
    row = b.db.execute_sql('SELECT "partition", owner, epoch FROM partition_leases').fetchall()
    assert row == [("default", A, 1)]


def test_after_expiry_the_other_acquires_with_a_higher_epoch(pair):
    a, b = pair
    first = a.acquire_lease(A, ttl=SHORT)
    expire(b, first)
    second = b.acquire_lease(B, ttl=LONG)
    assert (second.owner, second.epoch) == (B, first.epoch + 1)
    with pytest.raises(LeaseHeld, match=B):
        a.acquire_lease(A, ttl=LONG)


def test_renewing_extends_the_lease_and_renewing_a_lost_one_says_it_is_lost(pair):
    a, b = pair
    lease = a.acquire_lease(A, ttl=SHORT)
    renewed = a.renew_lease(lease, ttl=LONG)
    assert (renewed.owner, renewed.epoch) == (A, lease.epoch) and renewed.expires_at > lease.expires_at
    with pytest.raises(LeaseHeld):
        b.acquire_lease(B)
    a.release_lease(renewed)
    taken = b.acquire_lease(B, ttl=LONG)
    with pytest.raises(LeaseLost) as lost:
        a.renew_lease(renewed)
    assert f"{B} (epoch {taken.epoch})" in str(lost.value)
    assert b.lease() == taken                                 # the failed renewal changed nothing


def test_an_expired_lease_nobody_took_is_still_renewed(pair):
    """The epoch is the fence, not the clock: while nobody took the partition, the owner
    that paused past its lease still owns it."""
    a, _ = pair
    lease = a.acquire_lease(A, ttl=SHORT)
    expire(a, lease)
    assert a.renew_lease(lease, ttl=LONG).epoch == lease.epoch


def test_release_lets_the_other_acquire_at_once(pair):
    a, b = pair
    lease = a.acquire_lease(A, ttl=LONG)
    a.release_lease(lease)
    taken = b.acquire_lease(B, ttl=LONG)
    assert (taken.owner, taken.epoch) == (B, 2)
    a.release_lease(lease)                                    # a lost lease is not released again
    assert a.lease() == taken


def test_acquiring_a_lease_it_holds_starts_a_new_tenure(pair):
    a, _ = pair
    first = a.acquire_lease(A, ttl=LONG)
    again = a.acquire_lease(A, ttl=LONG)
    assert again.epoch == first.epoch + 1
    a.fence_with(first)
    with pytest.raises(LeaseLost):
        a.add_tick(0, "2026-11-02T09:00:00Z")


def test_partitions_are_leased_apart(pair):
    a, b = pair
    mail = a.acquire_lease(A, partition="mail", ttl=LONG)
    web = b.acquire_lease(B, partition="web", ttl=LONG)
    assert (mail.epoch, web.epoch) == (1, 1)
    with pytest.raises(LeaseHeld, match="'mail'"):
        b.acquire_lease(B, partition="mail")
    assert a.lease("default") is None


def test_a_lease_lives_for_a_positive_time(pair):
    a, _ = pair
    with pytest.raises(ValueError, match="positive"):
        a.acquire_lease(A, ttl=timedelta(0))


# ---- the fence -----------------------------------------------------------------------

def test_the_owner_writes_while_its_lease_is_the_partitions(pair):
    a, _ = pair
    a.fence_with(a.acquire_lease(A, ttl=SHORT))
    a.add_facts([(fact("f1"), ["dec_1"])])
    a.add_decisions([decision("dec_1")])
    expire(a, a.fenced_by)                                    # expired, but nobody took over
    assert a.add_tick(1, "2026-11-02T09:20:00Z") == 1
    assert a.verify_audit()["ok"]


FILES = {"a.yaml": "kind: Service\n"}
RULES = version_of(FILES)          # a rule set is stored under the hash of its files (verify checks it)

WRITES = {
    "facts": lambda s: s.add_facts([(fact("f9", subject="INC-9"), [])]),
    "decisions": lambda s: s.add_decisions([decision("dec_9")]),
    "tick": lambda s: s.add_tick(1, "2026-11-02T09:30:00Z"),
    "snapshot": lambda s: s.save_snapshot("sha256:r", "state:1", 1, 0, b"state"),
    "cut-over": lambda s: (s.save_ruleset(RULES, FILES), s.add_cutover(RULES, "2026-11-02T09:30:00Z", 1, 0)),
    "rule set": lambda s: s.save_ruleset(RULES, FILES),
    "notifications": lambda s: s.add_notifications([{"id": "ntf_9", "decision": "dec_1",
                                                     "recipient": "x@example.org"}]),
    "delivery outcome": lambda s: s.record_sent(["ntf_1"], "msg-1"),
    "claim": lambda s: s.claim(datetime(2099, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, 0, 1, tzinfo=UTC)),
    "cancellation": lambda s: s.cancel_for(["dec_1"]),
    "token": lambda s: s.add_token("monitor", "late"),
    "a fact with its decisions": lambda s: _fact_with_decisions(s),
}


def _fact_with_decisions(store: Store) -> None:
    with store.transaction():                 # as the service stores a request: one transaction
        store.add_decisions([decision("dec_9")])
        store.add_facts([(fact("f9", subject="INC-9"), ["dec_9"])])


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_the_old_owners_next_write_raises_lease_lost_and_changes_nothing(pair, write):
    a, b = pair
    lease = a.acquire_lease(A, ttl=LONG)
    a.fence_with(lease)
    a.add_decisions([decision("dec_1")])
    a.add_facts([(fact("f1"), ["dec_1"])])
    a.add_notifications([{"id": "ntf_1", "decision": "dec_1", "recipient": "a@example.org"}])
    a.release_lease(lease)
    b.acquire_lease(B, ttl=LONG)
    before = contents(b)
    with pytest.raises(LeaseLost, match=f"{B} \\(epoch 2\\)"):
        write(a)
    assert contents(b) == before
    b.fence_with(b.lease())                                   # the new owner writes on
    write(b)
    assert b.verify_audit()["ok"]


def test_a_store_that_gave_its_partition_up_refuses_every_write_until_fenced_again(pair):
    """A standby, or an owner that stepped down: even under an epoch nobody replaced yet."""
    a, b = pair
    lease = a.acquire_lease(A, ttl=LONG)
    a.fence_with(lease)
    a.refuse_writes("this process stepped down")
    before = contents(b)
    for write in WRITES.values():
        with pytest.raises(LeaseLost, match="stepped down"):
            write(a)
    assert contents(b) == before and a.fenced_by is None
    assert a.renew_lease(lease, ttl=LONG).epoch == lease.epoch     # the lease itself is no such write
    a.fence_with(a.acquire_lease(A, ttl=LONG))
    assert a.add_tick(0, "2026-11-02T09:00:00Z") == 1


def test_a_renewal_and_a_release_commit_as_their_statement_ends(pair):
    """Each is one statement in a transaction of its own, so a process paused right after
    sending one holds no lock on the lease row that a takeover would wait for."""
    a, b = pair
    lease = a.acquire_lease(A, ttl=SHORT)
    with pytest.raises(RuntimeError, match="outside any transaction"):
        with a.transaction(fenced=False):
            a.renew_lease(lease, ttl=LONG)
    assert b.lease() == lease                                  # not renewed
    renewed = a.renew_lease(lease, ttl=LONG)
    assert not a.db.in_transaction() and b.lease() == renewed
    a.release_lease(renewed)
    assert not a.db.in_transaction() and b.lease().expires_at <= b.database_now()


def test_a_store_without_a_fence_is_not_checked(pair):
    """Readers and admin commands (slm token create) own nothing and are not fenced."""
    a, b = pair
    a.acquire_lease(A, ttl=LONG)
    assert b.fence is None
    b.add_token("admin", "ops")
    assert [t["name"] for t in a.tokens()] == ["ops"]


def test_a_fenced_transaction_in_flight_makes_the_takeover_wait(pg_url):
    """The fence's row lock: a takeover waits until the old owner's transaction in flight
    ends (what it wrote stays, it had the partition then), and the old owner's next
    transaction finds the new epoch. Its renewals never wait for its own writes."""
    a, b = Store.open(pg_url), Store.open(pg_url)
    lease = a.acquire_lease(A, ttl=SHORT)
    a.fence_with(lease)
    inside, finish, owner_pid = threading.Event(), threading.Event(), []

    def write_slowly():
        try:
            with a.transaction():
                owner_pid.append(a.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0])
                inside.set()
                assert finish.wait(PATIENCE)
                a.add_tick(0, "2026-11-02T09:00:00Z")
        finally:
            a.close()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    assert inside.wait(PATIENCE)
    renewed = []
    renewer = threading.Thread(target=lambda: (renewed.append(a.renew_lease(lease, ttl=SHORT)), a.close()))
    renewer.start()
    renewer.join(PATIENCE)
    assert not renewer.is_alive() and renewed[0].epoch == lease.epoch      # not held up by the write
    expire(b, renewed[0])

    taken, taker_pid, connected = [], [], threading.Event()

    def take_over():
        try:
            taker_pid.append(b.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0])
            connected.set()
            taken.append(b.acquire_lease(B, ttl=LONG))
        finally:
            b.close()

    taker = threading.Thread(target=take_over)
    taker.start()
    assert connected.wait(PATIENCE)
    with Store.open(pg_url) as observer:
        deadline = time.monotonic() + PATIENCE
        # the takeover waits, and what it waits for is the writer's transaction
        while owner_pid[0] not in observer.db.execute_sql("SELECT pg_blocking_pids(%s)", taker_pid).fetchone()[0]:
            assert time.monotonic() < deadline and taker.is_alive(), "the takeover did not wait for the writer"
            time.sleep(0.05)
        assert taken == []
        finish.set()
        writer.join(PATIENCE)
        taker.join(PATIENCE)
        assert not writer.is_alive() and not taker.is_alive()
        assert (taken[0].owner, taken[0].epoch) == (B, lease.epoch + 1)
        assert [t[1:] for t in observer.ticks()] == [(0, datetime(2026, 11, 2, 9, tzinfo=UTC))]
        with pytest.raises(LeaseLost):
            a.add_tick(0, "2026-11-02T09:05:00Z")
        assert len(observer.ticks()) == 1
    a.close()
    b.close()


# ---- SQLite: one writer process per file ----------------------------------------------

HOLD = """
import sys
from engine.store.store import Store
store = Store.open(sys.argv[1], writer=True)
print("holding", flush=True)
sys.stdin.read()
"""

TAKE = """
import sys
from engine.store.store import Store, WriterLockHeld
try:
    Store.open(sys.argv[1], writer=True)
except WriterLockHeld as err:
    sys.exit(str(err))
print("taken")
"""


def run(script: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, url], cwd=ROOT, capture_output=True, text=True,
                          timeout=PATIENCE)


def test_a_second_process_writing_one_sqlite_file_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / "slm.db"
    url = f"sqlite:///{path}"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        second = run(TAKE, url)
        assert second.returncode == 1, second
        message = " ".join(second.stderr.split())
        assert f"pid {holder.pid}" in message and str(path) in message and "slm.db-writer" in message
        assert "SQLite runs one slm process per database" in message and "PostgreSQL" in message
        with Store.open(url) as reader:                        # readers need no lock
            assert reader.decision_count() == 0
    finally:
        holder.kill()                                          # however it ends, the OS lets go
        holder.wait(PATIENCE)
    assert run(TAKE, url).stdout.strip() == "taken"


def test_the_writer_lock_in_one_process(tmp_path):
    url = f"sqlite:///{tmp_path / 'slm.db'}"
    first = Store.open(url, writer=True)
    with pytest.raises(WriterLockHeld, match="pid"):
        Store.open(url, writer=True)
    first.writer_lock.release()
    first.close()
    with Store.open(url, writer=True) as again:
        assert again.writer_lock is not None
        again.writer_lock.release()


def test_in_memory_and_postgresql_stores_take_no_file_lock(pg_url):
    memory = [Store.open("sqlite:///:memory:", writer=True) for _ in range(2)]
    assert [m.writer_lock for m in memory] == [None, None]
    with Store.open(pg_url, writer=True) as store:
        assert store.writer_lock is None


@pytest.mark.postgres
def test_an_owner_cut_off_in_the_middle_of_a_transaction_does_not_hold_the_takeover_back():
    """The fence's lock would keep a takeover waiting until the old owner's transaction
    ends; the server ends one that waits longer than the TTL for its next statement."""
    from tests.support import postgres_schema_url
    with postgres_schema_url() as url, Store.open(url) as old, Store.open(url) as new:
        ttl = timedelta(seconds=1)
        lease = old.acquire_lease("host-a:1", ttl=ttl)
        old.fence_with(lease, idle_at_most=ttl)
        stalled = old.db.atomic()        # a transaction begun, fenced, then nothing more is sent
        stalled.__enter__()
        old.fence()
        time.sleep(1.5)                  # the lease runs out meanwhile
        new.db.execute_sql("SET statement_timeout = '60s'")    # without the limit: an error, not a hang
        taken = new.acquire_lease("host-b:2", ttl=ttl)
        assert taken.epoch == lease.epoch + 1
        with pytest.raises(DatabaseUnavailable):   # the server ended the stalled transaction
            stalled.__exit__(None, None, None)
