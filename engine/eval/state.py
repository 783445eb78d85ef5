"""The engine's state as one object, and as plain data for snapshots.

:class:`EngineState` is everything an :class:`engine.eval.engine.Engine` changes while it
evaluates; everything else in an engine is derived from its rule set. A snapshot is that
state as JSON (compressed), so a restart replays only what came after it, and loading a
snapshot can never run code (JSON holds data only).

What refers to the rule set is written as ids (a clock names its target) and bound to the
live rule set on load, so a snapshot is valid for the rule set it was taken under and for
:data:`STATE_FORMAT`. The format is versioned explicitly: a code change that keeps the
format restores from existing snapshots; one that changes it bumps the number, and
older snapshots are ignored (the service then replays everything).
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from engine.eval.actions import CountKey, View
from engine.eval.book import ClockBook, ClockRecord
from engine.eval.clock import Bounds, Clock, Transition
from engine.eval.clockstate import clock_in, clock_out
from engine.eval.clockstate import loaded_instant as _p
from engine.eval.clockstate import saved_instant as _t
from engine.lang.model import RuleSet, Target
from schemas.facts import dump_fact
from schemas.records import Decision, fact_ref
from schemas.values import parse_instant

STATE_FORMAT = "state-v5"     # v3: the earliest start_at facts (``firsts``), posted maintenance (``held``);
#                               v4: facts referred to by source and id (``fact:<source>#<id>``);
#                               v5: a transition may carry the deadline its fact posted (goal: {due})
#                               and the calendar it chose (calendar: {by}); a clock its ticket's calendar


class SnapshotError(Exception):
    """A snapshot that cannot be used: another format, other rules, or damaged bytes."""


@dataclass
class History:
    """What an engine keeps of its own output when asked to (tests, scenarios, ``slm test``);
    the service keeps none: its store has it."""

    facts_by_ref: dict[str, dict[str, Any]] = field(default_factory=dict)     # "fact:<source>#<id>" -> fact
    decisions: list[Decision] = field(default_factory=list)
    decisions_by_id: dict[str, Decision] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], list[str]] = field(default_factory=dict)


@dataclass
class EngineState:
    """Everything an engine changes while evaluating."""

    now: datetime | None = None
    now_inclusive: bool = False           # deadlines at ``now`` have fired too
    applied: int = 0                      # facts applied
    seq: int = 0                          # the last durable_rules id given to a posted fact
    book: ClockBook = field(default_factory=ClockBook)
    held: dict[str, dict[str, Any]] = field(default_factory=dict)   # facts kept in durable_rules for joins
    counts: dict[CountKey, list[View]] = field(default_factory=dict)   # (rule, group) -> matches in its window
    count_firings: dict[CountKey, int] = field(default_factory=dict)
    emitted: set[str] = field(default_factory=set)              # ids of Rule decisions made
    dependents: dict[str, list[Decision]] = field(default_factory=dict)   # decision id -> Rule decisions on it
    fired_rules: set[str] = field(default_factory=set)
    # clock key -> (time, "fact:<source>#<id>") of the earliest fact its target's ``start_at`` names
    firsts: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    history: History | None = None

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


# ---- to plain data ----------------------------------------------------------------------

def dump(state: EngineState, ruleset: RuleSet) -> bytes:
    """The state as compressed JSON (the engine must be between calls)."""
    book = state.book
    body = {
        "format": STATE_FORMAT,
        "ruleset": ruleset.version,
        "now": _t(state.now), "now_inclusive": state.now_inclusive, "applied": state.applied, "seq": state.seq,
        "clocks": [_record_out(r) for r in book.records.values()],
        "by_subject": book.by_subject,
        "heap": [[_t(d), c, k] for d, c, k in book.heap],
        "counter": book.counter,
        "held": state.held,
        "counts": [[rule, list(group), [_view_out(v) for v in views]] for (rule, group), views in state.counts.items()],
        "count_firings": [[rule, list(group), n] for (rule, group), n in state.count_firings.items()],
        "emitted": sorted(state.emitted),
        "dependents": {k: [_decision_out(d) for d in v] for k, v in state.dependents.items()},
        "fired_rules": sorted(state.fired_rules),
        "firsts": {key: [_t(at), fact] for key, (at, fact) in state.firsts.items()},
        "history": None if state.history is None else _history_out(state.history),
    }
    # orjson: the same bytes as json in a fifth of the time, taken under the write lock
    return zlib.compress(orjson.dumps(body), 1)


def _record_out(record: ClockRecord) -> dict[str, Any]:
    return {
        "key": record.key, "target": record.target.id, "subject": record.subject,
        "transitions": [[_t(t.at), t.seq, t.action, t.fact, t.subject]
                        + ([_t(t.due), t.calendar] if t.calendar else [_t(t.due)] if t.due else [])
                        for t in record.transitions],
        "signals": {s: [[_t(at), seq, action] for at, seq, action in v] for s, v in record.signals.items()},
        "issued": [[list(k), _decision_out(d)] for k, d in record.issued.items()],
        "revisions": [[list(k), n] for k, n in record.revisions.items()],
        "running_fact": record.running_fact, "last_transition": _t(record.last_transition),
        "last_fired": _t(record.last_fired),
        "scheduled": None if record.scheduled is None else [_t(record.scheduled[0]), record.scheduled[1]],
        "carried": record.carried,
        "versions": [[_t(at), version] for at, version in record.versions],
        "clock": clock_out(record.clock),
        "settled": _t(record.settled), "base": record.base,
    }


def _decision_out(decision: Decision) -> dict[str, Any]:
    out = decision.as_dict()
    out["at"] = _t(decision.at)
    return out


def _view_out(view: View) -> View:
    return {**view, "_at": _t(view["_at"])}


def _history_out(history: History) -> dict[str, Any]:
    return {"facts": [dump_fact(f) for f in history.facts_by_ref.values()],
            "decisions": [_decision_out(d) for d in history.decisions],
            "outcomes": [[s, i, ids] for (s, i), ids in history.outcomes.items()]}


# ---- from plain data ----------------------------------------------------------------------

MakeClock = Callable[[Target, Bounds | None], Clock]      # a fresh clock of a target (for a window)


def load(blob: bytes, ruleset: RuleSet, version: Callable[[str], RuleSet], make_clock: MakeClock) -> EngineState:
    """The state ``blob`` holds, bound to ``ruleset`` (the version in force; SnapshotError if
    unusable). ``version(hash)`` gives the rule set of a version clocks run under;
    ``make_clock(target, window)`` builds a fresh clock as the engine would."""
    try:
        body = orjson.loads(zlib.decompress(blob))
    except (zlib.error, ValueError) as err:
        raise SnapshotError(f"the snapshot does not load: {err}") from err
    if not isinstance(body, dict) or body.get("format") != STATE_FORMAT:
        raise SnapshotError(f"the snapshot is of another state format (this code reads {STATE_FORMAT})")
    if body.get("ruleset") != ruleset.version:
        raise SnapshotError("the snapshot was taken under another rule set")
    try:
        return _state_in(body, version, make_clock)
    except KeyError as err:
        raise SnapshotError(f"the snapshot refers to {err}, which the rule set or the format does not have") from err
    except (TypeError, ValueError, IndexError) as err:
        raise SnapshotError(f"the snapshot holds state of another shape: {err}") from err


def _at(value: str) -> datetime:
    """:func:`_p` of an instant that is always there."""
    return datetime.fromisoformat(value)


def _state_in(body: dict[str, Any], version: Callable[[str], RuleSet], make_clock: MakeClock) -> EngineState:
    book = ClockBook()
    for raw in body["clocks"]:
        record = _record_in(raw, version, make_clock)
        book.records[record.key] = record
    book.by_subject = {s: list(keys) for s, keys in body["by_subject"].items()}
    book.heap = [(_at(d), c, k) for d, c, k in body["heap"]]      # a valid heap, as written
    book.counter = body["counter"]
    book.rebuild_finished()
    state = EngineState(
        now=_p(body["now"]), now_inclusive=body["now_inclusive"], applied=body["applied"], seq=body["seq"],
        book=book, held=body["held"],
        counts={(rule, tuple(group)): [{**v, "_at": _at(v["_at"])} for v in views]
                for rule, group, views in body["counts"]},
        count_firings={(rule, tuple(group)): n for rule, group, n in body["count_firings"]},
        emitted=set(body["emitted"]),
        dependents={k: [_decision_in(d) for d in v] for k, v in body["dependents"].items()},
        fired_rules=set(body["fired_rules"]),
        firsts={key: (_at(at), fact) for key, (at, fact) in body["firsts"].items()},
        history=None if body["history"] is None else _history_in(body["history"]))
    return state


def _record_in(raw: dict[str, Any], version: Callable[[str], RuleSet], make_clock: MakeClock) -> ClockRecord:
    versions = [(_p(at), name) for at, name in raw["versions"]]
    target = version(versions[-1][1]).targets[raw["target"]]
    saved = raw["clock"]
    window = saved.get("window")
    clock = make_clock(target, None if window is None else (_at(window[0]), _at(window[1]), window[2]))
    clock_in(clock, saved)
    scheduled = raw["scheduled"]
    return ClockRecord(
        key=raw["key"], target=target, subject=raw["subject"], clock=clock,
        transitions=[Transition(_at(at), seq, action, fact, subject, _p(more[0]) if more else None,
                                more[1] if len(more) > 1 else None)
                     for at, seq, action, fact, subject, *more in raw["transitions"]],
        signals={s: [(_at(at), seq, action) for at, seq, action in v] for s, v in raw["signals"].items()},
        issued={tuple(k): _decision_in(d) for k, d in raw["issued"]},
        revisions={tuple(k): n for k, n in raw["revisions"]},
        running_fact=raw["running_fact"], last_transition=_p(raw["last_transition"]),
        last_fired=_p(raw["last_fired"]),
        scheduled=None if scheduled is None else (_at(scheduled[0]), scheduled[1]),
        carried=raw["carried"], versions=versions, settled=_p(raw.get("settled")), base=raw.get("base"))


def _decision_in(raw: dict[str, Any]) -> Decision:
    return Decision(**{**raw, "at": parse_instant(raw["at"])})


def _history_in(raw: dict[str, Any]) -> History:
    from schemas.facts import FactSchema
    schema = FactSchema()
    history = History()
    for fact in raw["facts"]:
        loaded = schema.load(fact)
        history.facts_by_ref.setdefault(fact_ref(loaded["source"], loaded["id"]), loaded)
    for d in raw["decisions"]:
        decision = _decision_in(d)
        history.decisions.append(decision)
        history.decisions_by_id[decision.id] = decision
    history.outcomes = {(s, i): ids for s, i, ids in raw["outcomes"]}
    return history
