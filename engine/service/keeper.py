"""Keeping the live engine what the store says it is.

The engine is rebuilt from the store on start (engine.service.recovery) and snapshotted
every ``snapshot_every`` new facts so that a restart replays little. A write that fails is
undone (engine.eval.undo): the engine goes back to where it stood before the write, as
the store does. Only where that cannot be exact (durable_rules failed inside its memory, a
lost lease or connection, a rule change) is the engine rebuilt from the store before the
next write: what the store holds is what the engine has decided, never less.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from engine.eval.engine import Engine
from engine.eval.undo import Irreversible
from engine.lang.errors import FactError
from engine.lang.model import RuleSet
from engine.service.recovery import rebuild, settle_heap
from engine.service.snapshots import Snapshots
from engine.service.state import NotReady, ServiceState
from engine.store.store import LeaseLost

log = logging.getLogger("slm.service")


class EngineKeeper:
    """Rebuilds, snapshots and restores the engine of a :class:`ServiceState`."""

    def __init__(self, state: ServiceState, *, history: bool, retain: timedelta | None,
                 snapshot_every: int, freeze_heap: bool, background_snapshots: bool = True):
        self.state = state
        self.history = history                 # keep the engine's in-memory record too (tests inspect it)
        self.retain = retain                   # finished clocks are forgotten this long after
        self.snapshot_every = snapshot_every   # new facts between engine snapshots; 0: never
        self.freeze_heap = freeze_heap         # see settle_heap (for the process that serves)
        # periodic snapshots are encoded in a forked child (engine.service.snapshots)
        self.snapshots = Snapshots(state.store, background_snapshots)
        self._since_snapshot = 0
        self._began_at = (0, 0)                # (last fact seq, last tick seq) when the write began

    def rebuild(self, ruleset: RuleSet) -> Engine:
        """The engine as the store leaves it (see engine.service.recovery)."""
        state = self.state

        def progress(count: int) -> None:
            state.replayed = count
        rebuilt = rebuild(state.store, ruleset, history=self.history, retain=self.retain,
                          snapshots=bool(self.snapshot_every), progress=progress, versions=state.versions,
                          scope=state.scope)
        state.last_fact_seq, state.last_tick_seq = rebuilt.last_fact_seq, rebuilt.last_tick_seq
        self._since_snapshot = rebuilt.replayed
        state.rebuild_seconds = rebuilt.seconds
        return rebuilt.engine

    def begin(self) -> int:
        """Record the engine's changes for a write (under the write lock), so that a failure
        can undo them (:meth:`undo`); a mark of where the write began."""
        state = self.state
        assert state.engine is not None     # guarded() made sure
        self._began_at = (state.last_fact_seq, state.last_tick_seq)
        return state.engine.begin()

    def end(self) -> None:
        """The write is over: stop recording."""
        if self.state.engine is not None:
            self.state.engine.end()

    def undo(self, mark: int) -> bool:
        """The write failed: the engine back to ``mark`` (where :meth:`begin` left it), the
        places in the log as they were; whether it was undone. If that cannot be done
        exactly, the engine is marked ahead of the store and rebuilt before the next write."""
        state = self.state
        assert state.engine is not None
        try:
            state.engine.rollback(mark)
        except Exception as error:      # Irreversible, or undoing failed: nothing else is exact
            level = logging.WARNING if isinstance(error, Irreversible) else logging.ERROR
            log.log(level, "a failed write could not be undone (%s); rebuilding from the store", error)
            state.engine_ahead = True
            return False
        finally:
            state.engine.end()
        state.last_fact_seq, state.last_tick_seq = self._began_at
        state.undone += 1
        return True

    def applied(self, count: int) -> None:
        """``count`` new facts were stored and applied: snapshot if that many are due."""
        self._since_snapshot += count
        self.maybe_snapshot()

    def maybe_snapshot(self, force: bool = False) -> None:
        """Snapshot the engine (under the write lock) every ``snapshot_every`` new facts.

        A periodic snapshot is encoded beside the writer (engine.service.snapshots): the
        write lock is held only to fork. One due while another is still being made waits
        for the next write. ``force`` (at a stop, a hand-over, a start) waits for the one
        being made, then snapshots what is new and returns once it is stored."""
        state = self.state
        if not self.snapshot_every or state.engine is None or state.engine_ahead:
            return
        snapshots = self.snapshots
        if force:
            snapshots.wait()               # stored (or failed) before a stop or hand-over goes on
        if snapshots.take_failed():
            self._since_snapshot = max(self._since_snapshot, self.snapshot_every)     # take one again
        if self._since_snapshot < self.snapshot_every and not (force and self._since_snapshot):
            return
        if snapshots.busy and not force:
            return
        self.settle_heap()                 # first: what is frozen is not copied by the child's collector
        snapshots.take(state.engine, state.last_fact_seq, state.last_tick_seq, wait=force)
        self._since_snapshot = 0

    def wait_for_snapshot(self) -> None:
        """Until the snapshot being made beside the writer (if any) is stored or failed."""
        self.snapshots.wait()

    def settle_heap(self, released: bool = False) -> None:
        """Keep the engine's state out of the garbage collector's sight, in the process
        that serves (see :func:`engine.service.recovery.settle_heap`)."""
        if self.freeze_heap:
            settle_heap(released)

    @contextmanager
    def guarded(self) -> Iterator[None]:
        """A write (under the write lock): refused if this process no longer owns the
        database or has no engine; rebuilt first if an earlier write left the engine ahead
        of the store; marked ahead if this one fails for any reason but a refused fact or a
        service not ready (those fail before the engine moves).

        A write that finds the lease gone (LeaseLost: another process took the database
        over) is no failure to rebuild from and retry: this process stands by at once, and
        its lease loop lets the engine go (engine.service.ownership)."""
        state = self.state
        state.require_engine()
        if state.engine_ahead:
            self.restore()
        try:
            yield
        except (FactError, NotReady):
            raise
        except LeaseLost:
            state.stand_by()
            state.lease_lost()
            raise
        except BaseException:
            state.engine_ahead = True           # the engine may be ahead of the store
            raise

    def restore(self) -> None:
        """Rebuild the engine from the store after a write failed once it had moved (under
        the write lock); ``close`` frees the replaced one's rulesets."""
        state = self.state
        log.warning("a write failed after the engine moved; rebuilding from the store")
        state.rebuilds += 1
        state.ready.clear()                          # /readyz says so while it rebuilds
        try:
            replaced, state.engine = state.engine, self.rebuild(state.ruleset)
            if replaced is not None:
                replaced.close()
            state.engine_ahead = False
            self.settle_heap(released=True)
            state.publish()
        finally:
            state.ready.set()
