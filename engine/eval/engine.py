"""The Engine: facts in, decisions out, in event time.

durable_rules matches (engine.eval.network over engine.eval.compiler's rules); the engine
acts on the matches: each kind of match has its handler (engine.eval.matches), clocks
move and fire their deadlines in event-time order (engine.eval.transitions), readings
and Rules become decisions (engine.eval.decisions), a decision is fed back in as a
``decision.<kind>`` fact only where some Rule can match it, and a rule change is put in
force without a replay (engine.eval.cutover). Reads answer from the state alone
(engine.eval.reads). Who is notified of a decision is not the engine's business
(engine.notify).

Deterministic by construction: no wall clock, no threads, matches handled in a stable
order, ids derived from what a decision is about. All mutable state is one object,
:class:`engine.eval.state.EngineState`, which is what a snapshot saves; the modules share
it, and what is derived from the rules, through :class:`engine.eval.context.Context`.

A write can be undone (engine.eval.undo): :meth:`Engine.begin` starts recording, each
:meth:`Engine.mark` is a place to :meth:`Engine.rollback` to, :meth:`Engine.end` stops.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from marshmallow import ValidationError

from engine.eval import fed, packs, reads
from engine.eval.acknowledge import ACK_TYPE, acknowledge
from engine.eval.book import ClockRecord
from engine.eval.compiler import Fact
from engine.eval.context import Context, Outcome
from engine.eval.cutover import carried, cut_over
from engine.eval.decisions import rule_actions
from engine.eval.matches import dispatch, phase
from engine.eval.network import MatchNetwork
from engine.eval.reads import Span, StoppedKeys
from engine.eval.records import posted_fact
from engine.eval.state import EngineState, History, SnapshotError
from engine.eval.state import dump as dump_state
from engine.eval.state import load as load_state
from engine.eval.trace import Trace
from engine.eval.transitions import advance
from engine.eval.undo import Irreversible, Journal
from engine.lang.errors import FactError
from engine.lang.model import RuleSet
from schemas.facts import FactSchema, flatten_errors
from schemas.records import Decision, fact_ref

PRUNE_EVERY = 1000          # facts between sweeps for finished clocks (with ``retain``)


class Engine:
    """Forward chaining over one rule set. Not thread-safe: callers serialise."""

    def __init__(self, ruleset: RuleSet, history: bool = True, retain: timedelta | None = None,
                 scope: Callable[[RuleSet], RuleSet] | None = None):
        """``history=False`` (the service): keep no record of facts and decisions beyond
        what evaluation needs; the caller stores them and detects duplicate facts itself.

        ``retain``: forget a clock that finished (stopped, or its window closed) this long
        before the engine's time; a fact arriving later for it is ignored. With both, memory
        follows the clocks that run, not the length of the history.

        ``scope``: the part of each rule set this engine runs (one partition's share,
        engine.lang.rulescope); applied to every version it is given. Default: all of it."""
        self.scope = scope or _whole
        ruleset = self.scope(ruleset)
        state = EngineState(history=History() if history else None)
        ctx = self.context = Context(ruleset, {ruleset.version: ruleset}, retain, state)
        ctx.network = MatchNetwork(ruleset, [], phase, lambda name, facts: dispatch(ctx, name, facts))
        ctx.actions = rule_actions(ctx, ruleset)
        self._schema = FactSchema()

    def close(self) -> None:
        """Free what durable_rules holds for this engine (call when it is replaced)."""
        self.context.network.close()

    # -- snapshots ------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The engine's state as plain data (see engine.eval.state), between calls only."""
        if self.context.network.busy:
            raise SnapshotError("the engine is in the middle of evaluating")
        return dump_state(self.context.state, self.context.ruleset)

    @classmethod
    def restore(cls, ruleset: RuleSet, blob: bytes, retain: timedelta | None = None,
                versions: Callable[[str], RuleSet | None] = lambda version: None,
                scope: Callable[[RuleSet], RuleSet] | None = None) -> Engine:
        """An engine for ``ruleset`` (the version in force) in the state a snapshot holds;
        ``versions`` finds the earlier versions its clocks still run under (SnapshotError if
        the snapshot is unusable)."""
        engine = cls(ruleset, history=False, retain=retain, scope=scope)
        ctx = engine.context
        ruleset = ctx.ruleset

        def version(name: str) -> RuleSet:
            found = ruleset if name == ruleset.version else ctx.versions.get(name) or versions(name)
            if found is None:
                raise SnapshotError(f"the snapshot's clocks run under rule set {name[:19]}…, which is not stored")
            ctx.versions[name] = found = engine.scope(found)
            return found

        ctx.state = load_state(blob, ruleset, version, ctx.factory.make)
        ctx.actions = rule_actions(ctx, ruleset)
        ctx.network.compile(ruleset, carried(ctx))       # with the earlier versions' rules its clocks need
        ctx.network.rehold(ctx.state.held)
        return engine

    # -- undoing a write (engine.eval.undo) --------------------------------------------
    def begin(self) -> int:
        """Record every change from now on, so the write can be rolled back; a mark of
        where it began. Rule changes (:meth:`cut_over`) are not recorded: end first."""
        ctx = self.context
        journal = ctx.journal = Journal()
        ctx.state.book.journal = ctx.network.journal = journal
        return self.mark()

    def mark(self) -> int:
        """A place in the write in progress to roll back to."""
        ctx = self.context
        journal, state = ctx.journal, ctx.state
        if journal is None:
            raise RuntimeError("no write in progress: begin() first")
        book = state.book
        place = journal.mark()
        now, inclusive, applied, seq, counter = state.now, state.now_inclusive, state.applied, state.seq, book.counter

        def restore() -> None:
            state.now, state.now_inclusive, state.applied, state.seq = now, inclusive, applied, seq
            book.counter = counter
        journal.undo(restore)
        return place

    def rollback(self, mark: int) -> None:
        """Put the state, and what durable_rules holds, back as they were at ``mark``.
        :class:`Irreversible` if durable_rules failed inside its memory (before or while
        rolling back): the engine must then be rebuilt."""
        ctx = self.context
        journal, network = ctx.journal, ctx.network
        if journal is None:
            raise RuntimeError("no write in progress: nothing to roll back")
        if network.damaged:
            raise Irreversible("durable_rules failed inside its memory: what it holds is not known")
        network.discard()
        journal.rollback(mark)
        if network.damaged:
            raise Irreversible("durable_rules failed while the write was rolled back")

    def end(self) -> None:
        """Stop recording: what was written stays."""
        ctx = self.context
        ctx.journal = ctx.state.book.journal = ctx.network.journal = None

    # -- what it holds --------------------------------------------------------------
    @property
    def ruleset(self) -> RuleSet:
        """The version in force."""
        return self.context.ruleset

    @property
    def versions(self) -> dict[str, RuleSet]:
        """Every version known by its hash: the one in force and those clocks ran under."""
        return self.context.versions

    @property
    def retain(self) -> timedelta | None:
        return self.context.retain

    @property
    def state(self) -> EngineState:
        return self.context.state

    @property
    def now(self) -> datetime | None:
        return self.context.state.now

    @property
    def decisions(self) -> list[Decision]:
        """Every decision made, in order (an engine made with ``history=True``)."""
        history = self.context.state.history
        if history is None:
            raise AttributeError("an engine made with history=False keeps no decisions")
        return history.decisions

    @property
    def render(self) -> bool:
        return self.context.actions.render

    @render.setter
    def render(self, value: bool) -> None:
        """Off while replaying history whose decisions are already stored: no message is
        rendered for a decision that will be discarded."""
        self.context.actions.render = value

    # -- evaluating -----------------------------------------------------------------
    def validate(self, raw: Fact) -> Fact:
        """Check a fact against the schema; raises FactError naming each bad field."""
        try:
            loaded: Fact = self._schema.load(raw)
        except ValidationError as err:
            raise FactError(flatten_errors(err.messages)) from None
        return loaded

    def apply(self, raw: Fact) -> Outcome:
        """Apply one fact (a dict as posted). A repeated (source, id) changes nothing."""
        return self.apply_loaded(self.validate(raw))

    def apply_loaded(self, fact: Fact) -> Outcome:
        """Apply a fact already loaded by :meth:`validate` (or ``FactSchema``)."""
        ctx = self.context
        state, history = ctx.state, ctx.state.history
        key = (fact["source"], fact["id"])
        if history is not None and key in history.outcomes:
            return Outcome([history.decisions_by_id[i] for i in history.outcomes[key]], duplicate=True)
        outcome = ctx.outcome = Outcome()
        at = fact["time"]
        if state.now is None or at > state.now:
            advance(ctx, at, inclusive=False)
            state.now, state.now_inclusive = at, False
        journal = ctx.journal
        if history is not None:
            if journal is not None:
                journal.put(history.facts_by_ref, fact_ref(fact["source"], fact["id"]))
            history.facts_by_ref.setdefault(fact_ref(fact["source"], fact["id"]), fact)
        if fed.is_fed(fact):               # the global partition: another partition's decision
            fed.take(ctx, fact)
        elif fact["type"] == ACK_TYPE:       # an escalation answered: its level repeats no more
            acknowledge(ctx, fact)
        else:
            ctx.network.post(posted_fact(fact, f"f{state.next_seq()}"), state.held)
        ctx.network.drain()
        if history is not None:
            if journal is not None:
                journal.put(history.outcomes, key)
            history.outcomes[key] = [d.id for d in outcome.decisions]
        state.applied += 1
        if ctx.retain is not None and state.applied % PRUNE_EVERY == 0:
            self.prune()
        return outcome

    def advance(self, until: datetime) -> Outcome:
        """Move event time to ``until``: every deadline at or before it fires."""
        ctx = self.context
        state = ctx.state
        outcome = ctx.outcome = Outcome()
        if state.now is None or until > state.now or (until == state.now and not state.now_inclusive):
            advance(ctx, until, inclusive=True)
            state.now, state.now_inclusive = until, True
        else:       # overdue deadlines (marks a late fact added in the past) fire now
            advance(ctx, state.now, inclusive=state.now_inclusive)
        return outcome

    def cut_over(self, ruleset: RuleSet, at: datetime) -> Outcome:
        """Put ``ruleset`` in force from ``at`` (docs/RULES.md, "Rule changes"; engine.eval.cutover)."""
        return cut_over(self.context, self.scope(ruleset), at)

    def next_deadline(self) -> datetime | None:
        """The earliest instant at which some clock will decide something, or a monthly
        review pack is due (engine.eval.packs)."""
        state = self.context.state
        deadlines = [d for d in (state.book.next_deadline(),
                                 packs.next_due(self.context.ruleset, state.now, state.now_inclusive)) if d]
        return min(deadlines) if deadlines else None

    def prune(self) -> int:
        """Forget the clocks that finished more than ``retain`` ago; how many were."""
        ctx = self.context
        state = ctx.state
        if ctx.retain is None or state.now is None:
            return 0
        horizon = state.now - ctx.retain
        book, firsts = state.book, state.firsts
        gone = book.forget_finished(horizon)
        journal = ctx.journal
        for key in [k for k, (at, _) in firsts.items() if at < horizon and k not in book.records]:
            if journal is not None:
                journal.put(firsts, key)
            del firsts[key]         # an earlier fact no clock started from within ``retain``
        for record in gone:
            for decision in record.issued.values():
                if journal is not None:
                    journal.put(state.dependents, decision.id)
                state.dependents.pop(decision.id, None)
        return len(gone)

    # -- reads (engine.eval.reads) -----------------------------------------------------
    def clocks(self, at: datetime | None = None) -> list[dict[str, object]]:
        """Running clocks with their readings at ``at`` (default: the engine's time)."""
        return reads.clocks(self.context.state, at)

    def window_reading(self, target_id: str, label: str,
                       at: datetime | None = None) -> tuple[timedelta, timedelta] | None:
        """(down time counted up to ``at``, service time) of an availability/threshold window."""
        ctx = self.context
        return reads.window_reading(ctx.state, ctx.ruleset, ctx.retain, target_id, label, at)

    def maintenance_spans(self, target_id: str, start: datetime, end: datetime,
                          at: datetime | None = None) -> list[Span]:
        """The posted maintenance windows of a target's window clocks that overlap [start, end)."""
        return reads.maintenance_spans(self.context.state, target_id, start, end, at)

    def window_down_spans(self, target_id: str, label: str,
                          at: datetime | None = None) -> list[tuple[datetime, datetime]] | None:
        """The spans a window counted down time in, up to ``at`` (calendar hours not applied)."""
        return reads.window_down_spans(self.context.state, target_id, label, at)

    def window_record(self, target_id: str, label: str) -> ClockRecord | None:
        """The clock record of a window (None if none was made or it was forgotten)."""
        return reads.window_record(self.context.state, target_id, label)

    def clock_keys(self) -> tuple[set[str], StoppedKeys]:
        """(keys of the clocks running or paused now, a view of those that have stopped)."""
        return reads.clock_keys(self.context.state)

    def clock_record(self, key: str) -> ClockRecord | None:
        """The clock record ``<target>/<subject or window label>``, while it is kept."""
        return self.context.state.book.get(key)

    def trace(self, decision_id: str) -> Trace:
        """The derivation tree of a decision this engine made (``history=True``)."""
        return reads.trace(self.context.state, self.context.ruleset, decision_id)


def _whole(ruleset: RuleSet) -> RuleSet:
    return ruleset




__all__ = ["Engine", "Outcome"]
