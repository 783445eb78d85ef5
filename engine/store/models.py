"""The tables, as peewee models, and the database a URL names.

The models describe the newest schema (``migrations.SCHEMA_VERSION``); migrations.py brings
databases made by earlier releases up to it. They are defined per database, not at import,
so several stores (each its own database object) can be open at once.

Partitions: facts, decisions, notifications, ticks and snapshots carry a ``partition`` key so
that the service can later run one engine per partition (partitions by service), each with
its own fact log, decision chain and snapshots. Until then every row is in
:data:`DEFAULT_PARTITION`, the column's default, which all writes use. Facts and decisions
are indexed by ``(partition, seq)``, the order one partition's engine replays and pages them.
"""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace
from urllib.parse import urlparse

import peewee as pw
from playhouse.db_url import parse as parse_db_url

from engine.store.connection import CONNECT_TIMEOUT, ReconnectingPostgresqlDatabase

DEFAULT_PARTITION = "default"


def partition_field() -> pw.TextField:
    """The partition a row belongs to: TEXT NOT NULL DEFAULT 'default'."""
    return pw.TextField(default=DEFAULT_PARTITION, constraints=[pw.SQL(f"DEFAULT '{DEFAULT_PARTITION}'")])


def define_models(db: pw.Database) -> SimpleNamespace:
    """Model classes bound to one database, so several stores can be open at once."""

    class Base(pw.Model):
        class Meta:
            database = db

    class Fact(Base):
        seq = pw.BigAutoField()
        source = pw.TextField()
        id = pw.TextField(index=True)
        type = pw.TextField(index=True)
        subject = pw.TextField(null=True, index=True)
        service = pw.TextField(null=True, index=True)
        time = pw.TextField(index=True)          # event time, fixed-width UTC
        body = pw.TextField()                    # canonical JSON of the fact
        received_at = pw.TextField()
        outcome = pw.TextField(null=True)        # canonical JSON list of decision ids; NULL: not evaluated yet
        partition = partition_field()
        prev_hash = pw.TextField(null=True)      # the audit chain (chain.py); NULL: stored before it
        hash = pw.TextField(null=True)
        # The fact's place in its partition's log, given by the owner as it evaluates the fact
        # (NULL: stored by an API node and not evaluated yet); replay and the chain follow it.
        pseq = pw.BigIntegerField(null=True)
        refused = pw.TextField(null=True)        # why the owner's engine could not evaluate it

        class Meta:
            table_name = "facts"
            indexes = ((("source", "id"), True), (("partition", "seq"), False),
                       (("subject", "time"), False), (("partition", "pseq"), True))

    class Decision(Base):
        seq = pw.BigIntegerField(primary_key=True)   # 1, 2, 3 … in chain order
        id = pw.TextField(unique=True)
        kind = pw.TextField(index=True)
        target = pw.TextField(null=True, index=True)
        subject = pw.TextField(null=True, index=True)
        service = pw.TextField(null=True, index=True)
        agreement = pw.TextField(null=True)
        at = pw.TextField(index=True)            # fixed-width UTC
        ruleset = pw.TextField(null=True, index=True)
        body = pw.TextField()                    # canonical JSON of the decision
        prev_hash = pw.TextField()
        hash = pw.TextField()
        partition = partition_field()
        retracts = pw.TextField(null=True, index=True)   # a retraction: the id it retracts (as its body says)

        class Meta:
            table_name = "decisions"
            indexes = ((("partition", "seq"), False),)

    class ChainHead(Base):
        """The last record of an audit chain, by name (chain.py, audit.py)."""
        name = pw.TextField(primary_key=True)
        seq = pw.BigIntegerField()
        last_id = pw.TextField(null=True)
        hash = pw.TextField()
        count = pw.BigIntegerField(default=0)
        chained_from = pw.BigIntegerField(default=1)
        keyed_from = pw.BigIntegerField(null=True)
        mac = pw.TextField(null=True)

        class Meta:
            table_name = "chain_head"

    class Notification(Base):
        seq = pw.BigAutoField()
        id = pw.TextField(unique=True)
        decision = pw.ForeignKeyField(Decision, field=Decision.id, column_name="decision",
                                      index=True)
        recipient = pw.TextField(index=True)
        status = pw.TextField(index=True)
        body = pw.TextField()                    # canonical JSON of the notification
        created_at = pw.TextField()
        partition = partition_field()
        # delivery (schema version 3): the outbox's own bookkeeping, in fixed-width UTC text
        attempts = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
        last_error = pw.TextField(null=True)
        next_attempt_at = pw.TextField(null=True)    # due from then (NULL: now)
        message_id = pw.TextField(null=True)
        queued_at = pw.TextField(null=True)          # entered the queue (--delivery-max-age counts from it)
        lease_until = pw.TextField(null=True)        # claimed by a deliverer until then
        prev_hash = pw.TextField(null=True)      # the audit chain (chain.py); NULL: stored before it
        hash = pw.TextField(null=True)

        class Meta:
            table_name = "notifications"
            indexes = ((("status", "next_attempt_at"), False),)

    class Delivery(Base):
        """A delivery outcome of a notification (created, sent, retrying, failed, …), appended
        each time the outbox changes its delivery columns: the audit chain of what delivery
        did (chain.py), which the notification's columns must agree with (audit.py)."""
        seq = pw.BigAutoField()
        notification = pw.TextField(index=True)  # the notification's id
        event = pw.TextField()                   # what happened: created, sent, requeued, …
        status = pw.TextField()                  # the notification's status after it
        at = pw.TextField()                      # fixed-width UTC, the server's clock
        body = pw.TextField()                    # canonical JSON: the delivery columns after it
        partition = partition_field()
        prev_hash = pw.TextField()
        hash = pw.TextField()

        class Meta:
            table_name = "deliveries"

    class RuleSet(Base):
        seq = pw.BigAutoField()
        hash = pw.TextField(unique=True)
        files = pw.TextField()                   # canonical JSON {path: content}
        loaded_at = pw.TextField()
        generation = pw.BigIntegerField(index=True)   # grows each time a set is loaded

        class Meta:
            table_name = "rulesets"

    class Token(Base):
        seq = pw.BigAutoField()
        token_hash = pw.TextField(unique=True)   # sha256 hex of the token; never the token
        role = pw.TextField()
        name = pw.TextField()                    # unique among unrevoked tokens (token_live_name)
        created_at = pw.TextField()
        revoked = pw.BooleanField(default=False)
        sources = pw.TextField(null=True)        # JSON list of glob patterns it may post; NULL: any
        expires_at = pw.TextField(null=True)     # fixed-width UTC; NULL: never
        revoked_at = pw.TextField(null=True)

        class Meta:
            table_name = "tokens"

    Token.add_index(pw.ModelIndex(Token, (Token.name,), unique=True, name="token_live_name",
                                  where=~Token.revoked))

    class Tick(Base):
        """The engine's clock was advanced to ``until`` after fact ``after_fact``: replaying
        facts and ticks in this order re-derives the same decisions."""
        seq = pw.BigAutoField()
        after_fact = pw.BigIntegerField()
        until = pw.TextField()
        partition = partition_field()

        class Meta:
            table_name = "ticks"

    class Snapshot(Base):
        """The engine's state after fact ``fact_seq`` and tick ``tick_seq`` (engine/eval/state.py)."""
        seq = pw.BigAutoField()
        ruleset = pw.TextField()
        state_format = pw.TextField()            # the version of the snapshot's state format
        fact_seq = pw.BigIntegerField()
        tick_seq = pw.BigIntegerField()
        body = pw.BlobField()
        created_at = pw.TextField()
        partition = partition_field()

        class Meta:
            table_name = "snapshots"

    class Cutover(Base):
        """Rule set ``ruleset`` took effect at ``at`` (the server's clock), after fact
        ``after_fact`` and tick ``after_tick``, put in force by ``by`` (a token's name, or
        ``slm serve`` at a start): where a replay puts it in force again. Chained (chain.py)."""
        seq = pw.BigAutoField()
        ruleset = pw.TextField()
        at = pw.TextField()                      # fixed-width UTC
        after_fact = pw.BigIntegerField()
        after_tick = pw.BigIntegerField()
        partition = partition_field()
        by = pw.TextField(null=True)             # NULL: recorded before who was kept
        body = pw.TextField(null=True)           # canonical JSON of the record (what its link covers)
        prev_hash = pw.TextField(null=True)
        hash = pw.TextField(null=True)

        class Meta:
            table_name = "cutovers"

    class PartitionLease(Base):
        """Who owns a partition (ownership.py): its owner's host and pid, the tenure's epoch
        (raised by every acquisition: the fence of the owner's writes), when it was
        acquired and until when it holds, both by the database's clock (fixed-width UTC)."""
        partition = pw.TextField(primary_key=True)
        owner = pw.TextField()
        epoch = pw.BigIntegerField()
        acquired_at = pw.TextField()
        expires_at = pw.TextField()
        wanted_by = pw.TextField(null=True)      # a worker that prefers the partition asks for it
        wanted_until = pw.TextField(null=True)   # until then (its asking runs out unless repeated)

        class Meta:
            table_name = "partition_leases"

    class PartitionMapRow(Base):
        """The map of services to partitions that every node of the database shares (its
        digest and canonical JSON), as the first node recorded it (ownership.py)."""
        id = pw.IntegerField(primary_key=True, constraints=[pw.Check("id = 1")])    # one row
        digest = pw.TextField()
        body = pw.TextField()
        recorded_at = pw.TextField()

        class Meta:
            table_name = "partition_map"

    class EndedSession(Base):
        """A console session signed out (engine/store/sessions.py), known by the SHA-256 of
        its id, refused until its cookie would have expired anyway (fixed-width UTC)."""
        sid_hash = pw.TextField(primary_key=True)
        ended_at = pw.TextField()
        until = pw.TextField(index=True)

        class Meta:
            table_name = "ended_sessions"

    class Silence(Base):
        """One event of a silence (engine/notify/silence.py): ``created`` with its matchers,
        span, creator and reason, or ``expired`` early, by whom. Append-only and chained
        (chain.py): what was silenced, when and by whom cannot be rewritten unseen."""
        seq = pw.BigAutoField()
        id = pw.TextField(index=True)            # the silence's id (sil_…)
        event = pw.TextField()                   # created | expired
        at = pw.TextField()                      # fixed-width UTC, the server's clock
        body = pw.TextField()                    # canonical JSON of the event (what its link covers)
        prev_hash = pw.TextField(null=True)
        hash = pw.TextField(null=True)

        class Meta:
            table_name = "silences"

    class WaiverEvent(Base):
        """One step of a waiver's life (waivers.py): ``requested``, ``approved`` or
        ``revoked``, by a token's name, at the server's clock. Appended only, in the
        ``waivers`` audit chain; a waiver's state is what its events say."""
        seq = pw.BigAutoField()
        waiver = pw.TextField(index=True)        # the waiver's id (wvr_…)
        event = pw.TextField()
        by = pw.TextField()
        at = pw.TextField()                      # fixed-width UTC
        body = pw.TextField()                    # canonical JSON of the event (what its link covers)
        prev_hash = pw.TextField()
        hash = pw.TextField()

        class Meta:
            table_name = "waiver_events"

    class RestatementEvent(Base):
        """One step of a restatement's life (restatements.py): ``requested`` (with the
        superseding decisions it records), ``approved`` or ``revoked``, by a token's name.
        Appended only, in the ``restatements`` audit chain."""
        seq = pw.BigAutoField()
        restatement = pw.TextField(index=True)   # the restatement's id (rst_…)
        event = pw.TextField()
        by = pw.TextField()
        at = pw.TextField()                      # fixed-width UTC
        body = pw.TextField()                    # canonical JSON of the event (what its link covers)
        prev_hash = pw.TextField()
        hash = pw.TextField()

        class Meta:
            table_name = "restatement_events"

    return SimpleNamespace(Fact=Fact, Decision=Decision, ChainHead=ChainHead,
                           Notification=Notification, Delivery=Delivery, RuleSet=RuleSet, Token=Token, Tick=Tick,
                           Snapshot=Snapshot, Cutover=Cutover, PartitionLease=PartitionLease,
                           PartitionMap=PartitionMapRow, EndedSession=EndedSession, Silence=Silence,
                           WaiverEvent=WaiverEvent, RestatementEvent=RestatementEvent,
                           all=[Fact, Decision, ChainHead, Notification, Delivery, RuleSet, Token, Tick, Snapshot,
                                Cutover, PartitionLease, PartitionMapRow, EndedSession, Silence, WaiverEvent,
                                RestatementEvent])


def database(url: str) -> pw.Database:
    """The peewee database a ``sqlite:///…`` or ``postgresql://…`` URL names (not connected)."""
    scheme = urlparse(url).scheme
    params = parse_db_url(url, unquote_password=True, unquote_user=True)
    name = params.pop("database")
    if scheme == "sqlite":
        memory = name in ("", ":memory:")
        pragmas = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}
        # One in-memory database exists per connection: share a single connection.
        extra = {"thread_safe": False, "check_same_thread": False} if memory else {}
        return pw.SqliteDatabase(":memory:" if memory else name, pragmas=pragmas,
                                 timeout=30, lock_type="IMMEDIATE", **extra, **params)
    if scheme in ("postgresql", "postgres"):
        if importlib.util.find_spec("psycopg2") is None:
            raise ValueError("a postgresql:// URL needs the PostgreSQL driver, which is not installed: "
                             "pip install 'slm[postgresql]' (make installs it)")
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        return ReconnectingPostgresqlDatabase(name, **params)
    raise ValueError(f"unsupported database URL {url.split('://')[0]}://… "
                     "(use sqlite:///path.db, sqlite:///:memory: or postgresql://…)")
