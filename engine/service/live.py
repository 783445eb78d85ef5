"""The running service without HTTP: one Engine, one Store, live time.

Single writer: every change to the engine goes through the write lock and is stored in
the same database transaction as the fact (or clock tick) that caused it, so what the
store holds is exactly what the engine has decided. If a transaction fails after the
engine moved, the engine is rebuilt from the store before the next write.

Restart recovery replays stored facts and ticks in their original order (see
:meth:`Store.ticks`): deterministic decision ids make the replay re-derive what is
already stored, and deadlines missed while the service was down fire afterwards.

:class:`SlmService` builds the parts, each given the one :class:`ServiceState` they share,
and runs the life cycle: ``facts`` (ingestion), ``deadlines`` (clock firing), ``rules``
(rule changes), ``store_reads`` (what the store alone answers) and ``engine_reads`` (what
needs the live engine).

On a database several processes share (PostgreSQL, ``lease_ttl``), ``ownership`` decides
when this life cycle runs: a standby starts it when it takes the lease over, and an owner
that loses the lease stops writing and stands by again (engine.service.ownership). There,
the owner also evaluates the facts that API nodes stored (``backlog``).

``role`` (``slm serve --role``): ``all`` and ``worker`` run the life cycle above (a worker
just serves no API); ``api`` holds no engine at all: ``facts`` stores facts for the owner
(engine.service.intake) and the reads that need the engine refuse (NoEngineHere).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from engine.clock import utcnow
from engine.lang.loader import load_rules
from engine.lang.model import RuleSet
from engine.lang.partitions import PartitionMap
from engine.lang.rulescope import RuleScope
from engine.service.backlog import Backlog
from engine.service.clockview import ClockReadModel
from engine.service.deadlines import Deadlines
from engine.service.enginereads import EngineReads
from engine.service.ingestion import FactIngestion
from engine.service.intake import FactIntake
from engine.service.keeper import EngineKeeper
from engine.service.lateness import DEFAULT_MAX_LATENESS
from engine.service.ownership import Ownership
from engine.service.recorder import DecisionRecorder
from engine.service.restatements import Restatements
from engine.service.reviewpack import ReviewPacks
from engine.service.rulechanges import RuleChanges
from engine.service.scheduler import DeadlineScheduler
from engine.service.state import ALL, API, OWNER, ROLES, ServiceState
from engine.service.storereads import StoreReads
from engine.service.validation import DEFAULT_SKEW
from engine.service.waivers import Waivers
from engine.store.store import Lease, LeaseLost, Store

log = logging.getLogger("slm.service")

SNAPSHOT_EVERY = 20_000     # facts between engine snapshots: bounds what a restart replays
STARTED_BY = "slm serve"   # who a cut-over at a start is recorded as put in force by
RETAIN = timedelta(days=35)  # a finished clock is kept (for late facts) this long, then forgotten


class SlmService:
    """Facts in, decisions stored; clocks fired on time; state rebuilt on start."""

    def __init__(self, store: Store, rules_dir: str | Path | RuleSet, *, skew: timedelta = DEFAULT_SKEW,
                 now: Callable[[], datetime] = utcnow, history: bool = False,
                 snapshot_every: int = SNAPSHOT_EVERY, retain: timedelta | None = RETAIN,
                 freeze_heap: bool = False, delivery=None,
                 max_lateness: timedelta | None = DEFAULT_MAX_LATENESS,
                 lease_ttl: timedelta | None = None, lease_owner: str | None = None, role: str = ALL,
                 partitions: PartitionMap | None = None, hold_back: timedelta = timedelta(0),
                 background_snapshots: bool = True):
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        self.store = store
        self.now = now
        # engine.notify.worker.DeliveryWorker, or None: notifications are stored, not sent
        self.delivery = delivery
        # a loaded rule set: a reader of the rules in force a database records (slm report)
        ruleset = rules_dir if isinstance(rules_dir, RuleSet) else load_rules(Path(rules_dir))
        self.state = ServiceState(store, ruleset, now)
        self.state.node = role
        if partitions is not None:                      # this partition's share of the rules
            self.state.scope = RuleScope(partitions, store.partition)
        self.keeper = EngineKeeper(self.state, history=history, retain=retain, snapshot_every=snapshot_every,
                                   freeze_heap=freeze_heap, background_snapshots=background_snapshots)
        self.recorder = DecisionRecorder(self.state, delivery)
        self.deadlines = Deadlines(self.state, self.keeper, self.recorder)
        self.scheduler = self._new_scheduler()
        ingestion = FactIngestion(self.state, self.keeper, self.deadlines, self.recorder,
                                  wake=self._wake_scheduler, skew=skew, max_lateness=max_lateness)
        # facts posted here: evaluated here, or (an API node) stored for the owner to evaluate
        self.facts: FactIngestion | FactIntake = (
            ingestion if role != API else FactIntake(self.state, skew=skew, max_lateness=max_lateness,
                                                     partitions=partitions or PartitionMap.single()))
        # what API nodes stored, evaluated by the owner (only PostgreSQL is shared by processes)
        self.backlog = Backlog(self.state, self.keeper, ingestion, self.recorder, wake=self._wake_scheduler) \
            if store.postgres and role != API else None
        self.rules = RuleChanges(self.state, self.keeper, self.deadlines, self.recorder, ruleset.root,
                                 wake=self._wake_scheduler)
        self.store_reads = StoreReads(self.state, retain)
        self.engine_reads = EngineReads(self.state, self.store_reads)
        self.waivers = Waivers(store, lambda: self.state.ruleset, self.state.now)
        self.restatements = Restatements(store, lambda: self.state.ruleset, self.state.now)
        self.recorder.pack_text = ReviewPacks(self.engine_reads.compliance, store.waivers, store.decision).text
        # A database shared with other processes: owner or standby by the partition's lease
        # (``lease_owner`` names this process in it; default host:pid:nonce). None: the only writer.
        self.ownership = None if lease_ttl is None or role == API else Ownership(
            self.state, lease_ttl, take_over=self._take_over, step_down=self._step_down, owner=lease_owner,
            partition=store.partition, hold_back=hold_back, snapshot=self._snapshot)
        self.failure: BaseException | None = None
        self._on_failure: Callable[[BaseException], None] | None = None
        self._threads: list[threading.Thread] = []

    def _new_scheduler(self) -> DeadlineScheduler:
        return DeadlineScheduler(self.deadlines.next_deadline, self.deadlines.tick, self.now)

    def _wake_scheduler(self) -> None:
        self.scheduler.wake()

    def start(self, background: bool = True, on_failure: Callable[[BaseException], None] | None = None) -> None:
        """Rebuild state (in a thread if ``background``) and start the deadline scheduler.

        If rebuilding fails in the background, ``on_failure`` gets the exception (the
        CLI exits: a service that cannot rebuild its state must not look alive).

        With a lease (``lease_ttl``): start the lease loop. This process is a standby until
        it owns the lease, and then starts as above, always in the background."""
        self._on_failure = on_failure
        if self.state.node == API:                 # no engine to rebuild: ready at once
            self.state.ready.set()
        elif self.ownership is not None:
            self.ownership.start()
        else:
            self._begin(background)

    def _begin(self, background: bool) -> None:
        tenure = self.state.tenure
        if not background:
            self._start(tenure)
            return

        def run():
            try:
                self._start(tenure)
            except Exception as exc:
                self.failure = exc
                if self._on_failure:
                    self._on_failure(exc)
        self._spawn(run, "slm-rebuild")

    def _start(self, tenure: int) -> None:
        """Rebuild, catch up, then take writes: the start of the single writer, and of an
        owner's tenure. An owner that stood by meanwhile (``tenure`` is over) stops short;
        one whose lease is found gone stands by (no failure: the lease loop goes on)."""
        state = self.state
        try:
            with state.write_lock:
                if state.tenure != tenure:
                    return
                state.engine_ahead = False
                state.engine = self.keeper.rebuild(state.ruleset)
                with self.store.transaction():      # a tick and its decisions: stored together
                    self.deadlines.catch_up()
                if not self.store.cutovers() or state.engine.ruleset.version != state.ruleset.version:
                    self.rules.cut_over(state.ruleset, STARTED_BY)    # first start, or started with changed files
                self.keeper.maybe_snapshot()
                self.keeper.settle_heap()
                state.publish()
                if state.tenure != tenure:          # stood by while rebuilding: its step-down lets go
                    return
                state.ready.set()
                self._spawn(self.scheduler.run, "slm-scheduler")
                if self.backlog is not None:
                    self._spawn(self.backlog.run, "slm-backlog")
                if self.delivery is not None:       # picks up what a previous run left queued
                    self.delivery.start()
        except LeaseLost as lost:
            log.warning("the lease was lost while starting (%s); standing by", lost)
            state.stand_by()
            state.lease_lost()
        except Exception:
            log.exception("rebuilding state failed; the service stays not ready")
            raise

    def _take_over(self, lease: Lease) -> None:
        """The lease loop acquired the lease (and fenced the store with it): start a tenure,
        as the single writer starts, in the background."""
        state = self.state
        state.role, state.lease, state.holder = OWNER, lease, None
        state.tenure += 1
        self.scheduler = self._new_scheduler()     # the last tenure's winds down on its own
        self._begin(background=True)

    def _step_down(self, why: str) -> None:
        """Write nothing more (the store already refuses it): stand by, stop the scheduler
        and delivery, let the engine go. Waits for a write in progress (it ends refused, or
        committed under the epoch it began in) and for a rebuild in progress."""
        state = self.state
        state.stand_by()
        if self.backlog is not None:
            self.backlog.stop()
        with state.write_lock:
            self.scheduler.stop()
            if self.delivery is not None:
                self.delivery.stop()
            engine, state.engine = state.engine, None
            state.engine_ahead = False
            state.ready.clear()                     # again, under the lock: a start that checked its tenure
                                                    # before stand_by() may have set it since
            state.readmodel = ClockReadModel()      # a standby shows no clocks
            if engine is not None:
                engine.close()
                self.keeper.settle_heap(released=True)

    def _snapshot(self) -> None:
        """Snapshot what was applied since the last snapshot (an owner about to hand over)."""
        with self.state.write_lock:
            if self.state.ready.is_set() and self.state.engine is not None:
                self.keeper.maybe_snapshot(force=True)

    def load_state(self) -> None:
        """Rebuild the engine from the store and write nothing: for a reader beside the
        running server (``slm report``). The state stands where the last stored fact or
        tick left it; deadlines due since then are the server's to fire."""
        state = self.state
        with state.write_lock:
            state.engine = self.keeper.rebuild(state.ruleset)
            state.publish()

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def stop(self) -> None:
        """Stop the scheduler and delivery; snapshot what was applied since the last snapshot.
        An owner then releases its lease, so that a standby takes over at once."""
        if self.ownership is not None:
            self.ownership.stop_taking_over()
        if self.backlog is not None:
            self.backlog.stop()
        self.scheduler.stop()
        if self.delivery is not None:
            self.delivery.stop()
        if self.state.ready.is_set():
            with self.state.write_lock:
                try:
                    self.keeper.maybe_snapshot(force=True)
                except Exception:
                    log.exception("the snapshot at stop failed (the next start replays more)")
        self.keeper.wait_for_snapshot()          # one made beside the writer: stored before the store closes
        if self.ownership is not None:
            self.ownership.release()
        self.scheduler.wake()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
