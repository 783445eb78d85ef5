"""Owner and standby: services sharing one database by the partition's lease
(engine/service/ownership.py), without HTTP.

Each service stands for one process: it has a store of its own and names itself in the
lease (``lease_owner``). The leases expire by the database's clock and the owner renews by
its own monotonic clock, so this module waits on real time, with generous bounds and no
assertion on how long anything took.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from engine.service.live import SlmService
from engine.service.state import OWNER, STANDBY, Standby
from engine.store.store import LeaseLost, Store
from tests.support import PORTFOLIO, fact, fact_count
from tests.support.waiting import PATIENCE, until

pytestmark = pytest.mark.wallclock     # leases run on the database's clock: the machine's

A, B, C = "host-a:101", "host-b:202", "host-c:303"
SHORT = timedelta(seconds=1)           # renewed (or tried) every third of a second
LONG = timedelta(minutes=10)           # not renewed while a test runs
P1 = {"priority": "P1"}


@pytest.fixture
def processes(url, wall):
    """Start services on one database with leases, as separate processes would."""
    made = []

    def start(owner: str, ttl: timedelta = LONG, **options) -> SlmService:
        service = SlmService(Store.open(url), PORTFOLIO, now=wall, lease_ttl=ttl, lease_owner=owner, **options)
        service.start()
        made.append(service)
        return service

    yield start
    for service in made:
        service.stop()
        service.store.close()


def owner(service: SlmService) -> SlmService:
    until(lambda: service.state.ready.is_set(), f"{service.ownership.owner} to own and be ready")
    return service


def standing_by(service: SlmService) -> SlmService:
    until(lambda: service.state.holder is not None, f"{service.ownership.owner} to see who owns")
    return service


def test_the_first_owns_and_the_second_stands_by_writing_nothing(processes):
    first = owner(processes(A))
    second = standing_by(processes(B))
    assert (first.state.role, second.state.role) == (OWNER, STANDBY)
    assert first.state.ownership()["lease"]["owner"] == A
    shown = second.state.ownership()
    assert shown["role"] == STANDBY and (shown["lease"]["owner"], shown["lease"]["epoch"]) == (A, 1)
    assert second.state.engine is None and not second.state.ready.is_set()

    with pytest.raises(Standby) as refused:
        second.facts.ingest([fact("f1", **P1)])
    assert refused.value.holder.owner == A and A in str(refused.value) and "standby" in str(refused.value)
    with pytest.raises(Standby):
        second.rules.reload()
    with pytest.raises(Standby):
        second.state.require_owner()                    # what a write request checks (retrying a notification)
    with pytest.raises(LeaseLost, match="standby"):     # and its store refuses whatever would write
        second.store.add_tick(0, "2026-11-02T09:00:00Z")

    assert first.facts.ingest([fact("f1", **P1)]).accepted == 1
    assert second.store_reads.rule_versions()             # reads of the store go on
    assert fact_count(second.store) == 1
    assert (first.ownership.takeovers, second.ownership.takeovers) == (1, 0)


def test_a_clean_stop_hands_over_at_once_and_nothing_is_replayed(processes):
    first = owner(processes(A, snapshot_every=1000))
    second = standing_by(processes(B, ttl=SHORT, snapshot_every=1000))
    first.facts.ingest([fact("f1", **P1), fact("f2", subject="INC-2", **P1)])
    clocks = first.engine_reads.clocks()
    first.stop()                                        # snapshots, then releases the lease
    owner(second)
    lease = second.state.lease
    assert (lease.owner, lease.epoch) == (B, 2) and second.ownership.takeovers == 1
    assert second.state.replayed == 0                   # restored from the snapshot taken at the stop
    assert second.engine_reads.clocks() == clocks
    with pytest.raises(LeaseLost):                       # the stopped one's store writes nothing more
        first.store.add_tick(0, "2026-11-02T09:00:00Z")
    assert second.facts.ingest([fact("f3", subject="INC-3", **P1)]).accepted == 1
    assert second.store.verify_audit()["ok"]


def test_an_owner_whose_lease_was_taken_refuses_the_write_and_stands_by_without_rebuilding(processes, url):
    first = owner(processes(A))
    first.facts.ingest([fact("f1", **P1)])
    rebuilt = []
    restore = first.keeper.restore
    first.keeper.restore = lambda: (rebuilt.append(1), restore())
    with Store.open(url) as thief:                       # a standby that took over while A was paused
        thief.release_lease(first.state.lease)
        taken = thief.acquire_lease(C, ttl=LONG)
        stored = fact_count(thief), thief.decision_count()

        with pytest.raises(LeaseLost, match=C):
            first.facts.ingest([fact("f2", subject="INC-2", **P1)])
        with pytest.raises(Standby):                     # at once: no rebuild, no retry
            first.facts.ingest([fact("f3", subject="INC-3", **P1)])
        until(lambda: first.state.engine is None, "the engine to be let go")
        assert first.state.role == STANDBY and not first.state.ready.is_set()
        assert len(first.engine_reads.clock_view().running) == 0     # a standby shows no clocks
        standing_by(first)
        assert first.state.holder.owner == C and first.state.holder.epoch == taken.epoch
        assert rebuilt == []
        assert first.deadlines.tick().decisions == []    # its scheduler's tick finds nothing to do
        with pytest.raises(LeaseLost):
            first.store.add_tick(0, "2026-11-02T09:00:00Z")
        assert (fact_count(thief), thief.decision_count()) == stored
        thief.release_lease(taken)


def test_an_owner_that_cannot_renew_in_time_stands_by_and_takes_over_again(processes):
    first = owner(processes(A, ttl=SHORT))
    first.facts.ingest([fact("f1", **P1)])
    hung, answer = threading.Event(), threading.Event()

    def or_hang(call):                                   # the database stops answering lease calls
        def hanging(*args):
            if hung.is_set():
                answer.wait(PATIENCE)
            return call(*args)
        return hanging

    first.store.renew_lease = or_hang(first.store.renew_lease)
    first.store.acquire_lease = or_hang(first.store.acquire_lease)   # no early take-over while hung
    epoch = first.state.lease.epoch
    scheduler = first.scheduler
    hung.set()
    until(lambda: first.state.role == STANDBY, "the owner to step down")
    until(lambda: first.state.engine is None, "the engine to be let go")
    with pytest.raises(LeaseLost, match="gave partition 'default' up"):
        first.store.add_tick(0, "2026-11-02T09:00:00Z")
    hung.clear()
    answer.set()                                         # the database answers again; nobody else took over
    owner(first)
    assert first.state.role == OWNER and first.state.lease.epoch > epoch
    assert first.ownership.takeovers == 2 and first.scheduler is not scheduler
    assert first.facts.ingest([fact("f2", subject="INC-2", **P1)]).accepted == 1
    assert fact_count(first.store) == 2 and first.store.verify_audit()["ok"]


def test_a_lease_must_live_for_a_positive_time(url, wall):
    with Store.open(url) as store, pytest.raises(ValueError, match="positive"):
        SlmService(store, PORTFOLIO, now=wall, lease_ttl=timedelta(0))


def test_a_request_waiting_for_the_lock_when_its_owner_stood_by_is_never_written(processes):
    first = owner(processes(A))
    refused = []

    def post():
        try:
            first.facts.ingest([fact("f1", **P1)])
        except Standby as err:
            refused.append(err)

    with first.state.write_lock:                         # a write in progress
        client = threading.Thread(target=post)
        client.start()
        until(lambda: first.facts.queued() == 1, "the request to wait for the write lock")
        first.state.stand_by()                           # the lease loop steps down meanwhile
    client.join(PATIENCE)
    assert len(refused) == 1 and first.facts.queued() == 0       # nobody writes it later
    assert fact_count(first.store) == 0
