"""What-if replay: what other rules would have decided over the stored history.

The stored facts and ticks of a period (with a warm-up before it, so that clocks running
into the period exist) are evaluated again under the given rules, in a fresh engine, in
the order they were stored (with partitions, every partition's log, merged by event
time, as one process would have been given them); nothing is written. The decisions that
stand (not retracted) inside the period are compared with those recorded: added,
removed, and moved (the same kind, target, subject, level and cycle at another instant),
then per target met and breached, before and after. Used by ``slm replay`` and ``POST /v1/rules/preview``.
"""
from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from engine.eval.engine import Engine
from engine.lang.model import RuleSet
from engine.lang.partitions import GLOBAL
from engine.service.recovery import stored_log
from engine.store.base import every
from engine.store.store import Store
from schemas.facts import load_stored
from schemas.values import format_instant, parse_instant

DEFAULT_PERIOD = timedelta(days=90)
WARM_UP = timedelta(days=35)            # at least; longer when a goal is longer


class ReplayLimit(Exception):
    """The replay would take more facts or time than it may."""


@dataclass(frozen=True)
class Bounds:
    max_facts: int | None = None
    max_seconds: float | None = None


# what one request of the API may replay: a preview of rules, or the explanation of a stored fact
PREVIEW_BOUNDS = Bounds(max_facts=200_000, max_seconds=60.0)


def what_if(store: Store, ruleset: RuleSet, since: datetime, until: datetime, *,
            bounds: Bounds = Bounds(), progress: Callable[[int], None] = lambda count: None) -> dict:
    """The difference between what was recorded in [since, until) and what ``ruleset``
    decides over the same stored history (ReplayLimit past ``bounds``)."""
    replayed = replay(store, ruleset, since, until, bounds=bounds, progress=progress)
    horizon = replayed.horizon
    before = standing(recorded(store, since, min(until, horizon + timedelta(microseconds=1))), since, horizon)
    after = standing(replayed.decisions, since, horizon)
    return _difference(before, after, ruleset, since, until, replayed.facts)


@dataclass
class Replayed:
    """What a replay of the stored history decided, and the engine as it left it."""

    engine: Engine
    decisions: list[dict]          # every decision replayed, as records (retractions included)
    facts: int                     # the facts of the period replayed
    horizon: datetime              # the latest event time replayed (``since`` if none)


def replay(store: Store, ruleset: RuleSet, since: datetime, until: datetime, *, bounds: Bounds = Bounds(),
           progress: Callable[[int], None] = lambda count: None) -> Replayed:
    """``ruleset`` evaluated over the stored facts and ticks before ``until`` (from a warm-up
    before ``since``), in a fresh engine; nothing is written (ReplayLimit past ``bounds``)."""
    started = time.monotonic()
    warm_up = max([WARM_UP] + [3 * t.goal for t in ruleset.targets.values() if isinstance(t.goal, timedelta)])
    engine = Engine(ruleset, history=False)
    engine.render = False
    replayed, count, horizon = [], 0, None
    for kind, item in _every_log(store):
        if kind == "fact":
            fact = load_stored(item["fact"])
            if not since - warm_up <= fact["time"] < until:
                continue
            replayed += engine.apply_loaded(fact).decisions
            horizon = max(filter(None, [horizon, fact["time"]]))
            count += 1
            progress(count)
            if bounds.max_facts is not None and count > bounds.max_facts:
                raise ReplayLimit(f"the period holds more than {bounds.max_facts} facts; give a shorter one")
            if bounds.max_seconds is not None and time.monotonic() - started > bounds.max_seconds:
                raise ReplayLimit(f"the replay took more than {bounds.max_seconds:g}s; give a shorter period")
        elif kind == "tick" and item[2] < until and engine.now is not None:
            replayed += engine.advance(item[2]).decisions
            horizon = max(filter(None, [horizon, item[2]]))
    return Replayed(engine, [d.as_dict() for d in replayed], count, since if horizon is None else horizon)


def _every_log(store: Store) -> Iterator[tuple[str, Any]]:
    """The stored log of every partition, merged by event time: what one process would
    have been given. ``global``'s is left out: its fed decisions are made again here."""
    partitions = [p for p in store.logged_partitions() if p != GLOBAL] or [store.partition]
    logs = [stored_log(store.reading(partition), 0, 0, []) for partition in partitions]
    return heapq.merge(*logs, key=_when) if len(logs) > 1 else logs[0]


def _when(entry: tuple[str, Any]) -> datetime:
    kind, item = entry
    return parse_instant(item["fact"]["time"]) if kind == "fact" else item[2]


def default_period(now: datetime) -> tuple[datetime, datetime]:
    return now - DEFAULT_PERIOD, now


def recorded(store: Store, since: datetime, until: datetime) -> list[dict]:
    """The decisions recorded in [since, until), and every retraction."""
    return [*every(store.list_decisions, since=since, until=until), *every(store.list_decisions, kind="retracted")]


def standing(decisions: list[dict], since: datetime, until: datetime) -> dict[tuple, dict]:
    """The decisions inside [since, until] that no retraction supersedes, by what they are
    about (:func:`key`: kind, target, subject, level, cycle, activity, repeat)."""
    retracted = {d["data"].get("retracts") for d in decisions if d["kind"] == "retracted"}
    out: dict[tuple, dict] = {}
    for d in decisions:
        if d["kind"] == "retracted" or d["id"] in retracted or not since <= parse_instant(d["at"]) <= until:
            continue
        out.setdefault(key(d), d)
    return out


def key(d: dict) -> tuple:
    return (d["kind"], d.get("target"), d.get("subject"), d.get("level"), d.get("cycle"), d.get("activity"),
            d.get("repeat"))


def _difference(before: dict, after: dict, ruleset: RuleSet, since: datetime, until: datetime, facts: int) -> dict:
    def brief(d: dict) -> dict:
        return {k: d.get(k) for k in ("kind", "target", "subject", "level", "activity", "at")}

    added = [brief(after[k]) for k in sorted(set(after) - set(before), key=str)]
    removed = [brief(before[k]) for k in sorted(set(before) - set(after), key=str)]
    moved = [{**brief(after[k]), "from": before[k]["at"]} for k in sorted(set(before) & set(after), key=str)
             if before[k]["at"] != after[k]["at"]]
    targets = sorted({d.get("target") for d in [*before.values(), *after.values()]
                      if d["kind"] in ("met", "breach") and d.get("target")})
    compliance = [{"target": t, "before": _outcome(before, t), "after": _outcome(after, t)} for t in targets]
    return {"ruleset": ruleset.version, "since": format_instant(since), "until": format_instant(until),
            "facts": facts, "changed": bool(added or removed or moved), "added": added, "removed": removed,
            "moved": moved, "compliance": compliance}


def _outcome(decisions: dict, target: str) -> dict:
    met = sum(1 for d in decisions.values() if d.get("target") == target and d["kind"] == "met")
    breached = sum(1 for d in decisions.values() if d.get("target") == target and d["kind"] == "breach")
    percent = round(float(Fraction(met, met + breached)) * 100, 2) if met + breached else None
    return {"met": met, "breached": breached, "compliance": percent}
