"""Snapshots made beside the writer (engine.service.snapshots): what they store is what the
engine held when the write lock was taken, writes go on while one is made, and a snapshot
that dies part-way (its process killed, its transaction failed) leaves the one before it
the newest, from which a restart is the state a full replay gives. SQLite and PostgreSQL.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from api.ops import EngineMetrics
from engine.eval.state import STATE_FORMAT
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact

pytestmark = pytest.mark.wallclock

P1 = {"priority": "P1"}


@pytest.fixture
def make_service(url, wall):
    opened = []

    def make(snapshot_every=0, **options):
        store = Store.open(url)
        service = SlmService(store, PORTFOLIO, now=wall, history=True, snapshot_every=snapshot_every, **options)
        service.start(background=False)
        service.scheduler.stop()                       # the test fires what falls due
        opened.append(service)
        return service

    yield make
    for service in opened:
        service.stop()
        service.store.close()


def incidents(start: int, count: int, minute: int) -> list[dict]:
    return [fact(f"o{n}", subject=f"INC-{n}", time=f"2026-11-02T09:{minute:02d}:{n % 60:02d}Z", **P1)
            for n in range(start, start + count)]


def newest(service) -> dict:
    return service.store.latest_snapshot(None, STATE_FORMAT)


def held_child(engine, release) -> None:
    """Make the next snapshot's process wait for the file ``release`` before it encodes
    (only the child encodes: the service forks for it), so that the test can write
    meanwhile, or kill it."""
    real = engine.snapshot

    def held() -> bytes:
        release.with_suffix(".waiting").touch()
        while not release.exists():
            time.sleep(0.01)
        return real()
    engine.snapshot = held


def test_a_snapshot_made_beside_the_writer_holds_what_the_engine_held_then(make_service, wall):
    live = make_service(snapshot_every=3)
    wall.set("2026-11-02T09:30:00Z")
    live.facts.ingest(incidents(0, 3, 5))               # a snapshot is due: forked
    expected = live.state.engine.snapshot()             # the same state, encoded here
    live.keeper.wait_for_snapshot()
    stored = newest(live)
    assert (stored["fact_seq"], stored["body"]) == (3, expected)
    assert live.keeper.snapshots.stored == 1 and live.keeper.snapshots.failures == 0


def test_writes_go_on_while_a_snapshot_is_made_and_it_holds_the_state_before_them(make_service, wall, tmp_path):
    live = make_service(snapshot_every=3)
    wall.set("2026-11-02T09:30:00Z")
    live.facts.ingest(incidents(0, 2, 5))
    held_child(live.state.engine, tmp_path / "release")
    live.facts.ingest(incidents(2, 1, 5))               # fact 3: the snapshot's process waits
    del live.state.engine.snapshot
    at_three = live.state.engine.snapshot()
    for n in range(3, 9):                               # written while it is being made
        live.facts.ingest(incidents(n, 1, 6))
    assert live.keeper.snapshots.busy                   # none of them waited for it
    waiting = (tmp_path / "release").with_suffix(".waiting")
    for _ in range(6000):                                # (a guard against a hang, not a timing)
        if waiting.exists():                             # the child has closed what it inherited
            break
        time.sleep(0.01)
    if os.path.isdir("/proc/self/fd"):                  # it holds no database file or socket of the server's
        assert sorted(os.listdir(f"/proc/{live.keeper.snapshots.child}/fd")) == ["0", "1", "2", "3"]
    assert newest(live) is None
    (tmp_path / "release").touch()
    live.keeper.wait_for_snapshot()
    assert (newest(live)["fact_seq"], newest(live)["body"]) == (3, at_three)


def counted(service) -> dict[str, float]:
    """The snapshot counters /metrics shows."""
    return {family.name: family.samples[0].value for family in EngineMetrics([service]).collect()
            if family.name.startswith("slm_snapshots")}


def restart_equals_full_replay(make_service, wall, replayed: int) -> None:
    restored = make_service(snapshot_every=1000)
    assert restored.state.replayed == replayed
    full = make_service(snapshot_every=0)
    assert restored.state.engine.clocks() == full.state.engine.clocks()
    wall.set("2026-11-03T12:00:00Z")
    assert [d["id"] for d in restored.deadlines.tick().decisions] == [
        d.id for d in full.state.engine.advance(wall()).decisions]


def test_a_snapshot_whose_process_is_killed_stores_nothing_and_the_next_write_takes_one(make_service, wall,
                                                                                        tmp_path):
    live = make_service(snapshot_every=3)
    wall.set("2026-11-02T09:30:00Z")
    live.facts.ingest(incidents(0, 3, 5))
    live.keeper.wait_for_snapshot()                     # the snapshot at fact 3
    held_child(live.state.engine, tmp_path / "never")
    live.facts.ingest(incidents(3, 3, 6))               # at fact 6: its process is killed
    del live.state.engine.snapshot
    os.kill(live.keeper.snapshots.child, signal.SIGKILL)
    live.keeper.wait_for_snapshot()
    assert live.keeper.snapshots.failures == 1
    assert counted(live) == {"slm_snapshots_stored": 1, "slm_snapshots_failed": 1}
    assert newest(live)["fact_seq"] == 3                # the one before stays the newest
    live.facts.ingest(incidents(6, 1, 7))               # the next write takes one again
    live.keeper.wait_for_snapshot()
    assert newest(live)["fact_seq"] == 7
    live.facts.ingest(incidents(7, 2, 8))
    live.state.engine = None                            # a crash: no snapshot at stop
    restart_equals_full_replay(make_service, wall, replayed=2)


def test_a_snapshot_whose_transaction_fails_leaves_the_one_before_it(make_service, wall, monkeypatch):
    live = make_service(snapshot_every=3)
    wall.set("2026-11-02T09:30:00Z")
    live.facts.ingest(incidents(0, 3, 5))
    live.keeper.wait_for_snapshot()
    S = live.store.m.Snapshot

    def failing(*args, **kwargs):           # the look-up of stale ones: after the new row, in its transaction
        raise OSError("the disk went away while the snapshot was written")
    monkeypatch.setattr(S, "select", failing)
    live.facts.ingest(incidents(3, 3, 6))
    live.keeper.wait_for_snapshot()
    monkeypatch.undo()
    assert live.keeper.snapshots.failures == 1
    assert newest(live)["fact_seq"] == 3 and S.select().count() == 1
    live.state.engine = None                            # a crash before the next write
    restart_equals_full_replay(make_service, wall, replayed=3)


def test_a_forced_snapshot_waits_for_the_one_being_made_then_stores_its_own(make_service, wall):
    live = make_service(snapshot_every=3)
    wall.set("2026-11-02T09:30:00Z")
    live.facts.ingest(incidents(0, 3, 5))               # forked
    live.facts.ingest(incidents(3, 1, 6))
    live.stop()                                         # at stop: after it, one at fact 4
    assert newest(live)["fact_seq"] == 4
    assert live.keeper.snapshots.stored == 2
    restart_equals_full_replay(make_service, wall, replayed=0)


def test_without_background_snapshots_they_are_taken_under_the_lock(make_service, wall):
    live = make_service(snapshot_every=3, background_snapshots=False)
    wall.set("2026-11-02T09:30:00Z")
    live.facts.ingest(incidents(0, 3, 5))
    assert not live.keeper.snapshots.busy and newest(live)["fact_seq"] == 3
