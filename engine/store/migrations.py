"""Schema versions: which version of the tables a database holds, and the steps that bring
a database made by an earlier release up to the tables models.py describes.

The version is the one row of the ``schema_version`` table. A database without that table
but with a ``facts`` table was made before versions were recorded: version 1. An empty
database gets the newest tables directly. :func:`upgrade` runs when a store is opened,
inside the opener's transaction and, on PostgreSQL, under an advisory lock: a step that
fails leaves the database at the version it had, and of two processes starting together
the second finds the work done. A database newer than this code is refused.

Versions:

1. The schema of release 38f9306: facts, decisions, chain_head, notifications, rulesets,
   tokens, ticks, snapshots.
2. A ``partition`` key (TEXT NOT NULL DEFAULT 'default', so existing rows are in the
   default partition) on facts, decisions, notifications, ticks and snapshots, with
   ``(partition, seq)`` indexes on facts and decisions; ``snapshots.code`` (a hash of the
   engine's source files) renamed ``state_format`` (the snapshot's state-format version).
3. ``cutovers``: each rule set that took effect, when (the server's clock) and where in
   the fact log; a database with facts gets one for its newest rule set, from the start
   (what a replay applied before versions were kept).
4. Delivery bookkeeping on notifications (the outbox): ``attempts`` (NOT NULL DEFAULT 0),
   ``last_error``, ``next_attempt_at``, ``message_id``, ``queued_at``, ``lease_until``
   (all nullable), with a ``(status, next_attempt_at)`` index for claiming what is due.
   Notifications left ``pending`` by earlier releases (which never sent any) become
   ``failed`` with that reason, so an upgrade does not mail out old news.

5. Audit chains (engine/store/chain.py): ``prev_hash`` and ``hash`` on facts and
   notifications; ``count``, ``chained_from``, ``keyed_from`` and ``mac`` on
   ``chain_head``; head rows for the fact and notification chains, which start after the
   rows already stored (those predate chaining and are reported as such); the decision
   chain keeps its SHA-256 links, and the first write with an audit key starts its keyed
   part (``keyed_from``).
6. Tokens: ``sources`` (glob patterns of the fact sources a token may post), ``expires_at``
   and ``revoked_at`` (all nullable); ``name`` NOT NULL and unique among unrevoked tokens
   (the partial index ``token_live_name``). A token without a name gets ``ROLE-N``; of
   unrevoked tokens sharing a name the oldest keeps it and the others get ``NAME-2``,
   ``NAME-3`` … (``slm token list`` shows them).
7. ``deliveries``: the delivery outcomes of notifications (created, sent, retrying,
   failed, undeliverable, requeued, cancelled), each appended and chained in its own
   ``deliveries`` chain, whose head row starts empty. Notifications stored before it
   have no outcome records until the outbox next changes them. An index on facts
   ``(subject, time)``: the newest event time of a subject (``--max-lateness``) is then
   one index look-up, not a walk of every fact of the subject.
8. ``partition_leases``: who owns each partition (``owner``, host and pid), in which
   tenure (``epoch``, the fence of the owner's writes), ``acquired_at`` and ``expires_at``
   (engine/store/ownership.py). It starts empty: the first owner makes its partition's row.
9. Facts stored before they are evaluated (docs/SCALING.md section 4): ``facts.pseq``, a
   fact's place in its partition's log, given by the owner as it evaluates the fact (NULL
   while an API node's fact waits for it), unique per partition; ``facts.refused``, why the
   owner's engine could not evaluate a stored fact. Every stored fact was evaluated as it
   was stored, so ``pseq = seq``: the one order so far is the order of the ``default``
   partition's log, and the snapshots, ticks and cut-overs that count facts count the same.
10. Audit records: ``decisions.retracts`` (indexed): the id a ``retracted`` decision retracts, as
   its body says, filled in for the retractions already stored (``GET /v1/decisions``
   filters and flags retracted decisions by it; verify checks it against the body).
   ``cutovers.by`` (who put the rule set in force: NULL for those recorded before),
   ``body`` (the record as canonical JSON, filled in for those stored), ``prev_hash`` and
   ``hash``: the cut-over chain. Its head row is made when the store opens, linking the
   cut-overs already stored in order, with the audit key if that store has it.
11. ``ended_sessions``: the console sessions signed out (engine/store/sessions.py), by the
   SHA-256 of the session id, each kept ``until`` its cookie would have expired (indexed,
   to prune by). It starts empty: sessions signed out before were known only to the
   process that served the sign-out.
12. ``partition_map``: one row, the digest and canonical JSON of the map of services to
   partitions (``slm serve --partitions``) that the first node recorded; a node with
   another map refuses to start. It starts empty: the first node records its map, or the
   single partition ``default`` when it has none. ``partition_leases.wanted_by`` and
   ``wanted_until``: a worker that prefers a partition another one owns asks for it there,
   and the owner hands it over at its next renewal.

13. ``waiver_events``: each request, approval and revocation of a waiver (a decision or a
   target's period left out of compliance, docs/OPERATIONS.md), appended and chained in its
   own ``waivers`` chain, whose head row the store makes when it opens. It starts empty.

15. ``restatement_events``: each request (with the superseding decisions it records),
   approval and revocation of a restatement of a settled month (docs/OPERATIONS.md,
   "Restatements"), appended and chained in its own ``restatements`` chain. It starts empty.

A new version is a step function here (playhouse.migrate operations on table and column
names, never the models, which describe only the newest schema), its entry in
:data:`STEPS`, models.py changed to match, and a fixture database of the version before it
(fixtures/databases) for tests/store/test_migrations.py.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import peewee as pw
from playhouse.migrate import SchemaMigrator

from engine.store.encoding import now_text

log = logging.getLogger("slm.store")

SCHEMA_LOCK = 0x736C6D01     # pg advisory lock key held while reading and changing the schema

_DEFAULT_PARTITION = pw.SQL("DEFAULT 'default'")


def _v2(migrator: SchemaMigrator) -> None:
    partitioned = ("facts", "decisions", "notifications", "ticks", "snapshots")
    migrator.migrate(
        # NOT NULL with a constant default: existing rows read 'default' without a rewrite
        *[migrator.add_column(table, "partition", pw.TextField(constraints=[_DEFAULT_PARTITION]),
                              allow_not_null=True) for table in partitioned],
        # named as peewee names the models' indexes, so upgraded and new databases agree
        migrator.add_index("facts", ("partition", "seq"), name="fact_partition_seq"),
        migrator.add_index("decisions", ("partition", "seq"), name="decision_partition_seq"),
        migrator.rename_column("snapshots", "code", "state_format"))


def _v3(migrator: SchemaMigrator) -> None:
    db = migrator.database

    class Cutover(pw.Model):                     # as version 3 defines it
        seq = pw.BigAutoField()
        ruleset = pw.TextField()
        at = pw.TextField()
        after_fact = pw.BigIntegerField()
        after_tick = pw.BigIntegerField()
        partition = pw.TextField(default="default", constraints=[_DEFAULT_PARTITION])

        class Meta:
            database = db
            table_name = "cutovers"

    Cutover.create_table()
    newest = db.execute_sql("SELECT hash FROM rulesets ORDER BY generation DESC LIMIT 1").fetchone()
    first = db.execute_sql("SELECT MIN(received_at) FROM facts").fetchone()
    if newest is not None and first is not None and first[0] is not None:
        Cutover.insert(ruleset=newest[0], at=first[0], after_fact=0, after_tick=0).execute()


def _v4(migrator: SchemaMigrator) -> None:
    nullable = ("last_error", "next_attempt_at", "message_id", "queued_at", "lease_until")
    migrator.migrate(
        migrator.add_column("notifications", "attempts", pw.IntegerField(constraints=[pw.SQL("DEFAULT 0")]),
                            allow_not_null=True),
        *[migrator.add_column("notifications", name, pw.TextField(null=True)) for name in nullable],
        migrator.add_index("notifications", ("status", "next_attempt_at"),
                           name="notification_status_next_attempt_at"))
    # Not sent now, perhaps months late, to people who never expected it: an admin who
    # wants one sent re-queues it (POST /v1/notifications/{id}/retry).
    migrator.database.execute_sql(
        "UPDATE notifications SET status = 'failed', last_error = 'recorded before this release delivered "
        "notifications: not sent on upgrade (re-queue it to send it)' WHERE status = 'pending'")


def _v5(migrator: SchemaMigrator) -> None:
    from engine.store.chain import GENESIS, Head

    db = migrator.database
    migrator.migrate(
        *[migrator.add_column(table, column, pw.TextField(null=True))
          for table in ("facts", "notifications") for column in ("prev_hash", "hash")],
        migrator.add_column("chain_head", "count", pw.BigIntegerField(default=0)),
        migrator.add_column("chain_head", "chained_from", pw.BigIntegerField(default=1)),
        migrator.add_column("chain_head", "keyed_from", pw.BigIntegerField(null=True)),
        migrator.add_column("chain_head", "mac", pw.TextField(null=True)))
    param = db.param
    for name, seq, last_id, hash in db.execute_sql("SELECT name, seq, last_id, hash FROM chain_head").fetchall():
        head = Head(name, seq, seq, hash, last_id, 1, None, None)
        head.seal(None)
        db.execute_sql(f"UPDATE chain_head SET count = {param}, chained_from = 1, mac = {param} WHERE name = {param}",
                       (seq, head.mac, name))
    for table in ("facts", "notifications"):
        last = db.execute_sql(f"SELECT MAX(seq) FROM {table}").fetchone()[0] or 0
        head = Head(table, last, 0, GENESIS, None, last + 1, None, None)
        head.seal(None)
        db.execute_sql(f"INSERT INTO chain_head (name, seq, last_id, hash, count, chained_from, keyed_from, mac) "
                       f"VALUES ({', '.join([param] * 8)})",
                       (table, last, None, GENESIS, 0, last + 1, None, head.mac))


def _v6(migrator: SchemaMigrator) -> None:
    db = migrator.database
    migrator.migrate(*[migrator.add_column("tokens", name, pw.TextField(null=True))
                       for name in ("sources", "expires_at", "revoked_at")])
    rows = db.execute_sql("SELECT seq, role, name, revoked FROM tokens ORDER BY seq").fetchall()
    taken = {name for _, _, name, _ in rows if name}
    live: set[str] = set()
    for seq, role, name, revoked in rows:
        if name and (revoked or name not in live):
            new = name
        else:
            new = _free_name(name or role, taken, start=2 if name else 1)
            taken.add(new)
            db.execute_sql(f"UPDATE tokens SET name = {db.param} WHERE seq = {db.param}", (new, seq))
        if not revoked:
            live.add(new)
    migrator.migrate(migrator.add_not_null("tokens", "name"))
    db.execute_sql('CREATE UNIQUE INDEX "token_live_name" ON "tokens" ("name") WHERE NOT "revoked"')


def _free_name(base: str, taken: set[str], start: int) -> str:
    """``BASE-N`` for the first N from ``start`` that no token has (as version 6 names them)."""
    n = start
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _v7(migrator: SchemaMigrator) -> None:
    db = migrator.database

    class Delivery(pw.Model):                    # as version 7 defines it
        seq = pw.BigAutoField()
        notification = pw.TextField(index=True)
        event = pw.TextField()
        status = pw.TextField()
        at = pw.TextField()
        body = pw.TextField()
        partition = pw.TextField(default="default", constraints=[_DEFAULT_PARTITION])
        prev_hash = pw.TextField()
        hash = pw.TextField()

        class Meta:
            database = db
            table_name = "deliveries"

    Delivery.create_table()
    # the chain's head row: made by AuditChains._start_chain when the store opens
    migrator.migrate(migrator.add_index("facts", ("subject", "time"), name="fact_subject_time"))


def _v8(migrator: SchemaMigrator) -> None:
    class PartitionLease(pw.Model):              # as version 8 defines it
        partition = pw.TextField(primary_key=True)
        owner = pw.TextField()
        epoch = pw.BigIntegerField()
        acquired_at = pw.TextField()
        expires_at = pw.TextField()

        class Meta:
            database = migrator.database
            table_name = "partition_leases"

    PartitionLease.create_table()


def _v9(migrator: SchemaMigrator) -> None:
    migrator.migrate(migrator.add_column("facts", "pseq", pw.BigIntegerField(null=True)),
                     migrator.add_column("facts", "refused", pw.TextField(null=True)))
    migrator.database.execute_sql('UPDATE "facts" SET "pseq" = "seq"')
    migrator.migrate(migrator.add_index("facts", ("partition", "pseq"), unique=True, name="fact_partition_pseq"))


def _v10_audit_records(migrator: SchemaMigrator) -> None:
    import json

    from engine.store.audit import cutover_body, retracted_of

    db = migrator.database
    migrator.migrate(
        migrator.add_column("decisions", "retracts", pw.TextField(null=True)),
        migrator.add_index("decisions", ("retracts",), name="decision_retracts"),
        *[migrator.add_column("cutovers", name, pw.TextField(null=True))
          for name in ("by", "body", "prev_hash", "hash")])
    param = db.param
    for seq, body in db.execute_sql("SELECT seq, body FROM decisions WHERE kind = 'retracted'").fetchall():
        retracts = retracted_of(json.loads(body))
        if retracts is not None:
            db.execute_sql(f"UPDATE decisions SET retracts = {param} WHERE seq = {param}", (retracts, seq))
    for seq, ruleset, at, after_fact, after_tick in db.execute_sql(
            "SELECT seq, ruleset, at, after_fact, after_tick FROM cutovers").fetchall():
        db.execute_sql(f"UPDATE cutovers SET body = {param} WHERE seq = {param}",
                       (cutover_body(ruleset, at, after_fact, after_tick, None), seq))


def _v11(migrator: SchemaMigrator) -> None:
    class EndedSession(pw.Model):                # as version 11 defines it
        sid_hash = pw.TextField(primary_key=True)
        ended_at = pw.TextField()
        until = pw.TextField(index=True)

        class Meta:
            database = migrator.database
            table_name = "ended_sessions"

    EndedSession.create_table()


def _v12_partition_map(migrator: SchemaMigrator) -> None:
    class PartitionMapRow(pw.Model):            # as version 12 defines it
        id = pw.IntegerField(primary_key=True, constraints=[pw.Check("id = 1")])
        digest = pw.TextField()
        body = pw.TextField()
        recorded_at = pw.TextField()

        class Meta:
            database = migrator.database
            table_name = "partition_map"

    PartitionMapRow.create_table()
    migrator.migrate(migrator.add_column("partition_leases", "wanted_by", pw.TextField(null=True)),
                     migrator.add_column("partition_leases", "wanted_until", pw.TextField(null=True)))


def _v13_waivers(migrator: SchemaMigrator) -> None:
    class WaiverEvent(pw.Model):                 # as version 13 defines it
        seq = pw.BigAutoField()
        waiver = pw.TextField(index=True)
        event = pw.TextField()
        by = pw.TextField()
        at = pw.TextField()
        body = pw.TextField()
        prev_hash = pw.TextField()
        hash = pw.TextField()

        class Meta:
            database = migrator.database
            table_name = "waiver_events"

    WaiverEvent.create_table()
    # the chain's head row: made by AuditChains._start_chain when the store opens


def _v14_silences(migrator: SchemaMigrator) -> None:
    class Silence(pw.Model):                     # as version 14 defines it
        seq = pw.BigAutoField()
        id = pw.TextField(index=True)
        event = pw.TextField()
        at = pw.TextField()
        body = pw.TextField()
        prev_hash = pw.TextField(null=True)
        hash = pw.TextField(null=True)

        class Meta:
            database = migrator.database
            table_name = "silences"

    Silence.create_table()                       # its chain head is made when the store opens


def _v15_restatements(migrator: SchemaMigrator) -> None:
    class RestatementEvent(pw.Model):            # as version 15 defines it
        seq = pw.BigAutoField()
        restatement = pw.TextField(index=True)
        event = pw.TextField()
        by = pw.TextField()
        at = pw.TextField()
        body = pw.TextField()
        prev_hash = pw.TextField()
        hash = pw.TextField()

        class Meta:
            database = migrator.database
            table_name = "restatement_events"

    RestatementEvent.create_table()              # its chain head is made when the store opens


# version -> (what changes, the step that brings the version before it to it)
STEPS: dict[int, tuple[str, Callable[[SchemaMigrator], None]]] = {
    2: ("partition key on facts, decisions, notifications, ticks and snapshots; "
        "snapshots.code renamed state_format", _v2),
    3: ("cutovers: when and where in the fact log each rule set took effect", _v3),
    4: ("delivery columns on notifications (attempts, last_error, next_attempt_at, message_id, "
        "queued_at, lease_until)", _v4),
    5: ("audit chains over facts and notifications; sealed chain heads", _v5),
    6: ("token names (unique among unrevoked tokens), source patterns, expiry and revocation time", _v6),
    7: ("deliveries: each delivery outcome of a notification, in its own audit chain; "
        "facts indexed by (subject, time)", _v7),
    8: ("partition_leases: who owns each partition, with a fencing epoch", _v8),
    9: ("facts stored before they are evaluated: each fact's place in its partition's log (pseq)", _v9),
    10: ("audit records: decisions.retracts; cut-overs chained, with who put each rule set in force",
         _v10_audit_records),
    11: ("ended_sessions: console sessions signed out, refused on every node until their cookie expires", _v11),
    12: ("partition_map: the map of services to partitions every node of the database must share; "
         "partition_leases.wanted_by/wanted_until",
         _v12_partition_map),
    13: ("waiver_events: requests, approvals and revocations of waivers, in their own audit chain", _v13_waivers),
    14: ("silences: time-boxed mutes of notifications, each created or expired event chained", _v14_silences),
    15: ("restatement_events: restatements of settled months with their superseding decisions, requests, "
         "approvals and revocations, in their own audit chain", _v15_restatements),
}
SCHEMA_VERSION = max(STEPS, default=1)


class SchemaVersionError(RuntimeError):
    """The database's schema version is one this code cannot use."""


def upgrade(db: pw.Database, models) -> int:
    """Bring ``db`` to :data:`SCHEMA_VERSION` (creating the tables of an empty database);
    the version it was at, 0 if empty. Call it inside a transaction."""
    if not db.in_transaction():
        raise RuntimeError("schema upgrades run inside a transaction")
    if isinstance(db, pw.PostgresqlDatabase):
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    found = schema_version(db)
    if found == 0:
        db.create_tables(models.all)
        _record(db, SCHEMA_VERSION)
        log.info("created the store's tables at schema version %d", SCHEMA_VERSION)
        return found
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database is at schema version {found}, newer than this code's version "
            f"{SCHEMA_VERSION}: run the release that wrote it (or a later one)")
    migrator = SchemaMigrator.from_database(db)
    if found == SCHEMA_VERSION and not _recorded(db):
        _record(db, found)
        log.info("recorded schema version %d", found)
    previous = found
    for version in sorted(v for v in STEPS if v > found):
        what, step = STEPS[version]
        step(migrator)
        _record(db, version)
        log.info("upgraded the schema from version %d to %d: %s", previous, version, what)
        previous = version
    return found


def schema_version(db: pw.Database) -> int:
    """The schema version of ``db``: 0 if it has no tables of the store yet."""
    if not _recorded(db):
        return 1 if "facts" in db.get_tables() else 0
    rows = db.execute_sql("SELECT version FROM schema_version").fetchall()
    if len(rows) != 1:
        raise SchemaVersionError(f"schema_version holds {len(rows)} rows instead of one")
    return rows[0][0]


def _version_table(db: pw.Database):
    class SchemaVersion(pw.Model):
        id = pw.IntegerField(primary_key=True, constraints=[pw.Check("id = 1")])   # one row
        version = pw.IntegerField()
        upgraded_at = pw.TextField()

        class Meta:
            database = db
            table_name = "schema_version"

    return SchemaVersion


def _recorded(db: pw.Database) -> bool:
    return "schema_version" in db.get_tables()


def _record(db: pw.Database, version: int) -> None:
    V = _version_table(db)
    V.create_table(safe=True)
    now = now_text()
    (V.insert(id=1, version=version, upgraded_at=now)
     .on_conflict(conflict_target=[V.id], update={V.version: version, V.upgraded_at: now})
     .execute())
