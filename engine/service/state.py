"""What the parts of a running service share: the one engine, the write lock that guards
it, and where it stands against the store.

Every part (ingestion, clock firing, rule changes, the reads) is given this one object,
never another part's privates. Whatever changes the engine holds ``write_lock`` and leaves
the store holding exactly what the engine decided; if a write fails after the engine moved,
``engine_ahead`` says so until the engine is rebuilt from the store
(engine.service.keeper). Readers of the published clocks (``readmodel``) and of the store
never take the lock.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from engine.eval.engine import Engine
from engine.lang.model import RuleSet
from engine.service.clockview import ClockReadModel
from engine.service.recovery import Versions
from engine.store.store import Store


class NotReady(Exception):
    """The service is still rebuilding its state from the store."""


class ServiceState:
    """The engine and the facts about it that every part of the service reads or moves."""

    def __init__(self, store: Store, ruleset: RuleSet, now: Callable[[], datetime]):
        self.store = store
        self.now = now
        self.ruleset = ruleset                      # the rule set in force (or about to be, before start)
        self.versions = Versions(store, ruleset)    # every version the store has seen
        self.engine: Engine | None = None
        # Held by whatever changes the engine; a caller that must hold writers back (a test
        # standing in for a long write) may hold it too. Readers of the store or of the
        # published clocks never take it.
        self.write_lock = threading.RLock()
        self.engine_ahead = False                   # a write failed after the engine moved: rebuild first
        self.last_fact_seq = 0                      # the last stored fact the engine has applied
        self.last_tick_seq = 0                      # the last stored tick it has applied
        self.readmodel = ClockReadModel()           # the clocks as the last write left them: read lock-free
        self.ready = threading.Event()              # set once rebuilt; cleared while rebuilding again
        self.replayed = 0                           # facts replayed by the rebuild under way or last done
        self.rebuild_seconds: float | None = None

    def publish(self) -> None:
        """Publish the clocks as the write just committed left them (under the write lock);
        an engine that may be ahead of the store publishes nothing until it is rebuilt."""
        if self.engine is not None and not self.engine_ahead:
            self.readmodel.publish(self.engine)

    def progress(self) -> dict:
        """Whether the service is ready, and how far its rebuild got (``/readyz``)."""
        return {"ready": self.ready.is_set(), "replayed": self.replayed,
                "rebuild_seconds": self.rebuild_seconds}

    def require_ready(self) -> None:
        """Raise NotReady (with the progress) while the state is being rebuilt."""
        if not self.ready.is_set():
            raise NotReady(self.progress())
