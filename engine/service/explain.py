"""Explaining a stored fact as the engine stood when it arrived: which clocks it moved,
why it did not move the others, and what it decided.

The engine is rebuilt up to the fact with the restart's own replay
(engine.service.recovery.rebuild with ``before_fact``): from a snapshot taken before the
fact if there is one, else from the start of the log, with the ticks and rule changes at
their places. So the rules are the version in force at the fact's place in the log and
the clocks are the ones running just before it. The explanation is
engine.lang.explain's, given those clocks; the fact is then applied to that throwaway
engine to show each clock of its subject before and after, and its stored outcome names
the decisions it caused. Nothing is written.
"""
from __future__ import annotations

import time

from engine.eval.engine import Engine
from engine.lang.explain import explain
from engine.lang.model import RuleSet
from engine.lang.partitions import PartitionMap
from engine.lang.rulescope import RuleScope
from engine.service.recovery import Versions, rebuild
from engine.service.whatif import Bounds, ReplayLimit
from engine.store.store import Store
from schemas.facts import load_stored
from schemas.values import format_instant

DECISION_FIELDS = ("id", "kind", "target", "subject", "at", "level", "activity")
MAX_REASONS = 5             # reasons an ingestion answer gives for a fact that matched nothing


class UnknownFact(KeyError):
    """No stored fact has this id (and source)."""

    def __str__(self) -> str:
        return self.args[0]


class AmbiguousFact(ValueError):
    """Several sources posted a fact with this id: the source must be given."""


def find(store: Store, fact_id: str, source: str | None = None) -> dict:
    """The stored fact ``(source, fact_id)``; without a source, the only one with that id."""
    found = [f for f in store.facts_with_id(fact_id) if source is None or f["fact"]["source"] == source]
    if not found:
        raise UnknownFact(f"no stored fact {fact_id!r}" + (f" from source {source!r}" if source else ""))
    if len(found) > 1:
        sources = ", ".join(f["fact"]["source"] for f in found)
        raise AmbiguousFact(f"facts with id {fact_id!r} were posted by several sources ({sources}): name the source")
    return found[0]


def explain_stored(store: Store, fact_id: str, source: str | None = None, *, ruleset: RuleSet | None = None,
                   versions: Versions | None = None, retain=None, bounds: Bounds = Bounds(),
                   pmap: PartitionMap | None = None) -> dict:
    """The answer for one stored fact (UnknownFact, AmbiguousFact; ReplayLimit past ``bounds``).

    ``ruleset`` is in force where the store records no rule change; ``retain`` must be the
    service's, so that the rebuilt engine forgets the clocks the service forgot. The log
    replayed is that of the fact's partition; ``pmap``: the map, for its share of the Rules."""
    stored = find(store, fact_id, source)
    raw = stored["fact"]
    partition = store.fact_partition(raw["source"], raw["id"]) or store.partition
    store = store.reading(partition)            # replay the log the fact was evaluated in
    started = time.monotonic()

    def progress(count: int) -> None:
        if bounds.max_facts is not None and count > bounds.max_facts:
            raise ReplayLimit(f"explaining this fact replays more than {bounds.max_facts} stored facts")
        if bounds.max_seconds is not None and time.monotonic() - started > bounds.max_seconds:
            raise ReplayLimit(f"replaying up to this fact took more than {bounds.max_seconds:g}s")

    if ruleset is None and not store.cutovers():
        raise ValueError("the store records no rule set put in force: give the rules directory")
    if versions is None:
        versions = Versions(store, *([ruleset] if ruleset else []))
    rebuilt = rebuild(store, ruleset, history=False, retain=retain, progress=progress, versions=versions,
                      before_fact=stored["seq"], scope=RuleScope(pmap, partition) if pmap is not None else None)
    engine = rebuilt.engine
    try:
        running, stopped = engine.clock_keys()
        answer = explain(engine.ruleset, raw, running, stopped)
        before = _clock_states(engine, raw)
        engine.apply_loaded(load_stored(raw))
        after = _clock_states(engine, raw)
        in_force = engine.ruleset.version
    finally:
        engine.close()
    clocks = [{"clock": key, "before": before.get(key), "after": state} for key, state in sorted(after.items())]
    decisions = [_brief(store.decision(did)) for did in stored["outcome"] or []]
    return {"fact": raw["id"], "source": raw["source"], "seq": stored["seq"], "type": raw["type"],
            "subject": raw.get("subject"), "service": raw.get("service"), "time": raw["time"],
            "ruleset": in_force, "replayed": rebuilt.replayed, **answer, "clocks": clocks,
            "decisions": [d for d in decisions if d is not None]}


def nearest_reasons(engine: Engine, fact: dict, limit: int = MAX_REASONS) -> list[dict]:
    """Why a fact just applied moved no clock and matched no Rule: the first failed
    condition of each target of its service, nearest misses first (a failed ``where``, a
    missing clock, the valid period; then a fact type one letter from one the target names;
    then a fact type the target never names), at most
    ``limit``. ``fact`` as loaded (its time a datetime)."""
    if fact.get("service") is None:
        return [{"target": None, "reason": f"the fact names no service, and no clock of subject "
                                           f"{fact.get('subject')!r} takes a {fact.get('type')!r} fact"}]
    running, stopped = engine.clock_keys()
    answer = explain(engine.ruleset, {**fact, "time": format_instant(fact["time"])}, running, stopped)
    if answer.get("reason"):
        return [{"target": None, "reason": answer["reason"]}]
    if not answer["not_affected"]:
        return [{"target": None, "reason": f"no target of service {fact['service']!r} "
                                           f"takes a {fact.get('type')!r} fact, and no Rule matched it"}]
    return sorted(answer["not_affected"], key=lambda item: _distance(item["reason"]))[:limit]


def _distance(reason: str) -> int:
    """How far a target was from taking the fact: 0 a condition failed, 1 the fact's type
    is one letter from one the target names, 2 the target never names its type."""
    if "plays no part" not in reason:
        return 0
    return 1 if "did you mean" in reason else 2


def _clock_states(engine: Engine, fact: dict) -> dict[str, str]:
    """The state of each clock of the fact's subject in its service, by key."""
    subject = fact.get("subject") or fact.get("service") or "-"
    service = fact.get("service")
    out = {}
    for record in engine.state.book.of_subject(subject):
        if service is None or record.target.service == service:
            out[record.key] = getattr(record.clock, "state", "running")
    return out


def _brief(decision: dict | None) -> dict | None:
    return None if decision is None else {k: decision.get(k) for k in DECISION_FIELDS if decision.get(k) is not None}
