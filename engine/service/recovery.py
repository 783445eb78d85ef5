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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from engine.eval.engine import Engine
from engine.eval.state import STATE_FORMAT, SnapshotError
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from engine.lang.model import RuleSet
from engine.service.collector import collector_held
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


class Versions:
    """The rule sets a store has seen, loaded from their stored files on first use."""

    def __init__(self, store: Store, *known: RuleSet):
        self.store = store
        self._loaded: dict[str, RuleSet] = {r.version: r for r in known}

    def add(self, ruleset: RuleSet) -> None:
        self._loaded[ruleset.version] = ruleset

    def get(self, version: str | None) -> RuleSet | None:
        """The rule set of that version; None if it is not stored, or not named (a decision
        that records no version, as traces look it up)."""
        if version is None:
            return None                           # every stored one has a version: none is found
        if version not in self._loaded:
            files = self.store.ruleset_files(version)
            if files is None:
                return None
            try:
                self._loaded[version] = load_texts(files, root=f"version {version[:19]}")
            except RuleSetError as err:           # stored by an older release that accepted it
                log.warning("stored rule set %s no longer loads: %s", version[:19], err.report())
                return None
        return self._loaded[version]


def rebuild(store: Store, ruleset: RuleSet | None, *, history: bool, retain: timedelta | None,
            snapshots: bool = True, progress: Callable[[int], None] = lambda count: None,
            versions: Versions | None = None, before_fact: int | None = None,
            scope: Callable[[RuleSet], RuleSet] | None = None) -> Rebuilt:
    """The engine as the stored log leaves it: from the newest usable snapshot (if
    ``snapshots``), then the facts, ticks and rule changes stored after it, each at its
    place. ``ruleset`` is in force where the store records none (an empty store); None
    where the store records one (engine.service.explain).

    ``before_fact``: stop just before the fact of that seq, as the engine stood when it
    arrived (what explaining a stored fact needs); a snapshot taken later is not used.

    ``scope``: the share of each rule set the engine runs (a partition's, engine.lang.rulescope)."""
    with collector_held():
        return _rebuild(store, ruleset, history=history, retain=retain, snapshots=snapshots, progress=progress,
                        versions=versions, before_fact=before_fact, scope=scope)


def _rebuild(store: Store, ruleset: RuleSet | None, *, history: bool, retain: timedelta | None, snapshots: bool,
             progress: Callable[[int], None], versions: Versions | None, before_fact: int | None,
             scope: Callable[[RuleSet], RuleSet] | None) -> Rebuilt:
    started = time.perf_counter()
    versions = versions or Versions(store, *([] if ruleset is None else [ruleset]))
    cutovers = store.cutovers()
    restored = (_restore_snapshot(store, cutovers, versions, history, retain, before_fact, scope)
                if snapshots else None)
    if restored is None:
        first = versions.get(cutovers[0]["ruleset"]) if cutovers else ruleset
        if first is None:
            raise RuntimeError(f"the rule set first in force ({cutovers[0]['ruleset'][:19]}…) is not stored")
        engine, after_fact, after_tick = Engine(first, history=history, retain=retain, scope=scope), 0, 0
        cutovers = cutovers[1:]
    else:
        engine, after_fact, after_tick = restored
    cutovers = [c for c in cutovers if _after((c["after_fact"], c["after_tick"]), after_fact, after_tick)]
    engine.render = False             # what replay decides is stored already: render nothing
    last_fact, last_tick, count = after_fact, after_tick, 0
    try:
        for kind, item in stored_log(store, after_fact, after_tick, cutovers):
            if kind == "fact" and before_fact is not None and item["seq"] >= before_fact:
                break
            if kind == "fact":
                engine.apply_loaded(load_stored(item["fact"]))
                count, last_fact = count + 1, item["seq"]
                progress(count)
            elif kind == "tick":
                engine.advance(item[2])
                last_tick = item[0]
            else:
                changed = versions.get(item["ruleset"])
                if changed is None:
                    raise RuntimeError(f"the rule set put in force at {item['at']} is not stored")
                engine.cut_over(changed, item["at"])
    except BaseException:
        engine.close()             # a replay stopped part-way (a bound, a bad store) frees its networks
        raise
    engine.render = True
    seconds = time.perf_counter() - started
    log.info("rebuilt state from %s, %d facts in %.1fs",
             f"a snapshot at fact {after_fact}" if after_fact else "scratch", count, seconds)
    return Rebuilt(engine, last_fact, last_tick, count, seconds)


def stored_log(store: Store, after_fact: int, after_tick: int, cutovers: list[dict]):
    """The stored log after a place, in the order it happened: ``("fact", stored fact)``,
    ``("tick", (seq, after_fact, until))`` and ``("cutover", change)``. A tick or rule change
    stored after fact N comes before fact N + 1; of a tick and a change after the same fact,
    the tick comes first if the change was made after it."""
    ticks = store.ticks(after_seq=after_tick)
    changes = list(cutovers)

    def before(fact_seq: int | None):
        while True:
            tick = ticks[0] if ticks and (fact_seq is None or ticks[0][1] < fact_seq) else None
            change = changes[0] if changes and (fact_seq is None or changes[0]["after_fact"] < fact_seq) else None
            if change is not None and (tick is None or tick[0] > change["after_tick"]):
                yield "cutover", changes.pop(0)
            elif tick is not None:
                yield "tick", ticks.pop(0)
            else:
                return

    for stored in store.replayed_facts(after_seq=after_fact):
        yield from before(stored["seq"])
        yield "fact", stored
    yield from before(None)


def _after(place: tuple[int, int], fact: int, tick: int) -> bool:
    """Whether a rule change at ``place`` (after fact, after tick) lies after that fact and tick."""
    return place[0] > fact or (place[0] == fact and place[1] > tick)


def _restore_snapshot(store: Store, cutovers: list[dict], versions: Versions, history: bool,
                      retain: timedelta | None, before_fact: int | None = None,
                      scope: Callable[[RuleSet], RuleSet] | None = None) -> tuple[Engine, int, int] | None:
    """(engine, fact seq, tick seq) from the newest usable snapshot, if any: one in this
    state format, taken under the rule set in force at its place in the log (and before
    fact ``before_fact``, if given)."""
    found = store.latest_snapshot(None, STATE_FORMAT)
    if found is None or (before_fact is not None and found["fact_seq"] >= before_fact):
        return None
    in_force = [c["ruleset"] for c in cutovers if not _after((c["after_fact"], c["after_tick"]),
                                                             found["fact_seq"], found["tick_seq"])]
    try:
        if not in_force or in_force[-1] != found["ruleset"]:
            raise SnapshotError("it was taken under another rule set than the log has in force there")
        ruleset = versions.get(found["ruleset"])
        if ruleset is None:
            raise SnapshotError("its rule set is not stored")
        engine = Engine.restore(ruleset, found["body"], retain=retain, versions=versions.get, scope=scope)
        if (engine.state.history is not None) == history:
            return engine, found["fact_seq"], found["tick_seq"]
    except SnapshotError as err:
        log.warning("ignoring the snapshot of %s: %s; replaying everything", found["created_at"], err)
    return None


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
