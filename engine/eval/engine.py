"""The Engine: facts in, decisions and notifications out, in event time.

durable_rules matches (see engine.compiler); this module acts on the matches: it keeps
the clocks, fires their deadlines in event-time order, turns readings into decisions,
feeds decisions back in as ``decision.<kind>`` facts, and derives notifications.

Deterministic by construction: no wall clock, no threads, matches handled in a stable
order, ids derived from what a decision is about.
"""
from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import durable_rules_engine
from durable.engine import MessageObservedException
from marshmallow import ValidationError

from schemas.facts import FactSchema, dump_fact
from schemas.values import format_duration, format_instant, parse_instant

from engine.eval.clock import DurationClock, Reading, Transition, WindowClock, escalation_marks, month_span, window_of
from engine.eval.compiler import (RULESET, allows, clock_roles, compile_ruleset, join_filter, matched_types,
                       required_strings, retained_types)
from engine.lang.errors import FactError
from engine.lang.model import Origin, RuleSet, Target
from engine.notify.route import notifications_for

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
PRUNE_EVERY = 1000          # facts between sweeps for finished clocks (with ``retain``)
PHASES = {"applies": 0, "life": 1, "down": 1, "up": 1, "over": 1, "under": 1, "escalate": 2, "rule": 3}


# durable_rules' alpha network has fixed-size link tables (src/rules/rules.h, rete.c): a test
# node links at most NEXT_BUCKET_LENGTH (512) other tests, in an open-addressed hash set whose
# probes never stop once it is full (create_ruleset, and every fact that reaches the node, then
# loop for ever); NEXT_LIST_LENGTH (128) ``$nex`` tests or ``$or`` ends; BETA_LIST_LENGTH (256)
# rules ending on it. Rules are split over as many rulesets as keep every table below its size;
# the hash set to 480, as its probes start in its first 32 slots: a fact's every field is looked
# up there, and in a set filled past that, each lookup walks nearly all of it (at 10,000
# targets, 511 made facts 1.8 times slower).
_LINKS = {"next": 480, "nex": 127, "beta": 255}


class _Shard:
    """The rules of one durable_rules ruleset, and the alpha network durable_rules will build
    for them, counted: the tests it shares (same parent, same test) and each node's links."""

    def __init__(self):
        self.rules: dict[str, dict] = {}
        self._nodes: dict[tuple, int] = {}
        self._links: dict[tuple, int] = {}
        self._ids = itertools.count(1)            # 0: the root every pattern starts from

    def take(self, name: str, spec: dict) -> bool:
        """Add the rule if every table stays within its size; say whether it was added."""
        nodes: dict[tuple, int] = {}
        links: dict[tuple, int] = {}

        def link(node: int, kind: str) -> None:
            links[node, kind] = links.get((node, kind), 0) + 1

        def alpha(test: dict, parent: int) -> int:        # as rete.c's createAlpha
            (op, value), = test.items()
            if op == "$and":
                for part in value:
                    parent = alpha(part, parent)
                return parent
            if op == "$or":                               # a node of its own, each branch linked to it
                forward = next(self._ids)
                for part in value:
                    link(alpha(part, parent), "nex")
                return forward
            key = (parent, json.dumps(test, sort_keys=True))
            found = self._nodes.get(key) or nodes.get(key)
            if found is None:
                found = nodes[key] = next(self._ids)
                link(parent, "nex" if op == "$nex" else "next")
            return found

        for condition in spec["all"]:
            (test,) = condition.values()
            link(alpha(test, 0), "beta")
        if any(self._links.get(key, 0) + count > _LINKS[key[1]] for key, count in links.items()):
            return False
        self._nodes.update(nodes)
        for key, count in links.items():
            self._links[key] = self._links.get(key, 0) + count
        self.rules[name] = spec
        return True


class _Ruleset:
    """One durable_rules ruleset, driven synchronously (see :class:`_Rules`)."""

    def __init__(self, name: str, rules: dict):
        plain = {rule: {k: v for k, v in spec.items() if k != "run"} for rule, spec in rules.items()}
        self.handle = durable_rules_engine.create_ruleset(name, json.dumps(plain, ensure_ascii=False))
        self.types = matched_types({RULESET: rules})                     # None: any type
        self.required = required_strings({RULESET: rules}) or {}
        self.joins = matched_types({RULESET: {r: s for r, s in rules.items() if len(s["all"]) > 1}})

    def posts(self, fact_type: str) -> bool:
        return self.types is None or fact_type in self.types

    def may_match(self, fact: dict) -> bool:
        """False when the fact has a string where all this ruleset's patterns for its type
        need another (see :func:`required_strings`): asking would find nothing."""
        return allows(fact, self.required.get(fact["type"], {}).items())

    def holds(self, fact_type: str) -> bool:
        """Could a join of this ruleset need a fact of this type later?"""
        return self.joins is None or fact_type in self.joins

    def assert_fact(self, fact: dict):
        return durable_rules_engine.assert_fact(self.handle, _json(fact))

    def retract_fact(self, fact: dict) -> list | None:
        return self.outcome(durable_rules_engine.retract_fact(self.handle, _json(fact)))

    def outcome(self, result) -> list | None:
        if result[0] == 1:
            return None
        return self._actions(0 if result[0] == 3 else result[1])

    def _actions(self, state_offset: int) -> list:
        matches = []
        started = durable_rules_engine.start_action_for_state(self.handle, state_offset)
        if not started:
            return matches
        state, message = started
        while message:
            matches.append(next(iter(json.loads(message).items())))
            durable_rules_engine.update_state(self.handle, state)
            message = durable_rules_engine.complete_and_start_action(self.handle, state_offset)
        return matches


class _Rules:
    """The compiled rules as durable_rules rulesets, driven synchronously: assert or retract a
    fact, get back the matches it caused as ``(rule name, payload)``, in durable_rules' own
    order within a ruleset.

    One ruleset when durable_rules' tables allow (see ``_LINKS``), else several, each rule
    whole in one of them (the first it fits in); a fact goes to those whose rules name its
    type, and stays only in those whose joins may need it.

    This is what durable_rules' ``Host.assert_fact``/``retract_fact`` do for a ruleset whose
    actions only record their match, over the same extension calls (assert, start the
    state's actions, update the state, complete and start the next), less the Host's
    per-call machinery the engine never uses: background timer threads, action leases,
    closures, an exception that serialises the whole fact to JSON when nothing matched,
    and decoding then re-encoding the session state around every action. Each payload is
    decoded afresh from durable_rules' JSON, so the engine may keep it without copying.

    durable_rules knows a fact in its memory by a 32-bit hash of its ``id`` alone: a new
    fact whose id hashes like a held one's is refused as "already observed" (nothing else
    changes), and with tens of thousands of facts held that happens. The engine's ids are
    its own (rules read ``fid``), so such a fact is asserted again under a suffixed id.
    """

    def __init__(self, definition: dict):
        (name, rules), = definition.items()
        shards = [_Shard()]
        for rule, spec in rules.items():
            if not any(shard.take(rule, spec) for shard in shards):
                shards.append(_Shard())
                if not shards[-1].take(rule, spec):
                    raise ValueError(f"{rule}: too many tests for durable_rules in one rule")
        self.rulesets = [_Ruleset(name if n == 0 else f"{name}_{n}", shard.rules)
                         for n, shard in enumerate(shards)]
        self._routes: dict[str, list[_Ruleset]] = {}

    def _route(self, fact: dict) -> list[_Ruleset]:
        """The rulesets a fact could match in: those naming its type; of several, only
        those its string fields allow (each pattern of a ruleset lives in one of them)."""
        fact_type = fact["type"]
        if fact_type not in self._routes:
            self._routes[fact_type] = [r for r in self.rulesets if r.posts(fact_type)]
        candidates = self._routes[fact_type]
        if len(candidates) == 1:
            return candidates
        return [r for r in candidates if r.may_match(fact)]

    def assert_fact(self, fact: dict) -> tuple[list | None, dict]:
        """(The matches, or None when durable_rules did not handle the fact and so keeps
        nothing of it; the fact as durable_rules holds it, to retract it by.)"""
        held = fact
        for attempt in range(1, 100):
            results = []
            for ruleset in self._route(fact):
                result = ruleset.assert_fact(held)
                if result[0] == 2:                       # refused: out of all, again as another id
                    for taken, earlier in results:
                        taken.outcome(earlier)           # its matches are dropped, not left queued
                        taken.retract_fact(held)
                    break
                results.append((ruleset, result))
            else:
                matches = None
                for ruleset, result in results:
                    found = ruleset.outcome(result)
                    if found is not None:
                        matches = (matches or []) + found
                    if not ruleset.holds(fact["type"]):
                        ruleset.retract_fact(held)
                return matches, held
            held = {**fact, "id": f"{fact['id']}~{attempt}"}
        raise MessageObservedException(fact)

    def retract_fact(self, held: dict) -> None:
        for ruleset in self._route(held):
            if ruleset.holds(held["type"]):
                ruleset.retract_fact(held)


def _json(fact: dict) -> str:
    return json.dumps(fact, ensure_ascii=False)


@dataclass
class Outcome:
    """What one call changed: the decisions and notifications it produced."""

    decisions: list[dict] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    duplicate: bool = False


@dataclass
class _ClockRecord:
    key: str
    target: Target
    subject: str
    clock: DurationClock | WindowClock
    transitions: list[Transition] = field(default_factory=list)
    signals: dict = field(default_factory=dict)         # window clocks: subject -> sorted (at, seq, action)
    issued: dict = field(default_factory=dict)          # reading key -> decision
    revisions: dict = field(default_factory=dict)       # reading key -> times superseded
    escalations: dict = field(default_factory=dict)     # escalation id -> levels
    running_fact: dict | None = None
    last_transition: datetime | None = None
    last_fired: datetime | None = None
    scheduled: tuple | None = None


def _changes_state(record: _ClockRecord, transition: Transition) -> bool:
    """False for a late window signal that leaves its subject as it was: an ``up`` for a
    subject already up then. Replaying the window would read exactly as it does now, so
    a late healthy sample (the common case: many monitors, slightly out of order) costs
    no replay of the window's whole history."""
    if transition.subject is None or transition.action != "up":
        return True
    history = record.signals[transition.subject]
    before = bisect.bisect_left(history, (transition.at, transition.seq, transition.action))
    return before > 0 and history[before - 1][2] == "down"


class Engine:
    """Forward chaining over one rule set. Not thread-safe: callers serialise."""

    def __init__(self, ruleset: RuleSet, history: bool = True, retain: timedelta | None = None):
        """``history=False`` (the service): keep no record of facts, decisions and
        notifications beyond what evaluation needs; the caller stores them and detects
        duplicate facts itself.

        ``retain``: forget a clock that finished (stopped, or its window closed) this long
        before the engine's time; a fact arriving later for it is ignored. With both, memory
        follows the clocks that run, not the length of the history."""
        self.ruleset = ruleset
        self.history = history
        self.retain = retain
        self._applied = 0
        self.now: datetime | None = None
        self.now_inclusive = False
        self.facts: dict[tuple[str, str], dict] = {}
        self.facts_by_id: dict[str, dict] = {}
        self.decisions: list[dict] = []
        self.decisions_by_id: dict[str, dict] = {}
        self.notifications: list[dict] = []
        self.fired_rules: set[str] = set()
        self._outcomes: dict[tuple[str, str], list[str]] = {}
        self._emitted: set[str] = set()      # ids of Rule decisions (a clock guards its own)
        self._clocks: dict[str, _ClockRecord] = {}
        self._by_subject: dict[str, list[str]] = {}
        self._heap: list = []
        self._counter = itertools.count()
        self._seq = itertools.count(1)
        self._queue: deque = deque()
        self._counts: dict[tuple, list] = {}
        self._count_firings: dict[tuple, int] = {}
        self._retained = retained_types(ruleset)
        self._roles = {t.id: clock_roles(t.spec) for t in ruleset.targets.values() if t.measure == "duration"}
        self._durable_ids: dict[str, dict] = {}       # id -> the fact as held in durable_rules' memory
        self._may_join = join_filter(ruleset)
        definition = compile_ruleset(ruleset)
        self._matched = matched_types(definition)        # None: any type may match
        self._rules = _Rules(definition)
        self._outcome = Outcome()
        self._schema = FactSchema()

    # -- public API -----------------------------------------------------------------
    def validate(self, raw: dict) -> dict:
        """Check a fact against the schema; raises FactError naming each bad field."""
        try:
            return self._schema.load(raw)
        except ValidationError as err:
            raise FactError(_flatten(err.messages)) from None

    def apply(self, raw: dict) -> Outcome:
        """Apply one fact (a dict as posted). A repeated (source, id) changes nothing."""
        return self.apply_loaded(self.validate(raw))

    def apply_loaded(self, fact: dict) -> Outcome:
        """Apply a fact already loaded by :meth:`validate` (or ``FactSchema``)."""
        key = (fact["source"], fact["id"])
        if self.history and key in self.facts:
            return Outcome([self.decisions_by_id[i] for i in self._outcomes[key]], [], duplicate=True)
        self._outcome = Outcome()
        at = fact["time"]
        if self.now is None or at > self.now:
            self._advance(at, inclusive=False)
            self.now, self.now_inclusive = at, False
        if self.history:
            self.facts[key] = fact
            self.facts_by_id.setdefault(fact["id"], fact)
        self._post(self._durable_fact(fact))
        self._drain()
        if self.history:
            self._outcomes[key] = [d["id"] for d in self._outcome.decisions]
        self._applied += 1
        if self.retain is not None and self._applied % PRUNE_EVERY == 0:
            self.prune()
        return self._outcome

    def prune(self) -> int:
        """Forget the clocks that finished more than ``retain`` ago; how many were."""
        if self.retain is None or self.now is None:
            return 0
        horizon = self.now - self.retain
        gone = 0
        for key, record in list(self._clocks.items()):
            clock = record.clock
            if clock.running or record.scheduled is not None or record.running_fact is not None:
                continue
            last = max(filter(None, [record.last_transition, record.last_fired,
                                     getattr(clock, "window_end", None)]), default=None)
            if last is None or last >= horizon:
                continue
            del self._clocks[key]
            keys = self._by_subject.get(record.subject)
            if keys and key in keys:
                keys.remove(key)
                if not keys:
                    del self._by_subject[record.subject]
            gone += 1
        return gone

    def advance(self, until: datetime) -> Outcome:
        """Move event time to ``until``: every deadline at or before it fires."""
        self._outcome = Outcome()
        if self.now is None or until > self.now or (until == self.now and not self.now_inclusive):
            self._advance(until, inclusive=True)
            self.now, self.now_inclusive = until, True
        else:       # overdue deadlines (marks a late fact added in the past) fire now
            self._advance(self.now, inclusive=self.now_inclusive)
        return self._outcome

    def next_deadline(self) -> datetime | None:
        """The earliest instant at which some clock will decide something."""
        while self._heap:
            deadline, counter, key = self._heap[0]
            record = self._clocks.get(key)             # None: a clock forgotten under ``retain``
            if record is not None and record.scheduled == (deadline, counter):
                return deadline
            heapq.heappop(self._heap)
        return None

    def clocks(self, at: datetime | None = None) -> list[dict]:
        """Running clocks with their readings at ``at`` (default: the engine's time); ``at``
        must not pass a pending deadline (the service fires those first)."""
        now = max(filter(None, [at, self.now])) if (at or self.now) else EPOCH
        out = []
        for record in self._clocks.values():
            clock = record.clock
            if not clock.running or clock.cycle == 0:
                continue
            counted = clock.counted_at(now)
            out.append({"clock": record.key, "target": record.target.id, "subject": record.subject,
                        "service": record.target.service, "agreement": record.target.agreement.id,
                        "cycle": clock.cycle, "state": getattr(clock, "state", "running"),
                        "counted": format_duration(counted), "budget": format_duration(clock.budget),
                        "remaining": format_duration(max(clock.budget - counted, timedelta(0))),
                        "next_deadline": _instant(clock.next_deadline()),
                        "shadow": record.target.agreement.shadow})
        return sorted(out, key=lambda c: c["clock"])

    def window_reading(self, target_id: str, label: str) -> tuple[timedelta, timedelta] | None:
        """(down time counted so far, service time) of an availability/threshold window."""
        record = self._clocks.get(f"{target_id}/{label}")
        if record is None:
            return self._quiet_window(target_id, label)
        if not isinstance(record.clock, WindowClock):
            return None
        clock = record.clock
        until = min(self.now or clock.window_end, clock.window_end)
        return clock.counted_at(until), clock.service_time

    def _quiet_window(self, target_id: str, label: str) -> tuple[timedelta, timedelta] | None:
        """A month window nothing went down in: no clock was ever made for it."""
        target = self.ruleset.targets.get(target_id)
        if target is None or target.measure == "duration" or target.spec.get("window", "month") != "month":
            return None
        try:
            start, end = month_span(label, target.calendar.timezone)
        except ValueError:
            return None
        if self.now is None or self.now <= start:
            return None
        if self._forgotten(end):
            return None            # maybe forgotten, not quiet: unknown
        return timedelta(0), target.calendar.counted(start, end)

    def trace(self, decision_id: str) -> dict:
        from engine.eval.trace import build_trace
        return build_trace(self, decision_id)

    # -- durable_rules --------------------------------------------------------------
    def _durable_fact(self, fact: dict) -> dict:
        durable = {"sid": "0", "id": f"f{next(self._seq)}", "fid": fact["id"], "source": fact["source"],
                   "type": fact["type"], "ts": fact["time"].timestamp(), "time": format_instant(fact["time"]),
                   "data": fact["data"]}
        for name in ("subject", "service"):
            if fact.get(name) is not None:
                durable[name] = fact[name]
        return durable

    def _posts(self, fact_type: str) -> bool:
        """Could a fact of this type match anything? (No rule names it: it cannot.)"""
        return self._matched is None or fact_type in self._matched

    def _post(self, durable: dict) -> None:
        """Assert a fact; collect the matches; retract it unless a join may need it later.

        durable_rules only reads what it is given (it serialises it to JSON), so the fact is
        passed as is. A fact no rule could match is not posted; one durable_rules did not
        handle is not in its memory, so there is nothing to retract; one that no join could
        ever use is retracted at once.
        """
        if not self._posts(durable["type"]):
            return
        matches, held = self._rules.assert_fact(durable)
        if matches is None:
            return
        for name, facts in sorted(matches, key=lambda m: (PHASES[m[0].split(":", 1)[0]], m[0])):
            self._queue.append((name, facts))
        if durable["type"] in self._retained and self._may_join(durable):
            self._durable_ids[durable["id"]] = held
        else:
            self._rules.retract_fact(held)

    def rehold(self) -> None:
        """Put the facts a join may still use back into a fresh durable_rules memory (after
        a snapshot is loaded). Their matches were acted on when first asserted: discarded."""
        for key, held in list(self._durable_ids.items()):
            _, self._durable_ids[key] = self._rules.assert_fact({**held, "id": key})

    def _retract(self, durable: dict) -> None:
        """Take a fact out of durable_rules' memory, if it is there. (A retraction matches
        nothing: no rule negates.)"""
        held = self._durable_ids.pop(durable["id"], None)
        if held is not None:
            self._rules.retract_fact(held)

    def _drain(self) -> None:
        while self._queue:
            name, facts = self._queue.popleft()
            self.fired_rules.add(name)
            prefix, ref = name.split(":", 1)
            getattr(self, "_on_" + prefix)(ref, facts)

    # -- handlers for matches ---------------------------------------------------------
    def _on_applies(self, target_id: str, facts: dict) -> None:
        m = facts["m"]
        subject = m.get("subject") or m.get("service") or "-"
        key = f"{target_id}/{subject}"
        if key not in self._clocks:
            target = self.ruleset.targets[target_id]
            clock = DurationClock(target.calendar, target.goal, target.warn_at, self._roles[target_id],
                                  target.valid_span())
            self._clocks[key] = _ClockRecord(key, target, subject, clock)
            self._by_subject.setdefault(subject, []).append(key)

    def _on_life(self, fact_type: str, facts: dict) -> None:
        m = facts["m"]
        subject = m.get("subject") or m.get("service") or "-"
        at = _parse(m["time"])
        for key in self._by_subject.get(subject, []):
            record = self._clocks[key]
            actions = self._roles[record.target.id].get(fact_type)
            if actions:
                self._transition(record, Transition(at, next(self._counter), ",".join(sorted(actions)),
                                                    "fact:" + m["fid"]))

    def _on_down(self, target_id: str, facts: dict) -> None:
        self._window_signal(target_id, facts["m"], "down")

    def _on_up(self, target_id: str, facts: dict) -> None:
        self._window_signal(target_id, facts["m"], "up")

    _on_over = _on_down
    _on_under = _on_up

    def _window_signal(self, target_id: str, m: dict, action: str) -> None:
        target = self.ruleset.targets[target_id]
        at = _parse(m["time"])
        record = self._window_record(target, at)
        if record is None:
            return
        subject = m.get("subject") or m.get("service") or "-"
        self._transition(record, Transition(at, next(self._counter), action, "fact:" + m["fid"], subject))

    def _forgotten(self, window_end: datetime) -> bool:
        """Whether a window that ended then lies beyond ``retain``: its clock, if any, is gone."""
        return self.retain is not None and self.now is not None and window_end < self.now - self.retain

    def _window_record(self, target: Target, at: datetime) -> _ClockRecord | None:
        """The window clock holding ``at`` (None: a window forgotten under ``retain``)."""
        window = window_of(target.spec.get("window", "month"), at, target.calendar.timezone)
        key = f"{target.id}/{window[2]}"
        if key not in self._clocks:
            if self._forgotten(window[1]):
                return None
            clock = WindowClock(target.calendar, target.goal, target.warn_at, window)
            self._clocks[key] = _ClockRecord(key, target, window[2], clock)
            self._sync_running(self._clocks[key])
        return self._clocks[key]

    def _on_escalate(self, escalation_id: str, facts: dict) -> None:
        record = self._clocks.get(facts["m"]["data"]["clock"])
        if record is None or escalation_id in record.escalations:
            return
        levels = self.ruleset.escalations[escalation_id].levels
        record.escalations[escalation_id] = levels
        record.clock.add_marks(escalation_marks(record.clock.budget, levels))
        self._schedule(record)

    def _on_rule(self, rule_id: str, facts: dict) -> None:
        from engine.eval.actions import fire_rule
        fire_rule(self, self.ruleset.rules[rule_id], facts)

    # -- clocks -------------------------------------------------------------------------
    def _transition(self, record: _ClockRecord, transition: Transition) -> None:
        late = ((record.last_transition and transition.at < record.last_transition)
                or (record.last_fired and transition.at <= record.last_fired))
        record.transitions.append(transition)
        record.last_transition = max(filter(None, [record.last_transition, transition.at]))
        if transition.subject is not None:
            bisect.insort(record.signals.setdefault(transition.subject, []),
                          (transition.at, transition.seq, transition.action))
        if late:
            if _changes_state(record, transition):
                self._rebuild(record, cause=transition)
            return
        readings = record.clock.fire_due(transition.at, inclusive=False)
        readings += self._apply_transition(record.clock, transition)
        readings += record.clock.fire_due(self.now, self.now_inclusive) if self.now else []
        self._issue(record, readings)
        self._sync_running(record)
        self._schedule(record)

    @staticmethod
    def _apply_transition(clock, transition: Transition) -> list[Reading]:
        if isinstance(clock, WindowClock):
            return clock.apply(transition.action, transition.subject, transition.at, transition.fact)
        return clock.apply(set(transition.action.split(",")), transition.at, transition.fact)

    def _rebuild(self, record: _ClockRecord, cause: Transition) -> None:
        """A late fact: replay the clock's history in event-time order and reconcile."""
        target = record.target
        if isinstance(record.clock, WindowClock):
            old = record.clock
            clock = WindowClock(target.calendar, target.goal, target.warn_at,
                                (old.window_start, old.window_end, old.label))
        else:
            clock = DurationClock(target.calendar, target.goal, target.warn_at, self._roles[target.id],
                                  target.valid_span())
        for levels in record.escalations.values():
            clock.add_marks(escalation_marks(clock.budget, levels))
        readings: list[Reading] = []
        for transition in sorted(record.transitions, key=lambda t: (t.at, t.seq)):
            readings += clock.fire_due(transition.at, inclusive=False)
            readings += self._apply_transition(clock, transition)
        readings += clock.fire_due(self.now, self.now_inclusive)
        record.clock = clock
        fresh = {r.key: r for r in readings}
        for key, decision in list(record.issued.items()):
            reading = fresh.get(key)
            if reading is None or _instant(reading.at) != decision["at"]:
                self._retract_decision(record, key, decision, cause)
        self._issue(record, [r for r in readings if r.key not in record.issued])
        self._sync_running(record)
        self._schedule(record)

    def _schedule(self, record: _ClockRecord) -> None:
        deadline = record.clock.next_deadline()
        if deadline is None:
            record.scheduled = None
            return
        counter = next(self._counter)
        record.scheduled = (deadline, counter)
        heapq.heappush(self._heap, (deadline, counter, record.key))

    def _advance(self, until: datetime, inclusive: bool) -> None:
        """Fire every deadline before ``until`` (or at it), in event-time order across clocks."""
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > until or (deadline == until and not inclusive):
                break
            _, _, key = heapq.heappop(self._heap)
            record = self._clocks[key]
            record.scheduled = None
            readings = record.clock.fire_due(deadline, inclusive=True)
            self._issue(record, readings)
            self._sync_running(record)
            self._schedule(record)
            if isinstance(record.clock, WindowClock) and record.clock.closed:
                self._carry_over(record)
            self._drain()

    def _carry_over(self, record: _ClockRecord) -> None:
        """A window ends while the service is down: the next window starts down."""
        old = record.clock
        if not old.down or getattr(record, "carried", False):
            return
        record.carried = True
        successor = self._window_record(record.target, old.window_end)
        if successor is None:
            return
        for subject, fact in sorted(old.down.items()):
            self._transition(successor, Transition(old.window_end, next(self._counter), "down", fact, subject))

    def _sync_running(self, record: _ClockRecord) -> None:
        """Keep a ``clock.running`` fact asserted exactly while the clock runs a cycle."""
        clock = record.clock
        running = clock.running and clock.cycle > 0
        fact_id = f"clock:{record.key}#{clock.cycle}"
        current = record.running_fact
        if current and (not running or current["id"] != fact_id):
            self._retract(current)
            record.running_fact = None
        if running and record.running_fact is None:
            target = record.target
            start = clock.window_start if isinstance(clock, WindowClock) else clock.running_since or self.now
            durable = {"sid": "0", "id": fact_id, "fid": fact_id, "source": "slm", "type": "clock.running",
                       "subject": record.subject, "service": target.service, "ts": start.timestamp(),
                       "time": format_instant(start),
                       "data": {"clock": record.key, "target": target.id, "agreement": target.agreement.id,
                                "agreement_type": target.agreement.type, "measure": target.measure,
                                "metric": target.spec.get("name") if target.measure == "threshold" else None,
                                "cycle": clock.cycle, "budget": format_duration(clock.budget)}}
            record.running_fact = durable
            self._post(durable)

    # -- decisions ----------------------------------------------------------------------
    def _issue(self, record: _ClockRecord, readings: list[Reading]) -> None:
        for reading in readings:
            if reading.key in record.issued:
                continue
            decision = self._clock_decision(record, reading)
            record.issued[reading.key] = decision
            record.last_fired = max(filter(None, [record.last_fired, reading.at]))
            self._record(decision)

    def _clock_decision(self, record: _ClockRecord, reading: Reading) -> dict:
        target = record.target
        if reading.kind == "escalation":
            level = reading.source
            rule_id, origin = level.escalation, level.origin
        else:
            rule_id, origin = target.id, target.origin
        revision = record.revisions.get(reading.key, 0)
        identity = [rule_id, reading.kind, target.id, record.subject, reading.level, reading.cycle,
                    reading.activity, reading.repeat, revision]
        decision = {
            "id": decision_id(identity),
            "kind": reading.kind,
            "target": target.id,
            "subject": record.subject,
            "service": target.service,
            "agreement": target.agreement.id,
            "agreement_type": target.agreement.type,
            "at": _instant(reading.at),
            "shadow": target.agreement.shadow,
            "cycle": reading.cycle,
            "data": {"counted": _duration(reading.counted), "budget": _duration(reading.budget),
                     "paused": _duration(reading.paused)},
            "rule": self.rule_ref(rule_id, origin),
            "because": [*reading.because, f"clock:{record.key}"],
        }
        if reading.level:
            decision["level"] = reading.level
        if reading.activity:
            decision["activity"] = reading.activity
        if reading.repeat:
            decision["repeat"] = reading.repeat
        return decision

    def _retract_decision(self, record: _ClockRecord, key, decision: dict, cause: Transition) -> None:
        del record.issued[key]
        record.revisions[key] = record.revisions.get(key, 0) + 1
        retraction = {
            "id": decision_id(["retracted", decision["id"]]),
            "kind": "retracted",
            "target": decision.get("target"),
            "subject": decision.get("subject"),
            "service": decision.get("service"),
            "agreement": decision.get("agreement"),
            "agreement_type": decision.get("agreement_type"),
            "at": _instant(max(self.now or cause.at, cause.at)),
            "shadow": decision.get("shadow", False),
            "data": {"retracts": decision["id"], "reason": f"recomputed after late {cause.fact}"},
            "rule": decision["rule"],
            "because": [f"decision:{decision['id']}", cause.fact],
        }
        self._retract({"id": f"d:{decision['id']}"})     # by our id (the held fact's may carry ~N)
        self._record(retraction)

    def emit(self, decision: dict, message: str | None = None) -> None:
        """A Rule's decision: once per id (a join may match the same facts again after a
        clock.running fact was retracted and re-asserted)."""
        if decision["id"] in self._emitted:
            return
        self._emitted.add(decision["id"])
        self._record(decision, message)

    def _record(self, decision: dict, message: str | None = None) -> None:
        """Record a decision, derive its notifications and feed it back in as a fact."""
        if self.history:
            self.decisions.append(decision)
            self.decisions_by_id[decision["id"]] = decision
        self._outcome.decisions.append(decision)
        notes = notifications_for(decision, self.ruleset, message)
        if self.history:
            self.notifications.extend(notes)
        self._outcome.notifications.extend(notes)
        if self._posts("decision." + decision["kind"]):
            self._post(self._decision_fact(decision))

    def _decision_fact(self, decision: dict) -> dict:
        envelope = ("id", "kind", "subject", "service", "at", "data", "rule", "because")
        data = {k: v for k, v in decision.items() if k not in envelope and v is not None}
        data.update({k: v for k, v in decision.get("data", {}).items() if k not in data})
        durable = {"sid": "0", "id": f"d:{decision['id']}", "fid": decision["id"], "source": "slm",
                   "type": "decision." + decision["kind"], "ts": _parse(decision["at"]).timestamp(),
                   "time": decision["at"], "data": data}
        for name in ("subject", "service"):
            if decision.get(name) is not None:
                durable[name] = decision[name]
        return durable

    def rule_ref(self, rule_id: str, origin: Origin) -> dict:
        return {"id": rule_id, "file": origin.file, "line": origin.line, "ruleset": self.ruleset.version}


def decision_id(identity: list) -> str:
    """Deterministic: the same rule, kind, target, subject, level and cycle give the same id."""
    text = "|".join("" if part is None else str(part) for part in identity)
    return "dec_" + hashlib.sha256(text.encode()).hexdigest()[:24]


_duration = lru_cache(maxsize=8192)(format_duration)   # pure; clocks of a target repeat the same figures


def _instant(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)


def _parse(text: str) -> datetime:
    return parse_instant(text)


def _flatten(messages, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in messages.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(_flatten(value, path))
        else:
            out[path] = [str(v) for v in value]
    return out


__all__ = ["Engine", "Outcome", "decision_id", "dump_fact"]
