"""Storage for the service: facts, the hash-chained decision log, notifications, rule sets,
API tokens, clock ticks and engine snapshots, on SQLite (WAL) or PostgreSQL through peewee.

The engine evaluates without this package; the service wires it in. Records go in and come
out as plain dicts. :class:`Store` is the one object the rest of the code uses; its methods
live with their concern:

- facts.py: the fact log (append-only, once per source and id, with each fact's outcome);
- ledger.py: the chained decision ledger; chain.py and audit.py: the audit chains of
  decisions, facts and notifications (keyed with the audit key), checkpoints, verification;
- outbox.py: notifications;
- tokens.py: API tokens, hashed at rest; sessions.py: console sessions signed out;
- replay.py: rule sets, ticks and snapshots, for rebuilding the engine on restart;
- ownership.py: who may write (a SQLite file's writer lock, PostgreSQL's partition
  leases) and the fence every write transaction of an owner runs first;
- connection.py: PostgreSQL connections replaced once the server closed them, and
  :class:`DatabaseUnavailable`, what a statement that met a broken connection raises;
- base.py: transactions, the prepared-SQL fast paths and paging they share;
- models.py: the tables and the database a URL names; encoding.py: records as columns;
- migrations.py: the schema version, and upgrading databases of earlier releases on open.
"""
from __future__ import annotations

import peewee as pw

from engine.store import migrations
from engine.store.base import DEFAULT_LIMIT, MAX_LIMIT
from engine.store.chain import GENESIS, chain_hash
from engine.store.connection import DRIVER_ERRORS, DatabaseUnavailable
from engine.store.encoding import canonical_json
from engine.store.facts import FactLog
from engine.store.ledger import Ledger
from engine.store.migrations import SCHEMA_VERSION, SchemaVersionError
from engine.store.models import DEFAULT_PARTITION, database
from engine.store.outbox import Outbox
from engine.store.ownership import (
    Lease,
    LeaseHeld,
    LeaseLost,
    Leases,
    PartitionMapMismatch,
    WriterLock,
    WriterLockHeld,
)
from engine.store.replay import ReplayRecords
from engine.store.restatements import RestatementLog
from engine.store.sessions import EndedSessions
from engine.store.silences import Silences
from engine.store.tokens import ROLES, Tokens, token_digest
from engine.store.waivers import WaiverLog


class Store(FactLog, Ledger, Outbox, Tokens, EndedSessions, ReplayRecords, Leases, Silences, WaiverLog,
            RestatementLog):
    """Facts, decisions, notifications, rule sets, tokens, signed-out console sessions,
    ticks, snapshots, partition leases, silences, waivers and restatements in one database."""

    writer_lock: WriterLock | None = None

    @classmethod
    def open(cls, url: str, audit_key: bytes | None = None, writer: bool = False,
             partition: str = DEFAULT_PARTITION) -> Store:
        """The store at ``url``, its schema created or upgraded to the newest version
        (migrations.py); a database newer than this code is refused (SchemaVersionError).
        ``audit_key`` (chain.load_key) keys the audit chains; without it, new links are
        plain SHA-256, and a chain already keyed cannot be written. ``writer``: this
        process evaluates and writes what is decided; on a SQLite file it first takes the
        file's writer lock (WriterLockHeld if another process holds it; it is held until
        ``writer_lock.release()`` or the process ends). PostgreSQL's writers own
        partitions by leases instead (ownership.py); readers need neither. ``partition``:
        the one this store writes and replays for (its owner's); reads of the API span all."""
        db = database(url)
        lock = (WriterLock.take(db.database)
                if writer and isinstance(db, pw.SqliteDatabase) and db.database != ":memory:" else None)
        store = cls(db, partition)
        store.audit_key, store.writer_lock = audit_key, lock
        try:
            store.db.connect(reuse_if_open=True)
            with store.transaction():
                migrations.upgrade(store.db, store.m)
                store._start_chain()
        except BaseException:
            store.close()
            if lock is not None:
                lock.release()
            raise
        return store

    def reading(self, partition: str) -> Store:
        """A store on the same database whose replay reads follow ``partition``'s log (what
        explaining one of its stored facts replays); for reading only: it is not fenced."""
        if partition == self.partition:
            return self
        other = type(self)(self.db, partition)
        other.audit_key = self.audit_key
        return other

    def schema_version(self) -> int:
        """The schema version of the database (migrations.SCHEMA_VERSION once opened)."""
        return migrations.schema_version(self.db)


__all__ = ["Store", "SCHEMA_VERSION", "SchemaVersionError", "GENESIS", "ROLES", "DEFAULT_LIMIT",
           "MAX_LIMIT", "canonical_json", "chain_hash", "token_digest", "Lease", "LeaseHeld", "LeaseLost",
           "WriterLockHeld", "DatabaseUnavailable", "DRIVER_ERRORS", "PartitionMapMismatch"]
