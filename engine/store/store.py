"""Storage for the service: facts, the hash-chained decision log, notifications, rule sets
and API tokens, on SQLite (WAL) or PostgreSQL through peewee.

The engine evaluates without this module; the service wires it in. Records go in and come
out as plain dicts. Facts and decisions are append-only. Every decision is stored as its
canonical JSON and chained: ``hash = sha256(prev_hash + canonical_json(decision))``, the
first ``prev_hash`` being 64 zeros, so an edited, deleted or re-hashed record is found by
:meth:`Store.verify_chain`. A one-row table, the chain head, holds the last record's seq,
id and hash: appends lock it (``BEGIN IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE`` on
PostgreSQL) so concurrent writers never fork the chain, and it reveals records cut off the
end of the log.

Times in the indexed columns are UTC with fixed width (``2026-11-02T09:00:00.000000Z``) so
they compare as text on both databases; the records themselves keep what was posted.
Page cursors are opaque strings (the seq of the last item returned).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Iterator
from urllib.parse import urlparse

import peewee as pw
from playhouse.db_url import parse as parse_db_url
from psycopg2.extras import execute_values

from schemas.values import parse_instant

GENESIS = "0" * 64
ROLES = ("monitor", "owner", "auditor", "admin")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CHUNK = 500                 # rows per statement for IN lists, bulk inserts and scans
_CHAIN = "decisions"         # the chain head row's name
_SCHEMA_LOCK = 0x736C6D01    # pg advisory lock key taken while creating tables


def canonical_json(obj) -> str:
    """The one JSON text of a record: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, body: str) -> str:
    """The hash of a decision record whose canonical JSON is ``body``."""
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _instant(value, what: str) -> str:
    """An RFC 3339 time (or aware datetime) as the fixed-width UTC text of the columns."""
    try:
        return parse_instant(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {exc}") from None


def _text(record: dict, key: str, what: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} needs a non-empty string '{key}'")
    return value


def _limit(limit) -> int:
    limit = DEFAULT_LIMIT if limit is None else limit
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return limit


def _after(cursor) -> int:
    if cursor in (None, ""):
        return 0
    text = str(cursor)
    if not text.isdigit():
        raise ValueError(f"invalid cursor {text!r}")
    return int(text)


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _define_models(db: pw.Database) -> SimpleNamespace:
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
        outcome = pw.TextField(null=True)        # canonical JSON list of decision ids

        class Meta:
            table_name = "facts"
            indexes = ((("source", "id"), True),)

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

        class Meta:
            table_name = "decisions"

    class ChainHead(Base):
        name = pw.TextField(primary_key=True)
        seq = pw.BigIntegerField()
        last_id = pw.TextField(null=True)
        hash = pw.TextField()

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

        class Meta:
            table_name = "notifications"

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
        name = pw.TextField(null=True)
        created_at = pw.TextField()
        revoked = pw.BooleanField(default=False)

        class Meta:
            table_name = "tokens"

    class Tick(Base):
        """The engine's clock was advanced to ``until`` after fact ``after_fact``: replaying
        facts and ticks in this order re-derives the same decisions."""
        seq = pw.BigAutoField()
        after_fact = pw.BigIntegerField()
        until = pw.TextField()

        class Meta:
            table_name = "ticks"

    class Snapshot(Base):
        """The engine's state after fact ``fact_seq`` and tick ``tick_seq`` (engine.snapshot)."""
        seq = pw.BigAutoField()
        ruleset = pw.TextField()
        code = pw.TextField()
        fact_seq = pw.BigIntegerField()
        tick_seq = pw.BigIntegerField()
        body = pw.BlobField()
        created_at = pw.TextField()

        class Meta:
            table_name = "snapshots"

    return SimpleNamespace(Fact=Fact, Decision=Decision, ChainHead=ChainHead,
                           Notification=Notification, RuleSet=RuleSet, Token=Token, Tick=Tick,
                           Snapshot=Snapshot,
                           all=[Fact, Decision, ChainHead, Notification, RuleSet, Token, Tick, Snapshot])


def _database(url: str) -> pw.Database:
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
        return pw.PostgresqlDatabase(name, **params)
    raise ValueError(f"unsupported database URL {url.split('://')[0]}://… "
                     "(use sqlite:///path.db, sqlite:///:memory: or postgresql://…)")


class Store:
    """Facts, decisions, notifications, rule sets and tokens in one database."""

    def __init__(self, db: pw.Database):
        self.db = db
        self.postgres = isinstance(db, pw.PostgresqlDatabase)
        self.m = _define_models(db)
        # A shared in-memory connection takes one transaction at a time.
        self._guard = threading.RLock() if not db.thread_safe else nullcontext()

    @classmethod
    def open(cls, url: str) -> "Store":
        store = cls(_database(url))
        store.db.connect(reuse_if_open=True)
        store._create_tables()
        return store

    def close(self) -> None:
        """Close this thread's connection (each thread using the store has its own)."""
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _select(self, model, columns: str, where: str = "", params=(), tail: str = "") -> list[tuple]:
        """Rows of a plain SELECT, for the few queries every write makes (peewee's query
        building costs more than SQLite's answer there)."""
        sql = f'SELECT {columns} FROM "{model._meta.table_name}"' + (f" WHERE {where}" if where else "") + tail
        return self.db.execute_sql(sql, list(params)).fetchall()

    def _params(self, values) -> str:
        return ", ".join([self.db.param] * len(values))

    def _insert(self, model, rows: list[dict], skip_existing: bool = False) -> list:
        """Append ``rows`` (dicts with the same keys) with one prepared statement: the hot
        path of every write, so without building peewee's expression tree per value (3x
        faster on SQLite). ``skip_existing``: rows whose unique key is taken are left out;
        on PostgreSQL the ``id`` of each row inserted is returned."""
        if not rows:
            return []
        fields, names = model._meta.fields, list(rows[0])
        columns = ", ".join(f'"{fields[name].column_name}"' for name in names)
        values = [tuple(row[name] for name in names) for row in rows]
        table = f'"{model._meta.table_name}"'
        cursor = self.db.cursor()
        if self.postgres:
            tail = ' ON CONFLICT DO NOTHING RETURNING "id"' if skip_existing else ""
            return execute_values(cursor, f"INSERT INTO {table} ({columns}) VALUES %s{tail}", values,
                                  page_size=_CHUNK, fetch=skip_existing)
        verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
        cursor.executemany(f"{verb} INTO {table} ({columns}) VALUES ({self._params(names)})", values)
        return []

    @contextmanager
    def transaction(self):
        """Atomic block; nested blocks are savepoints. On SQLite it begins IMMEDIATE."""
        with self._guard, self.db.atomic():
            yield self

    def _create_tables(self) -> None:
        with self.transaction():
            if self.postgres:
                self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self.db.create_tables(self.m.all, safe=True)
            (self.m.ChainHead.insert(name=_CHAIN, seq=0, last_id=None, hash=GENESIS)
             .on_conflict_ignore().execute())

    # ---- facts -------------------------------------------------------------------------

    def find_facts(self, keys) -> dict[tuple[str, str], list | None]:
        """The stored outcome of each ``(source, id)`` in ``keys`` that is already stored."""
        F, by_source, found = self.m.Fact, {}, {}
        for source, fid in keys:
            by_source.setdefault(source, set()).add(fid)
        for source, ids in by_source.items():
            for chunk in _chunks(sorted(ids)):
                rows = self._select(F, "id, outcome", f"source = {self.db.param} AND id IN ({self._params(chunk)})",
                                    [source, *chunk])
                found.update(((source, fid), _loads(outcome)) for fid, outcome in rows)
        return found

    def add_facts(self, records: list[tuple[dict, list[str]]]) -> int:
        """Append new facts, each with the decision ids it caused, in the order given; the
        seq of the last. For the single writer: a fact already stored is an IntegrityError."""
        now = _now()
        rows = [dict(source=_text(fact, "source", "a fact"), id=_text(fact, "id", "a fact"),
                     type=_text(fact, "type", "a fact"), subject=fact.get("subject"),
                     service=fact.get("service"), time=_instant(fact.get("time"), "fact time"),
                     body=canonical_json(fact), received_at=now, outcome=canonical_json(list(outcome)))
                for fact, outcome in records]
        with self.transaction():
            self._insert(self.m.Fact, rows)
            return self.last_fact_seq()

    def facts(self, after_seq: int = 0, limit: int | None = None) -> Iterator[dict]:
        """Stored facts in seq order (arrival order), read in chunks: for rebuilding state."""
        F, left = self.m.Fact, limit
        while left is None or left > 0:
            size = _CHUNK if left is None else min(left, _CHUNK)
            rows = list(F.select().where(F.seq > after_seq).order_by(F.seq).limit(size))
            for row in rows:
                yield _stored_fact(row)
            if len(rows) < size:
                return
            after_seq = rows[-1].seq
            left = None if left is None else left - len(rows)

    def last_fact_seq(self) -> int:
        return self._select(self.m.Fact, "MAX(seq)")[0][0] or 0

    def fact_by_id(self, id: str) -> dict | None:
        """The first fact stored with this id (decisions refer to facts by id alone)."""
        F = self.m.Fact
        row = F.select(F.body).where(F.id == id).order_by(F.seq).first()
        return None if row is None else json.loads(row.body)

    def list_facts(self, service=None, subject=None, type=None, since=None, until=None,
                   cursor=None, limit=None) -> tuple[list[dict], str | None]:
        """A page of stored facts, oldest first; since/until bound event time [since, until)."""
        F = self.m.Fact
        query = _where(F.select(), _filters(F, service=service, subject=subject, type=type)
                       + _between(F.time, since, until))
        return self._page(query, F.seq, cursor, limit, _stored_fact)

    # ---- ticks -------------------------------------------------------------------------

    def add_tick(self, after_fact: int, until) -> int:
        """Record a tick; its seq."""
        with self.transaction():
            return self.m.Tick.insert(after_fact=after_fact, until=_instant(until, "tick")).execute()

    def ticks(self, after_seq: int = 0) -> list[tuple[int, int, datetime]]:
        """``(seq, after_fact, until)`` in the order they happened, after tick ``after_seq``."""
        T = self.m.Tick
        return [(r.seq, r.after_fact, parse_instant(r.until))
                for r in T.select(T.seq, T.after_fact, T.until).where(T.seq > after_seq).order_by(T.seq)]

    # ---- engine snapshots --------------------------------------------------------------

    def save_snapshot(self, ruleset: str, code: str, fact_seq: int, tick_seq: int, body: bytes,
                      keep: int = 2) -> None:
        """Store a snapshot; only the newest ``keep`` are kept."""
        S = self.m.Snapshot
        with self.transaction():
            S.insert(ruleset=ruleset, code=code, fact_seq=fact_seq, tick_seq=tick_seq, body=body,
                     created_at=_now()).execute()
            stale = [r.seq for r in S.select(S.seq).order_by(S.seq.desc()).offset(keep)]
            if stale:
                S.delete().where(S.seq.in_(stale)).execute()

    def latest_snapshot(self, ruleset: str, code: str) -> dict | None:
        """The newest snapshot taken under this rule set and engine code, if any."""
        S = self.m.Snapshot
        row = (S.select().where((S.ruleset == ruleset) & (S.code == code)).order_by(S.seq.desc()).first())
        if row is None:
            return None
        return {"fact_seq": row.fact_seq, "tick_seq": row.tick_seq, "body": bytes(row.body),
                "created_at": row.created_at}

    # ---- decisions ---------------------------------------------------------------------

    def add_decisions(self, decisions) -> list[str]:
        """Append the decisions not yet stored, chained in the order given; their ids."""
        decisions = list(decisions)
        rows = [self._decision_row(d) for d in decisions]
        if not rows:
            return []
        D = self.m.Decision
        with self.transaction():
            head = self._lock_chain()
            known = self._existing(D, [r["id"] for r in rows])
            seq, prev, fresh = head.seq, head.hash, []
            for row in rows:
                if row["id"] in known:
                    continue
                known.add(row["id"])
                seq += 1
                row.update(seq=seq, prev_hash=prev, hash=chain_hash(prev, row["body"]))
                prev = row["hash"]
                fresh.append(row)
            self._insert(D, fresh)
            if fresh:
                (self.m.ChainHead.update(seq=seq, last_id=fresh[-1]["id"], hash=prev)
                 .where(self.m.ChainHead.name == _CHAIN).execute())
        return [row["id"] for row in fresh]

    @staticmethod
    def _decision_row(decision: dict) -> dict:
        rule = decision.get("rule") or {}
        return dict(id=_text(decision, "id", "a decision"),
                    kind=_text(decision, "kind", "a decision"),
                    target=decision.get("target"), subject=decision.get("subject"),
                    service=decision.get("service"), agreement=decision.get("agreement"),
                    at=_instant(decision.get("at"), "decision at"),
                    ruleset=rule.get("ruleset") if isinstance(rule, dict) else None,
                    body=canonical_json(decision))

    def _lock_chain(self) -> SimpleNamespace:
        """The chain head, locked until the transaction ends (SQLite: BEGIN IMMEDIATE)."""
        (seq, hash), = self._select(self.m.ChainHead, "seq, hash", f"name = {self.db.param}", [_CHAIN],
                                    " FOR UPDATE" if self.postgres else "")
        return SimpleNamespace(seq=seq, hash=hash)

    def _existing(self, model, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(sorted(set(ids))):
            found.update(r for r, in self._select(model, "id", f"id IN ({self._params(chunk)})", chunk))
        return found

    def decision(self, id: str) -> dict | None:
        D = self.m.Decision
        row = D.select(D.body).where(D.id == id).first()
        return None if row is None else json.loads(row.body)

    def list_decisions(self, service=None, target=None, subject=None, kind=None, since=None,
                       until=None, cursor=None, limit=None) -> tuple[list[dict], str | None]:
        """A page of decisions in log order; since/until bound ``at`` as [since, until)."""
        D = self.m.Decision
        query = _where(D.select(D.seq, D.body),
                       _filters(D, service=service, target=target, subject=subject, kind=kind)
                       + _between(D.at, since, until))
        return self._page(query, D.seq, cursor, limit, lambda r: json.loads(r.body))

    def decision_count(self) -> int:
        return self.m.Decision.select().count()

    def verify_chain(self) -> dict:
        """Recompute the chain from the stored JSON up to the head; report the first break."""
        D = self.m.Decision
        head = self.m.ChainHead.select().where(self.m.ChainHead.name == _CHAIN).first()
        if head is None:
            return _broken(0, None, None, "the chain head record is missing")
        prev, expected, checked = GENESIS, 1, 0
        while expected <= head.seq:
            rows = list(D.select().where((D.seq >= expected) & (D.seq <= head.seq))
                        .order_by(D.seq).limit(_CHUNK))
            if not rows:
                break
            for row in rows:
                reason = _check(row, prev, expected)
                if reason:
                    return _broken(checked, row.seq, row.id, reason)
                prev, expected, checked = row.hash, row.seq + 1, checked + 1
        if expected <= head.seq:
            return _broken(checked, head.seq, head.last_id,
                           f"records {expected}..{head.seq} are missing from the end of the log")
        if prev != head.hash:
            return _broken(checked, head.seq, head.last_id,
                           "the last record's hash differs from the chain head")
        return {"ok": True, "checked": checked, "first_broken": None}

    # ---- notifications -----------------------------------------------------------------

    def add_notifications(self, notifications) -> list[str]:
        """Store notifications not yet stored (by id); their decisions must be stored."""
        N, now = self.m.Notification, _now()
        rows = {}
        for n in notifications:
            nid = _text(n, "id", "a notification")
            rows.setdefault(nid, dict(id=nid, decision=_text(n, "decision", "a notification"),
                                      recipient=_text(n, "recipient", "a notification"),
                                      status=n.get("status") or "pending",
                                      body=canonical_json(n), created_at=now))
        if not rows:
            return []
        inserted = []
        with self.transaction():
            known = self._existing(N, list(rows))
            fresh = [row for nid, row in rows.items() if nid not in known]
            stored = self._insert(N, fresh, skip_existing=True)
            if self.postgres:            # a concurrent writer may have stored some
                inserted += [r[0] for r in stored]
            else:                        # BEGIN IMMEDIATE: nobody else is writing
                inserted += [row["id"] for row in fresh]
        return inserted

    def list_notifications(self, decision=None, recipient=None, status=None, cursor=None,
                           limit=None) -> tuple[list[dict], str | None]:
        N = self.m.Notification
        query = _where(N.select(N.seq, N.body, N.status),
                       _filters(N, decision=decision, recipient=recipient, status=status))
        return self._page(query, N.seq, cursor, limit,
                          lambda r: {**json.loads(r.body), "status": r.status})

    # ---- rule sets ---------------------------------------------------------------------

    def save_ruleset(self, hash: str, files: dict[str, str]) -> None:
        """Record a loaded rule set; loading a known one again makes it the latest."""
        R = self.m.RuleSet
        with self.transaction():
            generation = (R.select(pw.fn.MAX(R.generation)).scalar() or 0) + 1
            if R.update(generation=generation, loaded_at=_now()).where(R.hash == hash).execute():
                return
            R.insert(hash=hash, files=canonical_json(files), loaded_at=_now(),
                     generation=generation).execute()

    # ---- tokens ------------------------------------------------------------------------

    def add_token(self, role: str, name: str | None = None) -> str:
        """Create a token; the plaintext is returned now and never stored."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        token = "slm_" + secrets.token_urlsafe(32)
        with self.transaction():
            self.m.Token.insert(token_hash=token_digest(token), role=role, name=name,
                                created_at=_now(), revoked=False).execute()
        return token

    def token_role(self, token) -> str | None:
        if not isinstance(token, str) or not token:
            return None
        T = self.m.Token
        row = (T.select(T.role)
               .where((T.token_hash == token_digest(token)) & (T.revoked == False))  # noqa: E712
               .first())
        return None if row is None else row.role

    def revoke_token(self, token: str) -> bool:
        T = self.m.Token
        with self.transaction():
            return bool(T.update(revoked=True).where(T.token_hash == token_digest(token))
                        .execute())

    # ---- paging ------------------------------------------------------------------------

    @staticmethod
    def _page(query, seq_field, cursor, limit, convert) -> tuple[list, str | None]:
        limit = _limit(limit)
        rows = list(query.where(seq_field > _after(cursor)).order_by(seq_field)
                    .limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return [convert(r) for r in rows], (str(rows[-1].seq) if more else None)


def _loads(text):
    return None if text is None else json.loads(text)


def _stored_fact(row) -> dict:
    return {"seq": row.seq, "received_at": row.received_at, "outcome": _loads(row.outcome),
            "fact": json.loads(row.body)}


def _where(query, terms: list):
    return query.where(*terms) if terms else query


def _filters(model, **values) -> list:
    return [getattr(model, name) == value for name, value in values.items()
            if value is not None]


def _between(column, since, until) -> list:
    terms = []
    if since is not None:
        terms.append(column >= _instant(since, "since"))
    if until is not None:
        terms.append(column < _instant(until, "until"))
    return terms


def _check(row, prev: str, expected_seq: int) -> str | None:
    """Why a decision record breaks the chain, or None."""
    if chain_hash(row.prev_hash, row.body) != row.hash:
        return "hash does not match the record's contents (record or hash edited)"
    if row.prev_hash != prev:
        missing = (f"; records {expected_seq}..{row.seq - 1} are missing"
                   if row.seq != expected_seq else "")
        return f"prev_hash does not match the preceding record's hash{missing}"
    if row.seq != expected_seq:
        return f"seq {row.seq} follows seq {expected_seq - 1}"
    try:
        record = json.loads(row.body)
    except ValueError:
        return "stored JSON does not parse"
    for column in ("id", "kind", "target", "subject", "service"):
        if record.get(column) != getattr(row, column):
            return f"column {column!r} disagrees with the stored record"
    try:
        at = _instant(record.get("at"), "at")
    except ValueError:
        at = None
    return None if at == row.at else "column 'at' disagrees with the stored record"


def _broken(checked: int, seq, id, reason: str) -> dict:
    return {"ok": False, "checked": checked,
            "first_broken": {"seq": seq, "id": id, "reason": reason}}
