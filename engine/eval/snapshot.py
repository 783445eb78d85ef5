"""Engine snapshots: the evaluation state as bytes, so a restart replays only what came after.

A snapshot holds the engine's own state (clocks, schedule, counters, the facts kept in
durable_rules' memory for joins), never the rule set: objects of the rule set are written
as references (``target:email-p1-response``) and bound to the live rule set on load. So a
snapshot is only valid for the rule set it was taken under and for this version of the
engine's code (both are checked: :data:`CODE_VERSION` hashes the source of the packages
that shape the state). Restoring re-asserts the held facts into a fresh durable_rules
ruleset with their matches discarded, which is the state those facts left it in.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import zlib
from pathlib import Path

from engine.lang.model import RuleSet
from engine.eval.engine import Engine

# The Engine attributes a snapshot carries; the rest is derived from the rule set.
STATE = ("now", "now_inclusive", "history", "retain", "_applied", "facts", "facts_by_id", "decisions", "decisions_by_id",
         "notifications", "fired_rules", "_outcomes", "_emitted", "_clocks", "_by_subject", "_heap",
         "_counter", "_seq", "_counts", "_count_firings", "_durable_ids")


def _code_version() -> str:
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for package in ("engine", "schemas"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return "code:" + digest.hexdigest()[:16]


CODE_VERSION = _code_version()


class SnapshotError(Exception):
    """A snapshot that cannot be used: other code, other rules, or damaged bytes."""


def _ruleset_objects(ruleset: RuleSet) -> dict[int, str]:
    """id(object) -> reference, for every rule-set object engine state may point at."""
    refs: dict[int, str] = {id(ruleset): "ruleset"}
    for kind, items in (("target", ruleset.targets), ("calendar", ruleset.calendars),
                        ("escalation", ruleset.escalations), ("rule", ruleset.rules),
                        ("agreement", ruleset.agreements), ("service", ruleset.services)):
        for key, obj in items.items():
            refs[id(obj)] = f"{kind}:{key}"
    for target in ruleset.targets.values():
        refs.setdefault(id(target.calendar), f"target-calendar:{target.id}")
        for level in target.escalations:
            refs.setdefault(id(level), f"target-level:{target.id}:{target.escalations.index(level)}")
    for escalation in ruleset.escalations.values():
        for n, level in enumerate(escalation.levels):
            refs.setdefault(id(level), f"level:{escalation.id}:{n}")
    return refs


def _resolve(ruleset: RuleSet, ref: str):
    kind, _, key = ref.partition(":")
    if kind == "ruleset":
        return ruleset
    if kind == "target-calendar":
        return ruleset.targets[key].calendar
    if kind == "target-level":
        target, n = key.rsplit(":", 1)
        return ruleset.targets[target].escalations[int(n)]
    if kind == "level":
        escalation, n = key.rsplit(":", 1)
        return ruleset.escalations[escalation].levels[int(n)]
    plural = {"target": "targets", "calendar": "calendars", "escalation": "escalations", "rule": "rules",
              "agreement": "agreements", "service": "services"}[kind]
    return getattr(ruleset, plural)[key]


class _Pickler(pickle.Pickler):
    def __init__(self, file, refs: dict[int, str]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._refs = refs

    def persistent_id(self, obj):
        return self._refs.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, ruleset: RuleSet):
        super().__init__(file)
        self._ruleset = ruleset

    def persistent_load(self, ref):
        try:
            return _resolve(self._ruleset, ref)
        except (KeyError, IndexError, ValueError) as err:
            raise SnapshotError(f"the snapshot refers to {ref!r}, which the rule set does not have") from err


def dump(engine: Engine) -> bytes:
    """The engine's state as compressed bytes (the engine must be between calls)."""
    if engine._queue:
        raise SnapshotError("the engine is in the middle of evaluating")
    buffer = io.BytesIO()
    _Pickler(buffer, _ruleset_objects(engine.ruleset)).dump({name: getattr(engine, name) for name in STATE})
    return zlib.compress(buffer.getvalue(), 1)


def load(ruleset: RuleSet, blob: bytes) -> Engine:
    """A new engine for ``ruleset`` in the state ``blob`` was taken in (SnapshotError if unusable)."""
    try:
        state = _Unpickler(io.BytesIO(zlib.decompress(blob)), ruleset).load()
    except SnapshotError:
        raise
    except Exception as err:         # damaged bytes or state of another shape
        raise SnapshotError(f"the snapshot does not load: {err}") from err
    if set(state) != set(STATE):
        raise SnapshotError("the snapshot holds state of another shape")
    engine = Engine(ruleset, history=state["history"], retain=state["retain"])
    for name, value in state.items():
        setattr(engine, name, value)
    engine.rehold()
    return engine
