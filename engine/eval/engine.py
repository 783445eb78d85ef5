"""The Engine: facts in, decisions out, in event time.

durable_rules matches (engine.eval.durable over engine.eval.compiler's rules); this module
acts on the matches: it keeps the clocks (engine.eval.book), fires their deadlines in
event-time order, turns readings into decisions (engine.eval.records), and feeds a
decision back in as a ``decision.<kind>`` fact only where some Rule can match it.
Who is notified of a decision is not the engine's business (engine.notify).

Deterministic by construction: no wall clock, no threads, matches handled in a stable
order, ids derived from what a decision is about. All mutable state is one object,
:class:`engine.eval.state.EngineState`, which is what a snapshot saves.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from marshmallow import ValidationError

from engine.eval.actions import RuleActions
from engine.eval.book import ClockRecord
from engine.eval.clock import DurationClock, Reading, Transition, WindowClock, marks_for, month_span, window_of
from engine.eval.compiler import (
    RULESET,
    allows,
    compile_ruleset,
    conditional_roles,
    field_path,
    join_filter,
    matched_types,
    retained_types,
    string_tests,
    typed_patterns,
    unconditional_roles,
)
from engine.eval.durable import DurableNetwork
from engine.eval.records import clock_decision, decision_fact, decision_id, retraction, rule_ref
from engine.eval.state import EngineState, History, SnapshotError
from engine.eval.state import dump as dump_state
from engine.eval.state import load as load_state
from engine.eval.trace import build_trace
from engine.lang.errors import FactError
from engine.lang.model import RuleSet, Target
from engine.lang.where import MISSING, field_at
from engine.lang.where import failure as where_failure
from schemas.facts import FactSchema, flatten_errors
from schemas.records import Decision
from schemas.values import format_instant, format_remaining, format_whole_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAINTENANCE = "maintenance:"    # the prefix of a posted maintenance window's subject on a window clock
PRUNE_EVERY = 1000          # facts between sweeps for finished clocks (with ``retain``)
PHASES = {"applies": 0, "first": 0, "life": 1, "down": 1, "up": 1, "over": 1, "under": 1, "hold": 1, "release": 1,
          "rule": 3}


@dataclass
class Outcome:
    """What one call decided, in the order it was decided."""

    decisions: list[Decision] = field(default_factory=list)
    duplicate: bool = False
    moved: int = 0          # clock transitions and Rule matches the fact itself caused (0: it matched nothing)


class Engine:
    """Forward chaining over one rule set. Not thread-safe: callers serialise."""

    def __init__(self, ruleset: RuleSet, history: bool = True, retain: timedelta | None = None):
        """``history=False`` (the service): keep no record of facts and decisions beyond
        what evaluation needs; the caller stores them and detects duplicate facts itself.

        ``retain``: forget a clock that finished (stopped, or its window closed) this long
        before the engine's time; a fact arriving later for it is ignored. With both, memory
        follows the clocks that run, not the length of the history."""
        self.ruleset = ruleset                          # the version in force
        self.versions: dict[str, RuleSet] = {ruleset.version: ruleset}   # and those clocks still run under
        self.retain = retain
        self.state = EngineState(history=History() if history else None)
        self._rule_specs: dict | None = None
        self._roles: dict[int, tuple] = {}              # id(target) -> (target, its clock roles)
        self._compile()
        self._queue: deque = deque()
        self._mark_cache: dict[tuple, tuple] = {}
        self._outcome = Outcome()
        self._schema = FactSchema()
        self.actions = self._actions_for(ruleset)

    def close(self) -> None:
        """Free what durable_rules holds for this engine (call when it is replaced)."""
        self._targets.close()
        self._rules.close()

    # -- snapshots ------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The engine's state as plain data (see engine.eval.state), between calls only."""
        if self._queue:
            raise SnapshotError("the engine is in the middle of evaluating")
        return dump_state(self.state, self.ruleset)

    @classmethod
    def restore(cls, ruleset: RuleSet, blob: bytes, retain: timedelta | None = None,
                versions: Callable[[str], RuleSet | None] = lambda version: None) -> Engine:
        """An engine for ``ruleset`` (the version in force) in the state a snapshot holds;
        ``versions`` finds the earlier versions its clocks still run under (SnapshotError if
        the snapshot is unusable)."""
        engine = cls(ruleset, history=False, retain=retain)

        def version(name: str) -> RuleSet:
            found = ruleset if name == ruleset.version else engine.versions.get(name) or versions(name)
            if found is None:
                raise SnapshotError(f"the snapshot's clocks run under rule set {name[:19]}…, which is not stored")
            engine.versions[name] = found
            return found

        engine.state = load_state(blob, ruleset, version, engine._make_clock)
        engine.actions = engine._actions_for(ruleset)
        engine.close()
        engine._compile()                  # with the earlier versions' rules its clocks need
        engine._rehold()
        return engine

    def _compile(self, keep_rules: bool = False) -> None:
        """Build the durable_rules networks for the version in force, plus the signal and
        lifecycle rules of earlier versions' clocks that still run: one for targets (it
        holds no fact: no target joins) and one for Rules (it holds the facts their joins
        may still need). ``keep_rules``: keep the Rules' network, and what it holds, when
        the Rules compile as they did (a rule change that touches targets only)."""
        ruleset = self.ruleset
        definition = compile_ruleset(ruleset, self._carried())
        compiled = definition[RULESET]
        rules = {name: spec for name, spec in compiled.items() if name.startswith("rule:")}
        self._matched = matched_types(definition)        # None: any type may match
        self._targets = DurableNetwork({RULESET: {n: s for n, s in compiled.items() if n not in rules}})
        if not (keep_rules and rules == self._rule_specs):
            self._rules = DurableNetwork({RULESET + "_rules": rules})
            self._rule_specs = rules
        self._retained = retained_types(ruleset)
        self._may_join = join_filter(ruleset)
        self._joined_clocks = _clocks_a_rule_may_join(ruleset, definition)

    def _carried(self) -> list[tuple[str, Target]]:
        """(version, target) of the clocks that run under a version no longer in force."""
        carried = {}
        for record in self.state.book.running_records(ordered=False):
            if record.version != self.ruleset.version:
                carried[(record.version, record.target.id)] = record.target
        return [(version, target) for (version, _), target in sorted(carried.items(), key=lambda kv: kv[0])]

    def cut_over(self, ruleset: RuleSet, at: datetime) -> Outcome:
        """Put ``ruleset`` in force from ``at`` (docs/RULES.md, "Rule changes"). Decisions
        already made stay as they are. A running clock finishes under the version it started
        with, unless its target says ``on_change: reprice`` in the new version (it takes the
        new definition from ``at`` on; levels it has already passed are decided at ``at``) or
        the new version drops a target that said ``on_change: cancel`` (its clocks end with a
        ``cancelled`` decision at ``at``). Costs what the running clocks cost, never a replay.
        Earlier versions stay known (a late fact may rebuild a finished clock of one)."""
        self._outcome = Outcome()
        if ruleset.version == self.ruleset.version:
            return self._outcome
        because = f"rules:{ruleset.version}"
        self.versions[ruleset.version] = ruleset
        self.ruleset = ruleset
        self.actions = self._actions_for(ruleset, self.actions.render)
        for record in self._changing(ruleset):
            successor = ruleset.targets.get(record.target.id)
            if successor is None and record.target.on_change == "cancel":
                self._cancel(record, at, because)
            elif (successor is not None and successor.on_change == "reprice"
                  and successor.measure == record.target.measure):
                record.versions.append((at, ruleset.version))
                self._issue(record, self._reprice(record, record.clock, successor, at, because))
                self.state.book.schedule(record)
        rules, joined = self._rules, self._joined_clocks
        self._targets.close()
        self._compile(keep_rules=True)
        if self._rules is not rules:                     # the Rules changed: what they hold, again
            rules.close()
            self.state.held = {key: fact for key, fact in self.state.held.items()
                               if fact["type"] in self._retained and self._may_join(fact)}
            self._rehold()
        if self._rules is not rules or self._joined_clocks != joined:
            for record in self.state.book.running_records():
                if record.running_fact is not None and record.running_fact["id"] not in self.state.held:
                    record.running_fact = None
                self._sync_running(record)
        self._drain()
        return self._outcome

    def _changing(self, ruleset: RuleSet) -> list[ClockRecord]:
        """The running clocks a change to ``ruleset`` acts on (its targets reprice them, or
        it drops their target and they cancel), in key order."""
        out = []
        for record in self.state.book.running_records(ordered=False):
            if record.version == ruleset.version:
                continue
            successor = ruleset.targets.get(record.target.id)
            if (successor is None and record.target.on_change == "cancel") or (
                    successor is not None and successor.on_change == "reprice"):
                out.append(record)
        return sorted(out, key=lambda r: r.key)

    def _reprice(self, record: ClockRecord, clock, target: Target, at: datetime, because: str) -> list[Reading]:
        """Give a running clock ``target``'s definition from ``at`` on; the levels it has
        passed and not decided, decided at ``at``."""
        record.target = target
        if isinstance(clock, WindowClock):
            clock.reprice_window(target.calendar, target.goal, lambda budget: self._marks(target, budget), at)
        else:
            clock.reprice(target.calendar, target.goal, self._marks(target, target.goal), at)
            clock.roles = self._roles_of(target)
            clock.valid_from, clock.valid_to = target.valid_span()
        return clock.fire_passed(at, because)

    def _cancel(self, record: ClockRecord, at: datetime, because: str) -> None:
        clock = record.clock
        counted = clock.cancel(at)
        target, agreement = record.target, record.target.agreement
        decision = Decision(
            id=decision_id([target.id, "cancelled", target.id, record.subject, None, clock.cycle, because]),
            kind="cancelled", target=target.id, subject=record.subject, service=agreement.service,
            agreement=agreement.id, at=at, shadow=agreement.shadow,
            data={"counted": counted, "budget": clock.budget, "reason": "the rule change removed the target"},
            rule=rule_ref(target.id, target.origin, record.version),
            because=[f"clock:{record.key}", because], agreement_type=agreement.type, cycle=clock.cycle)
        record.issue(("cancelled", None, clock.cycle, 0, None), decision)
        self._record(decision)
        self._sync_running(record)
        self.state.book.schedule(record)

    def _roles_of(self, target: Target) -> dict[str, set[str]]:
        """Fact type → the roles every fact of the type plays for the target's clocks."""
        found = self._roles.get(id(target))
        if found is None:                 # kept with the target, as the marks are
            found = self._roles[id(target)] = (target, unconditional_roles(target.spec))
        return found[1]

    def _conditions_of(self, target: Target) -> dict[str, list[tuple[str, dict]]]:
        """Fact type → (role, where) of the target's clock conditions written as patterns."""
        found = self._roles.get(("where", id(target)))
        if found is None:
            found = self._roles[("where", id(target))] = (target, conditional_roles(target.spec))
        return found[1]

    def _actions_for(self, ruleset: RuleSet, render: bool = True) -> RuleActions:
        return RuleActions(ruleset.version, self.state.counts, self.state.count_firings, self._emit, render,
                           self._clock_reading)

    def _clock_reading(self, key: str, at: datetime) -> dict | None:
        """What a clock had counted at ``at``, as a Rule decision records the clocks it joined."""
        record = self.state.book.get(key.rsplit("#", 1)[0])
        if record is None:
            return None
        clock = record.clock
        return {"counted": format_whole_duration(clock.counted_at(at)), "budget": format_whole_duration(clock.budget),
                "cycle": clock.cycle}

    def _make_clock(self, target: Target, window: tuple | None) -> DurationClock | WindowClock:
        return self._duration_clock(target) if window is None else self._window_clock(target, window)

    # -- public API -----------------------------------------------------------------
    @property
    def now(self) -> datetime | None:
        return self.state.now

    @property
    def history(self) -> History | None:
        return self.state.history

    @property
    def decisions(self) -> list[Decision]:
        """Every decision made, in order (an engine made with ``history=True``)."""
        return self.state.history.decisions

    @property
    def fired_rules(self) -> set[str]:
        return self.state.fired_rules

    @property
    def render(self) -> bool:
        return self.actions.render

    @render.setter
    def render(self, value: bool) -> None:
        """Off while replaying history whose decisions are already stored: no message is
        rendered for a decision that will be discarded."""
        self.actions.render = value

    def validate(self, raw: dict) -> dict:
        """Check a fact against the schema; raises FactError naming each bad field."""
        try:
            return self._schema.load(raw)
        except ValidationError as err:
            raise FactError(flatten_errors(err.messages)) from None

    def apply(self, raw: dict) -> Outcome:
        """Apply one fact (a dict as posted). A repeated (source, id) changes nothing."""
        return self.apply_loaded(self.validate(raw))

    def apply_loaded(self, fact: dict) -> Outcome:
        """Apply a fact already loaded by :meth:`validate` (or ``FactSchema``)."""
        state, history = self.state, self.state.history
        key = (fact["source"], fact["id"])
        if history is not None and key in history.outcomes:
            return Outcome([history.decisions_by_id[i] for i in history.outcomes[key]], duplicate=True)
        self._outcome = Outcome()
        at = fact["time"]
        if state.now is None or at > state.now:
            self._advance(at, inclusive=False)
            state.now, state.now_inclusive = at, False
        if history is not None:
            history.facts_by_id.setdefault(fact["id"], fact)
        self._post(self._durable_fact(fact))
        self._drain()
        if history is not None:
            history.outcomes[key] = [d.id for d in self._outcome.decisions]
        state.applied += 1
        if self.retain is not None and state.applied % PRUNE_EVERY == 0:
            self.prune()
        return self._outcome

    def advance(self, until: datetime) -> Outcome:
        """Move event time to ``until``: every deadline at or before it fires."""
        state = self.state
        self._outcome = Outcome()
        if state.now is None or until > state.now or (until == state.now and not state.now_inclusive):
            self._advance(until, inclusive=True)
            state.now, state.now_inclusive = until, True
        else:       # overdue deadlines (marks a late fact added in the past) fire now
            self._advance(state.now, inclusive=state.now_inclusive)
        return self._outcome

    def next_deadline(self) -> datetime | None:
        """The earliest instant at which some clock will decide something."""
        return self.state.book.next_deadline()

    def prune(self) -> int:
        """Forget the clocks that finished more than ``retain`` ago; how many were."""
        if self.retain is None or self.state.now is None:
            return 0
        horizon = self.state.now - self.retain
        gone = self.state.book.forget_finished(horizon)
        firsts, book = self.state.firsts, self.state.book
        for key in [k for k, (at, _) in firsts.items() if at < horizon and book.get(k) is None]:
            del firsts[key]         # an earlier fact no clock started from within ``retain``
        for record in gone:
            for decision in record.issued.values():
                self.state.dependents.pop(decision.id, None)
        return len(gone)

    def clocks(self, at: datetime | None = None) -> list[dict]:
        """Running clocks with their readings at ``at`` (default: the engine's time); ``at``
        must not pass a pending deadline (the service fires those first)."""
        now = max(filter(None, [at, self.state.now])) if (at or self.state.now) else EPOCH
        out = []
        for record in self.state.book.running():
            clock, target = record.clock, record.target
            counted = clock.counted_at(now)
            deadline = clock.next_deadline()
            out.append({"clock": record.key, "target": target.id, "subject": record.subject,
                        "service": target.service, "agreement": target.agreement.id,
                        "cycle": clock.cycle, "state": getattr(clock, "state", "running"),
                        "counted": format_whole_duration(counted), "budget": format_whole_duration(clock.budget),
                        "remaining": format_remaining(clock.budget, counted),
                        "next_deadline": None if deadline is None else format_instant(deadline),
                        "shadow": target.agreement.shadow})
        return sorted(out, key=lambda c: c["clock"])

    def window_reading(self, target_id: str, label: str,
                       at: datetime | None = None) -> tuple[timedelta, timedelta] | None:
        """(down time counted up to ``at``, service time) of an availability/threshold window.

        ``at`` (default: the engine's time) lets a reader count an ongoing outage up to the
        wall clock: the engine's time only moves when a fact or a deadline arrives, so
        without it a report would show 100 % during the first outage of a quiet month."""
        now = max(filter(None, [at, self.state.now]), default=None)
        record = self.state.book.get(f"{target_id}/{label}")
        if record is None:
            return self._quiet_window(target_id, label, now)
        if not isinstance(record.clock, WindowClock):
            return None
        clock = record.clock
        until = min(now or clock.window_end, clock.window_end)
        return clock.counted_at(until), clock.service_time

    def maintenance_spans(self, target_id: str, start: datetime, end: datetime,
                          at: datetime | None = None) -> list[tuple[datetime, datetime, str]]:
        """The maintenance windows posted for a target's window clocks that overlap [start,
        end): (from, to, the fact that opened it); one still open ends at ``at`` (default:
        the engine's time). A window carried into the next clock window counts once."""
        now = max(filter(None, [at, self.state.now]), default=end)
        spans: dict[tuple, list] = {}
        for record in list(self.state.book.records.values()):
            if record.target.id != target_id or not isinstance(record.clock, WindowClock):
                continue
            clock = record.clock
            if clock.window_end <= start or clock.window_start >= end:
                continue
            open_now: dict[str, str] = {}
            for t in sorted(record.transitions, key=lambda t: (t.at, t.seq)):
                if not (t.subject or "").startswith(MAINTENANCE):
                    continue
                if t.action == "hold" and t.subject not in open_now:
                    open_now[t.subject] = t.fact
                    span = spans.setdefault((t.subject, t.fact), [t.at, None])
                    span[0] = min(span[0], t.at)
                elif t.action == "release" and t.subject in open_now:
                    span = spans[(t.subject, open_now.pop(t.subject))]
                    span[1] = t.at if span[1] is None else max(span[1], t.at)
        out = [(a, b or now, fact) for (_, fact), (a, b) in spans.items()]
        return sorted((a, b, fact) for a, b, fact in out if a < end and b > start)

    def window_record(self, target_id: str, label: str) -> ClockRecord | None:
        """The clock record of a window (None if none was made or it was forgotten)."""
        record = self.state.book.get(f"{target_id}/{label}")
        return record if record is not None and isinstance(record.clock, WindowClock) else None

    def clock_keys(self) -> tuple[set[str], StoppedKeys]:
        """(keys of the clocks running or paused now, a view of those that have stopped):
        what explaining a fact needs to know of the clocks (engine.lang.explain)."""
        return self.state.book.live, StoppedKeys(self.state.book)

    def clock_record(self, key: str) -> ClockRecord | None:
        """The clock record ``<target>/<subject or window label>``, while it is kept."""
        return self.state.book.get(key)

    def _quiet_window(self, target_id: str, label: str,
                      now: datetime | None = None) -> tuple[timedelta, timedelta] | None:
        return quiet_window(self.ruleset.targets.get(target_id), label, now, self.state.now, self.retain)

    def trace(self, decision_id: str) -> dict:
        """The derivation tree of a decision this engine made (``history=True``)."""
        return build_trace(self.state.history, self.ruleset, decision_id)

    # -- durable_rules --------------------------------------------------------------
    def _durable_fact(self, fact: dict) -> dict:
        durable = {"sid": "0", "id": f"f{self.state.next_seq()}", "fid": fact["id"], "source": fact["source"],
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

        A fact no rule could match is not posted; one durable_rules did not handle is not
        in its memory, so there is nothing to retract; one that no join could ever use is
        retracted at once.
        """
        if not self._posts(durable["type"]):
            return
        matches, _ = self._targets.assert_fact(durable)          # holds nothing: no target joins
        found, held = self._rules.assert_fact(durable)
        if found is not None:
            matches = (matches or []) + found
            if durable["type"] in self._retained and self._may_join(durable):
                self.state.held[durable["id"]] = held
            else:
                self._rules.retract_fact(held)
        for name, facts in sorted(matches or [], key=lambda m: (PHASES[m[0].split(":", 1)[0]], m[0])):
            self._queue.append((name, facts))

    def _rehold(self) -> None:
        """Put the facts a join may still use back into a fresh durable_rules memory (after
        a state is restored). Their matches were acted on when first asserted: discarded."""
        held = self.state.held
        for key, fact in list(held.items()):
            _, held[key] = self._rules.assert_fact({**fact, "id": key})

    def _retract(self, fact_id: str) -> None:
        """Take a fact out of durable_rules' memory, if it is there. (A retraction matches
        nothing: no rule negates.)"""
        held = self.state.held.pop(fact_id, None)
        if held is not None:
            self._rules.retract_fact(held)

    def _drain(self) -> None:
        fired = self.state.fired_rules
        while self._queue:
            name, facts = self._queue.popleft()
            fired.add(name)
            prefix, ref = name.split(":", 1)
            getattr(self, "_on_" + prefix)(ref, facts)

    # -- handlers for matches ---------------------------------------------------------
    def _on_applies(self, target_id: str, facts: dict) -> None:
        m = facts["m"]
        subject = m.get("subject") or m.get("service") or "-"
        key = f"{target_id}/{subject}"
        book = self.state.book
        if book.get(key) is None:
            target = self.ruleset.targets[target_id]
            book.add(ClockRecord(key, target, subject, self._duration_clock(target),
                                 versions=[(None, self.ruleset.version)]), indexed=True)

    def _duration_clock(self, target: Target) -> DurationClock:
        return DurationClock(target.calendar, target.goal, self._marks(target, target.goal), self._roles_of(target),
                             target.valid_span())

    def _marks(self, target: Target, budget: timedelta) -> tuple:
        """A target's marks for a budget, made once and shared by its clocks."""
        key = (id(target), budget)
        found = self._mark_cache.get(key)
        if found is None:                 # the target is kept with its marks, so its id stays its own
            found = self._mark_cache[key] = (target, marks_for(budget, target.warn_at, target.escalations))
        return found[1]

    def _on_life(self, fact_type: str, facts: dict) -> None:
        """A fact that starts, pauses, resumes, stops or restarts clocks: handed to the
        clocks of its subject in its service."""
        m = facts["m"]
        service = m.get("service")
        subject = m.get("subject") or service or "-"
        at = None
        for record in self.state.book.of_subject(subject):
            if service is not None and record.target.service != service:
                continue                # the same ticket id in another service is another ticket
            actions = record.clock.roles.get(fact_type, set())
            conditional = self._conditions_of(record.target).get(fact_type)
            if conditional:
                get = where_lookup(m)
                actions = actions | {role for role, where in conditional if where_failure(where, get) is None}
            if actions:
                at = at or _parse(m["time"])
                if record.target.spec.get("start_at"):
                    record.clock.start_from = self.state.firsts.get(record.key)
                self._outcome.moved += 1
                self._transition(record, Transition(at, self.state.book.next_count(), ",".join(sorted(actions)),
                                                    "fact:" + m["fid"]))

    def _on_first(self, target_id: str, facts: dict) -> None:
        """A fact some target's ``start_at`` names: keep the earliest per clock key. One that
        arrives after the clock started, earlier than what it started from, rebuilds it."""
        m = facts["m"]
        subject = m.get("subject") or m.get("service") or "-"
        key, at = f"{target_id}/{subject}", _parse(m["time"])
        known = self.state.firsts.get(key)
        if known is not None and known[0] <= at:
            return
        fact = "fact:" + m["fid"]
        self.state.firsts[key] = (at, fact)
        self._outcome.moved += 1
        record = self.state.book.get(key)
        if record is not None and record.last_transition is not None and at < record.last_transition:
            self._rebuild(record, cause=Transition(at, self.state.book.next_count(), "first", fact))

    def _on_down(self, target_id: str, facts: dict) -> None:
        self._window_signal(target_id, facts["m"], "down")

    def _on_up(self, target_id: str, facts: dict) -> None:
        self._window_signal(target_id, facts["m"], "up")

    _on_over = _on_down
    _on_under = _on_up

    def _on_hold(self, target_id: str, facts: dict) -> None:
        """A posted maintenance window starts: the target's window clocks stop counting."""
        self._window_signal(target_id, facts["m"], "hold")

    def _on_release(self, target_id: str, facts: dict) -> None:
        self._window_signal(target_id, facts["m"], "release")

    def _window_signal(self, ref: str, m: dict, action: str) -> None:
        """A down/up signal matched by the rules of the version in force (``ref`` is a
        target id) or of an earlier version whose window clock still runs (``id@version``).
        A window's clock takes the signals of its own version's rules only, and only the
        version in force starts new windows."""
        target_id, _, version = ref.partition("@")
        ruleset = self.versions.get(version) if version else self.ruleset
        if ruleset is None:
            return
        at = _parse(m["time"])
        record = self._window_record(ruleset.targets[target_id], at, create=not version)
        if record is None or record.version != ruleset.version:
            return
        subject = m.get("subject") or m.get("service") or "-"
        if action in ("hold", "release"):
            subject = MAINTENANCE + subject         # kept apart from the subjects that go down
        self._outcome.moved += 1
        self._transition(record, Transition(at, self.state.book.next_count(), action, "fact:" + m["fid"], subject))

    def _forgotten(self, window_end: datetime) -> bool:
        """Whether a window that ended then lies beyond ``retain``: its clock, if any, is gone."""
        now = self.state.now
        return self.retain is not None and now is not None and window_end < now - self.retain

    def _window_record(self, target: Target, at: datetime, create: bool = True) -> ClockRecord | None:
        """The window clock holding ``at``, made if ``create`` (None: none, or a window
        forgotten under ``retain``)."""
        window = window_of(target.spec.get("window", "month"), at, target.calendar.timezone)
        key = f"{target.id}/{window[2]}"
        record = self.state.book.get(key)
        if record is None:
            if not create or self._forgotten(window[1]):
                return None
            record = self.state.book.add(ClockRecord(key, target, window[2], self._window_clock(target, window),
                                                     versions=[(None, self.ruleset.version)]), indexed=False)
            self._sync_running(record)
        return record

    def _window_clock(self, target: Target, window: tuple) -> WindowClock:
        return WindowClock(target.calendar, target.goal, window, lambda budget: self._marks(target, budget))

    def _on_rule(self, rule_id: str, facts: dict) -> None:
        self._outcome.moved += 1
        self.actions.fire(self.ruleset.rules[rule_id], facts)

    # -- clocks -------------------------------------------------------------------------
    def _transition(self, record: ClockRecord, transition: Transition) -> None:
        if record.record_transition(transition):         # late for this clock
            if record.changes_state(transition):
                self._rebuild(record, cause=transition)
            return
        state = self.state
        readings = record.clock.fire_due(transition.at, inclusive=False)
        readings += _apply_transition(record.clock, transition)
        if state.now:
            readings += record.clock.fire_due(state.now, state.now_inclusive)
        self._issue(record, readings)
        self._sync_running(record)
        state.book.schedule(record)

    def _rebuild(self, record: ClockRecord, cause: Transition) -> None:
        """A late fact: replay the clock's history in event-time order and reconcile. Each
        stretch of it is evaluated under the version it ran under: from its start, then
        from each rule change that repriced it."""
        (_, first), *repriced = record.versions
        target = self.versions[first].targets[record.target.id]
        if isinstance(record.clock, WindowClock):
            old = record.clock
            clock = self._window_clock(target, (old.window_start, old.window_end, old.label))
        else:
            clock = self._duration_clock(target)
            if target.spec.get("start_at"):
                clock.start_from = self.state.firsts.get(record.key)
        readings: list[Reading] = []
        changes = list(repriced)

        def reprice_until(until: datetime, inclusive: bool) -> None:
            nonlocal readings
            while changes and (changes[0][0] < until or (inclusive and changes[0][0] == until)):
                at, version = changes.pop(0)
                readings += clock.fire_due(at, inclusive=False)
                readings += self._reprice(record, clock, self.versions[version].targets[target.id], at,
                                          f"rules:{version}")

        for transition in sorted(record.transitions, key=lambda t: (t.at, t.seq)):
            reprice_until(transition.at, inclusive=False)
            readings += clock.fire_due(transition.at, inclusive=False)
            readings += _apply_transition(clock, transition)
        reprice_until(self.state.now, inclusive=True)
        readings += clock.fire_due(self.state.now, self.state.now_inclusive)
        record.clock = clock
        fresh = {r.key: r for r in readings}
        for key, decision in list(record.issued.items()):
            reading = fresh.get(key)
            if reading is None or reading.at != decision.at or (
                    reading.kind == "met" and reading.counted != decision.data.get("counted")):
                del record.issued[key]          # (a met at the same instant may have counted more)
                record.revisions[key] = record.revisions.get(key, 0) + 1
                self._retract_decision(decision, f"recomputed after late {cause.fact}", [cause.fact], cause.at)
        self._issue(record, [r for r in readings if r.key not in record.issued])
        self._sync_running(record)
        self.state.book.schedule(record)

    def _advance(self, until: datetime, inclusive: bool) -> None:
        """Fire every deadline before ``until`` (or at it), in event-time order across clocks."""
        book = self.state.book
        while True:
            deadline = book.next_deadline()
            if deadline is None or deadline > until or (deadline == until and not inclusive):
                break
            record = book.pop_due()
            self._issue(record, record.clock.fire_due(deadline, inclusive=True))
            self._sync_running(record)
            book.schedule(record)
            if isinstance(record.clock, WindowClock) and record.clock.closed:
                self._carry_over(record)
            self._drain()

    def _carry_over(self, record: ClockRecord) -> None:
        """A window ends while the service is down (or in a posted maintenance window): the
    next window starts so."""
        old = record.clock
        if not (old.down or old.held) or record.carried:
            return
        record.carried = True
        target = self.ruleset.targets.get(record.target.id)       # the next window: the version in force
        successor = None if target is None else self._window_record(target, old.window_end)
        if successor is None:
            return
        carried = [("hold", s, f) for s, f in sorted(old.held.items())] + \
            [("down", s, f) for s, f in sorted(old.down.items())]
        for action, subject, fact in carried:
            self._transition(successor, Transition(old.window_end, self.state.book.next_count(), action, fact,
                                                   subject))

    def _sync_running(self, record: ClockRecord) -> None:
        """Keep a ``clock.running`` fact asserted exactly while the clock runs a cycle, for
        the clocks some Rule may join (no other clock ever needs one)."""
        if record.target.id not in self._joined_clocks:
            return
        clock = record.clock
        running = clock.running and clock.cycle > 0
        fact_id = f"clock:{record.key}#{clock.cycle}"
        current = record.running_fact
        if current and (not running or current["id"] != fact_id):
            self._retract(current["id"])
            record.running_fact = None
        if running and record.running_fact is None:
            start = clock.window_start if isinstance(clock, WindowClock) else clock.running_since or self.state.now
            record.running_fact = durable = _running_fact(record, fact_id, start)
            self._post(durable)

    # -- decisions ----------------------------------------------------------------------
    def _issue(self, record: ClockRecord, readings: list[Reading]) -> None:
        for reading in readings:
            if reading.key in record.issued:
                continue
            decision = clock_decision(record.target, record.subject, record.key, reading,
                                      record.revisions.get(reading.key, 0), record.version)
            record.issue(reading.key, decision)
            self._record(decision)

    def _emit(self, decision: Decision) -> None:
        """A Rule's decision: once per id (a join may match the same facts again after a
        clock.running fact was retracted and re-asserted). It rests on the decisions it
        names in ``because``: if one of them is retracted, so is this one."""
        state = self.state
        if decision.id in state.emitted:
            return
        state.emitted.add(decision.id)
        for ref in decision.because:
            if ref.startswith("decision:"):
                state.dependents.setdefault(ref[9:], []).append(decision)
        self._record(decision)

    def _record(self, decision: Decision) -> None:
        """Record a decision and feed it back in as a fact where a Rule can match it."""
        history = self.state.history
        if history is not None:
            history.decisions.append(decision)
            history.decisions_by_id[decision.id] = decision
        self._outcome.decisions.append(decision)
        if self._posts("decision." + decision.kind):
            self._post(decision_fact(decision))

    def _retract_decision(self, decision: Decision, reason: str, because: list[str], at: datetime) -> None:
        """Supersede a decision with a recorded retraction, and with it, transitively, every
        Rule decision that rests on it (truth maintenance)."""
        self._retract(f"d:{decision.id}")       # by our id (the held fact's may carry ~N)
        self.actions.forget(f"decision:{decision.id}")
        now = self.state.now
        self._record(retraction(decision, max(now or at, at), reason, because))
        for dependent in self.state.dependents.pop(decision.id, []):
            self._retract_decision(dependent, f"rests on {decision.kind} {decision.id}, which was retracted",
                                   [f"decision:{decision.id}"], at)


class StoppedKeys:
    """``key in`` the clocks of the book that have stopped (a view: nothing is copied)."""

    def __init__(self, book):
        self.book = book

    def __contains__(self, key: str) -> bool:
        record = self.book.get(key)
        return record is not None and getattr(record.clock, "state", None) == "stopped"


def quiet_window(target: Target | None, label: str, now: datetime | None, engine_now: datetime | None,
                 retain: timedelta | None) -> tuple[timedelta, timedelta] | None:
    """(0, service time) of a month window nothing went down in (no clock was ever made
    for it), read at ``now`` by an engine standing at ``engine_now``; None where nothing is
    known: another kind of target or window, a month not begun, nothing ever posted, or a
    month beyond ``retain`` (its clock may have been forgotten, not quiet). Also what the
    clocks read model (engine.service.clockview) answers for such a window."""
    if target is None or target.measure == "duration" or target.spec.get("window", "month") != "month":
        return None
    try:
        start, end = month_span(label, target.calendar.timezone)
    except ValueError:
        return None
    if engine_now is None:
        return None            # nothing was ever posted: nothing is known
    now = now or engine_now
    if now <= start:
        return None
    if retain is not None and end < engine_now - retain:
        return None            # maybe forgotten, not quiet: unknown
    return timedelta(0), target.calendar.counted(start, end)


def _apply_transition(clock, transition: Transition) -> list[Reading]:
    if isinstance(clock, WindowClock):
        return clock.apply(transition.action, transition.subject, transition.at, transition.fact)
    return clock.apply(set(transition.action.split(",")), transition.at, transition.fact)


def where_lookup(m: dict) -> Callable[[str], object]:
    """Field access on a fact as posted to durable_rules, by the names ``where`` uses."""
    def get(name: str):
        value = m.get("time") if name == "time" else field_at(m, field_path(name))
        return MISSING if value is None else value
    return get


def _running_fact(record: ClockRecord, fact_id: str, start: datetime) -> dict:
    """The ``clock.running`` fact of a clock: what a Rule can join on."""
    target = record.target
    return {"sid": "0", "id": fact_id, "fid": fact_id, "source": "slm", "type": "clock.running",
            "subject": record.subject, "service": target.service, "ts": start.timestamp(),
            "time": format_instant(start), "data": _running_data(target) | {
                "clock": record.key, "cycle": record.clock.cycle,
                "budget": format_whole_duration(record.clock.budget)}}


def _running_data(target: Target) -> dict:
    return {"target": target.id, "agreement": target.agreement.id, "agreement_type": target.agreement.type,
            "measure": target.measure, "metric": target.spec.get("name") if target.measure == "threshold" else None}


def _clocks_a_rule_may_join(ruleset: RuleSet, definition: dict) -> frozenset[str]:
    """The targets whose running clocks some Rule pattern on ``clock.running`` may match,
    judged from what the pattern requires of the fact's string fields that are fixed per
    target (target, agreement, agreement type, measure, metric, service)."""
    typed = typed_patterns(definition)
    if typed is None:                       # some pattern pins no type: it may match any clock
        return frozenset(ruleset.targets)
    patterns = [test for kind, test in typed if kind == "clock.running"]
    out = set()
    for target in ruleset.targets.values():
        probe = {"type": "clock.running", "service": target.service, "data": _running_data(target)}
        if any(allows(probe, string_tests(test)) for test in patterns):
            out.add(target.id)
    return frozenset(out)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


__all__ = ["Engine", "Outcome"]
