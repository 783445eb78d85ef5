"""The cyclic collector is held off while a write or a replay runs, and comes back after
(engine.service.collector), however the blocks nest or end."""
from __future__ import annotations

import gc

import pytest

from engine.service.collector import collector_held


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_it_is_off_inside_and_back_after_nested_blocks_and_failures(collector_on):
    with collector_held():
        assert not gc.isenabled()
        with pytest.raises(ValueError):
            with collector_held():
                raise ValueError("a write failed")
        assert not gc.isenabled()                 # the outer block still runs
    assert gc.isenabled()


def test_it_stays_off_after_if_it_was_off_before(collector_on):
    gc.disable()
    with collector_held():
        assert not gc.isenabled()
    assert not gc.isenabled()
    gc.enable()


def test_a_service_write_runs_with_it_off_and_leaves_it_on(collector_on, tmp_path, monkeypatch):
    from engine.eval.engine import Engine
    from engine.service.live import SlmService
    from engine.store.store import Store
    from tests.support import PORTFOLIO, WallClock, fact
    seen = []
    real = Engine.apply_loaded

    def watched(self, loaded):
        seen.append(gc.isenabled())
        return real(self, loaded)
    monkeypatch.setattr(Engine, "apply_loaded", watched)
    wall = WallClock("2026-11-02T09:05:00Z")
    store = Store.open(f"sqlite:///{tmp_path}/slm.db")
    service = SlmService(store, PORTFOLIO, now=wall, snapshot_every=0)
    service.start(background=False)
    try:
        service.facts.ingest([fact("f1", priority="P1"), fact("f2", subject="INC-2", priority="P2")])
    finally:
        service.stop()
        store.close()
    assert seen == [False, False] and gc.isenabled()
