"""Storage for the service: facts, the hash-chained decision log, notifications, rule sets,
API tokens, clock ticks and engine snapshots, on SQLite (WAL) or PostgreSQL through peewee.

The engine evaluates without this package; the service wires it in. Records go in and come
out as plain dicts. :class:`Store` is the one object the rest of the code uses; its methods
live with their concern:

- facts.py: the fact log (append-only, once per source and id, with each fact's outcome);
- ledger.py: the chained decision ledger; chain.py and audit.py: the audit chains of
  decisions, facts and notifications (keyed with the audit key), checkpoints, verification;
- outbox.py: notifications;
- tokens.py: API tokens, hashed at rest;
- replay.py: rule sets, ticks and snapshots, for rebuilding the engine on restart;
- base.py: transactions, the prepared-SQL fast paths and paging they share;
- models.py: the tables and the database a URL names; encoding.py: records as columns;
- migrations.py: the schema version, and upgrading databases of earlier releases on open.
"""
from __future__ import annotations

from engine.store import migrations
from engine.store.base import DEFAULT_LIMIT, MAX_LIMIT
from engine.store.chain import GENESIS, chain_hash
from engine.store.encoding import canonical_json
from engine.store.facts import FactLog
from engine.store.ledger import Ledger
from engine.store.migrations import SCHEMA_VERSION, SchemaVersionError
from engine.store.models import database
from engine.store.outbox import Outbox
from engine.store.replay import ReplayRecords
from engine.store.tokens import ROLES, Tokens, token_digest


class Store(FactLog, Ledger, Outbox, Tokens, ReplayRecords):
    """Facts, decisions, notifications, rule sets, tokens, ticks and snapshots in one database."""

    @classmethod
    def open(cls, url: str, audit_key: bytes | None = None) -> Store:
        """The store at ``url``, its schema created or upgraded to the newest version
        (migrations.py); a database newer than this code is refused (SchemaVersionError).
        ``audit_key`` (chain.load_key) keys the audit chains; without it, new links are
        plain SHA-256, and a chain already keyed cannot be written."""
        store = cls(database(url))
        store.audit_key = audit_key
        store.db.connect(reuse_if_open=True)
        try:
            with store.transaction():
                migrations.upgrade(store.db, store.m)
                store._start_chain()
        except BaseException:
            store.close()
            raise
        return store

    def schema_version(self) -> int:
        """The schema version of the database (migrations.SCHEMA_VERSION once opened)."""
        return migrations.schema_version(self.db)


__all__ = ["Store", "SCHEMA_VERSION", "SchemaVersionError", "GENESIS", "ROLES", "DEFAULT_LIMIT",
           "MAX_LIMIT", "canonical_json", "chain_hash", "token_digest"]
