"""What the parts of a running service share: the one engine, the write lock that guards
it, and where it stands against the store.

Every part (ingestion, clock firing, rule changes, the reads) is given this one object,
never another part's privates. Whatever changes the engine holds ``write_lock`` and leaves
the store holding exactly what the engine decided; a write that fails is undone in the
engine, and where that cannot be exact, ``engine_ahead`` says so until the engine is
rebuilt from the store (engine.service.keeper). Readers of the published clocks (``readmodel``) and of the store
never take the lock.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from engine.eval.engine import Engine
from engine.lang.model import RuleSet
from engine.lang.partitions import PartitionMap
from engine.lang.rulescope import RuleScope
from engine.service.clockview import ClockReadModel
from engine.service.recovery import Versions
from engine.store.store import Lease, Store
from schemas.values import format_instant

# What this process is to its database (engine.service.ownership):
SINGLE = "single"       # the only writer (SQLite's file lock, or no lease asked for): today's service
OWNER = "owner"         # holds the partition's lease on a shared PostgreSQL database
STANDBY = "standby"     # another process holds it: this one writes nothing and waits to take over


# What this process does (``slm serve --role``, docs/OPERATIONS.md):
ALL = "all"             # API and engine in one process: today's service
API = "api"             # no engine: stores facts for the partition's owner, answers reads from the database
WORKER = "worker"       # the engine: owns partitions, evaluates stored facts, fires deadlines, delivers
ROLES = (ALL, API, WORKER)


class NotReady(Exception):
    """The service is still rebuilding its state from the store."""


class NoEngineHere(NotReady):
    """A read that needs the live engine, asked of an API node (``--role api``), which
    holds none."""

    def __init__(self, what: str):
        super().__init__(f"{what} needs the live engine, and this node (--role api) holds none: ask a node "
                         "with --role all")


class Standby(NotReady):
    """Another process owns the database: this one writes nothing. ``holder`` is that
    process's lease as last seen (None if it could not be read); ``retry_after`` the
    seconds until this one tries to take over again."""

    def __init__(self, holder: Lease | None, retry_after: int):
        self.holder, self.retry_after = holder, retry_after
        super().__init__(standby_detail(holder))


def standby_detail(holder: Lease | None) -> str:
    if holder is None:
        return "this process is a standby: another process owns the database"
    return (f"this process is a standby: {holder.owner} owns partition {holder.partition!r} until "
            f"{format_instant(holder.expires_at)} (by the database's clock, renewed while it runs)")


class ServiceState:
    """The engine and the facts about it that every part of the service reads or moves."""

    def __init__(self, store: Store, ruleset: RuleSet, now: Callable[[], datetime]):
        self.store = store
        self.now = now
        self.ruleset = ruleset                      # the rule set in force (or about to be, before start)
        self.versions = Versions(store, ruleset)    # every version the store has seen
        # the share of each rule set this partition's engine runs, and what it feeds to
        # ``global`` (engine.lang.rulescope); every Rule, and nothing fed, with one partition
        self.scope = RuleScope(PartitionMap.single(), store.partition)
        self.engine: Engine | None = None
        # Held by whatever changes the engine; a caller that must hold writers back (a test
        # standing in for a long write) may hold it too. Readers of the store or of the
        # published clocks never take it.
        self.write_lock = threading.RLock()
        self.engine_ahead = False                   # a write failed after the engine moved: rebuild first
        self.undone = 0                             # failed writes undone in the engine (engine.eval.undo)
        self.rebuilds = 0                           # failed writes the engine was rebuilt after instead
        self.last_fact_seq = 0                      # the last stored fact the engine has applied
        self.last_tick_seq = 0                      # the last stored tick it has applied
        self.readmodel = ClockReadModel()           # the clocks as the last write left them: read lock-free
        self.ready = threading.Event()              # set once rebuilt; cleared while rebuilding again
        self.replayed = 0                           # facts replayed by the rebuild under way or last done
        self.rebuild_seconds: float | None = None
        self.node = ALL                             # what this process does (ROLES)
        # Ownership of a shared database (engine.service.ownership); SINGLE otherwise.
        self.role = SINGLE
        self.lease: Lease | None = None             # OWNER: ours, as last renewed
        self.holder: Lease | None = None            # STANDBY: the owner's, as last seen
        self.retry_after = 5                        # STANDBY: seconds until it tries to take over again
        self.tenure = 0                             # raised by every takeover and step-down
        self.lease_lost: Callable[[], None] = lambda: None   # a write found the lease gone: step down now

    def publish(self) -> None:
        """Publish the clocks as the write just committed left them (under the write lock);
        an engine that may be ahead of the store publishes nothing until it is rebuilt."""
        if self.engine is not None and not self.engine_ahead:
            self.readmodel.publish(self.engine)

    def progress(self) -> dict:
        """Whether the service is ready, and how far its rebuild got (``/readyz``)."""
        return {"ready": self.ready.is_set(), "replayed": self.replayed,
                "rebuild_seconds": self.rebuild_seconds}

    def ownership(self) -> dict | None:
        """Who owns the database, for ``/readyz``: this process (OWNER, with its lease) or
        another (STANDBY, with the owner's lease as last seen); None for the single writer."""
        if self.role == SINGLE:
            return None
        lease = self.lease if self.role == OWNER else self.holder
        shown = None if lease is None else {"partition": lease.partition, "owner": lease.owner,
                                            "epoch": lease.epoch, "expires_at": format_instant(lease.expires_at)}
        return {"role": self.role, "lease": shown}

    def require_owner(self) -> None:
        """Raise Standby if another process owns the database (a write request here)."""
        if self.role == STANDBY:
            raise Standby(self.holder, self.retry_after)

    def require_ready(self) -> None:
        """Raise Standby on a standby, NotReady (with the progress) while the state is being
        rebuilt."""
        self.require_owner()
        if not self.ready.is_set():
            raise NotReady(self.progress())

    def require_engine(self) -> None:
        """What a write checks once it holds the write lock: this process still owns the
        database and has its engine (an owner that stepped down meanwhile has none). An API
        node has none ever: NoEngineHere."""
        if self.node == API:
            raise NoEngineHere("this change")
        self.require_ready()
        if self.engine is None:
            raise NotReady(self.progress())

    def stand_by(self) -> None:
        """This process writes nothing more: a standby from now on (the lease loop, or a
        write that found the lease gone). What holds the engine is let go by the caller."""
        self.role = STANDBY
        self.lease = None
        self.tenure += 1
        self.ready.clear()
