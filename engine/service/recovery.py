"""Recovery: the engine as the store leaves it, and the snapshots that keep that quick.

A rebuild restores the newest usable snapshot (same rules, same state format), then
replays the facts and clock ticks stored after it in their original order. Decision ids
are deterministic, so the replay re-derives what is stored; it renders nothing and
stores nothing (the decisions are already there).
"""
from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from engine.eval.engine import Engine
from engine.eval.state import STATE_FORMAT, SnapshotError
from engine.lang.model import RuleSet
from engine.store.store import Store
from schemas.facts import load_stored

log = logging.getLogger("slm.service")


@dataclass
class Rebuilt:
    engine: Engine
    last_fact_seq: int          # the last stored fact the engine has applied
    last_tick_seq: int          # the last stored tick it has applied
    replayed: int               # facts replayed after the snapshot
    seconds: float


def rebuild(store: Store, ruleset: RuleSet, *, history: bool, retain: timedelta | None,
            snapshots: bool = True, progress: Callable[[int], None] = lambda count: None) -> Rebuilt:
    """The engine as the stored facts and ticks leave it: from the newest usable snapshot
    (if ``snapshots``), then what was stored after it, in order."""
    started = time.perf_counter()
    engine, after_fact, after_tick = _restore_snapshot(store, ruleset, history, retain) if snapshots \
        else (Engine(ruleset, history=history, retain=retain), 0, 0)
    engine.render = False             # what replay decides is stored already: render nothing
    ticks = store.ticks(after_seq=after_tick)
    pending = count = 0
    last_fact, last_tick = after_fact, after_tick
    for stored in store.facts(after_seq=after_fact):
        while pending < len(ticks) and ticks[pending][1] < stored["seq"]:
            last_tick = ticks[pending][0]
            engine.advance(ticks[pending][2])
            pending += 1
        engine.apply_loaded(load_stored(stored["fact"]))
        count, last_fact = count + 1, stored["seq"]
        progress(count)
    for seq, _, until in ticks[pending:]:
        engine.advance(until)
        last_tick = seq
    engine.render = True
    seconds = time.perf_counter() - started
    log.info("rebuilt state from %s, %d facts and %d ticks in %.1fs",
             f"a snapshot at fact {after_fact}" if after_fact else "scratch", count, len(ticks), seconds)
    return Rebuilt(engine, last_fact, last_tick, count, seconds)


def _restore_snapshot(store: Store, ruleset: RuleSet, history: bool,
                      retain: timedelta | None) -> tuple[Engine, int, int]:
    """(engine, fact seq, tick seq) from the newest usable snapshot, else a new engine."""
    found = store.latest_snapshot(ruleset.version, STATE_FORMAT)
    if found is not None:
        try:
            engine = Engine.restore(ruleset, found["body"], retain=retain)
            if (engine.history is not None) == history:
                return engine, found["fact_seq"], found["tick_seq"]
        except SnapshotError as err:
            log.warning("ignoring the snapshot of %s: %s; replaying everything", found["created_at"], err)
    return Engine(ruleset, history=history, retain=retain), 0, 0


def save_snapshot(store: Store, engine: Engine, fact_seq: int, tick_seq: int) -> None:
    """Store the engine's state as it stands after fact ``fact_seq`` and tick ``tick_seq``."""
    started = time.perf_counter()
    body = engine.snapshot()
    store.save_snapshot(engine.ruleset.version, STATE_FORMAT, fact_seq, tick_seq, body)
    log.info("snapshot at fact %d: %.1f MiB in %.2fs", fact_seq, len(body) / 2**20, time.perf_counter() - started)


def settle_heap(released: bool = False) -> None:
    """Move what the engine holds out of the garbage collector's sight (``gc.freeze``).

    A full collection walks every tracked object: with a large engine state that is a
    pause of hundreds of milliseconds for every request waiting on the write lock
    (~270 ms at 440,000 objects). Evaluation creates no cyclic garbage, so frozen state
    costs nothing; it is refreshed after each rebuild and snapshot, and thawed and
    collected once when an engine is replaced (an engine is cyclic)."""
    if released:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()
