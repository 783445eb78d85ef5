"""Storage for the service: facts, the hash-chained decision log, notifications, rule sets,
API tokens, clock ticks and engine snapshots, on SQLite (WAL) or PostgreSQL through peewee.

The engine evaluates without this package; the service wires it in. Records go in and come
out as plain dicts. :class:`Store` is the one object the rest of the code uses; its methods
live with their concern:

- facts.py: the fact log (append-only, once per source and id, with each fact's outcome);
- ledger.py: the hash-chained decision ledger and its verification;
- outbox.py: notifications;
- tokens.py: API tokens, hashed at rest;
- engine_state.py: rule sets, ticks and snapshots, for rebuilding the engine on restart;
- base.py: transactions, the prepared-SQL fast paths and paging they share;
- models.py: the tables and the database a URL names; encoding.py: records as columns.
"""
from __future__ import annotations

from engine.store.base import DEFAULT_LIMIT, MAX_LIMIT
from engine.store.encoding import canonical_json
from engine.store.engine_state import EngineState
from engine.store.facts import FactLog
from engine.store.ledger import GENESIS, Ledger, chain_hash
from engine.store.models import database
from engine.store.outbox import Outbox
from engine.store.tokens import ROLES, Tokens, token_digest

_SCHEMA_LOCK = 0x736C6D01    # pg advisory lock key taken while creating tables


class Store(FactLog, Ledger, Outbox, Tokens, EngineState):
    """Facts, decisions, notifications, rule sets, tokens, ticks and snapshots in one database."""

    @classmethod
    def open(cls, url: str) -> "Store":
        store = cls(database(url))
        store.db.connect(reuse_if_open=True)
        store._create_tables()
        return store

    def _create_tables(self) -> None:
        with self.transaction():
            if self.postgres:
                self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self.db.create_tables(self.m.all, safe=True)
            self._start_chain()


__all__ = ["Store", "GENESIS", "ROLES", "DEFAULT_LIMIT", "MAX_LIMIT", "canonical_json",
           "chain_hash", "token_digest"]
