"""What every part of the store shares: the database and its models, transactions, the
prepared-SQL fast paths the writes take, and paging.

Each part of the store (facts.py, ledger.py, outbox.py, tokens.py, replay.py) is a
subclass of :class:`StoreBase` holding the methods of one concern; store.Store combines
them. Page cursors are opaque strings (the seq of the last item returned).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager, nullcontext

import peewee as pw

from engine.store.connection import LOST_IN_TRANSACTION, DatabaseUnavailable, connection_lost, one_line
from engine.store.encoding import instant_text
from engine.store.models import DEFAULT_PARTITION, define_models
from engine.store.probe import Probe
from schemas.limits import DEFAULT_LIMIT, MAX_LIMIT

CHUNK = 500                  # rows per statement for IN lists, bulk inserts and scans


class StoreBase:
    """One database (a connection per thread) and its models."""

    # Run first in every outermost write transaction: set once this process owns its
    # partition (ownership.Leases.fence_with), it raises LeaseLost when another owner
    # took over, so no write path can write for a partition this process lost.
    fence: Callable[[], None] | None = None

    def __init__(self, db: pw.Database, partition: str = DEFAULT_PARTITION):
        self.db = db
        # The partition this store evaluates for (its owner's writes and replay reads); reads
        # for the API span every partition.
        self.partition = partition
        self.postgres = isinstance(db, pw.PostgresqlDatabase)
        self.m = define_models(db)
        # A shared in-memory connection takes one transaction at a time.
        self._guard = threading.RLock() if not db.thread_safe else nullcontext()
        self._probe: Probe | None = None

    def close(self) -> None:
        """Close this thread's connection (each thread using the store has its own)."""
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self, fenced: bool = True):
        """Atomic block; nested blocks are savepoints. On SQLite it begins IMMEDIATE. The
        outermost block runs the :attr:`fence` first, if there is one (``fenced=False``:
        not, for the lease operations themselves). A block that failed because the
        connection broke raises :class:`DatabaseUnavailable`; it is not retried (the next
        use of the store connects afresh, connection.py)."""
        with self._guard:
            outermost = not self.db.in_transaction()
            try:
                with self.db.atomic():
                    if outermost and fenced and self.fence is not None:
                        self.fence()
                    yield self
            except DatabaseUnavailable:
                raise
            except Exception as error:
                cause = _ended_by_database(error)
                if cause is not None:        # the error that ended it, not the rollback that found it ended
                    raise cause from None
                if not (outermost and connection_lost(self.db)):
                    raise
                raise DatabaseUnavailable(f"{LOST_IN_TRANSACTION}: {one_line(error)}") from error

    def probe(self) -> None:
        """:meth:`ping`, for the readiness probe, in bounded time: on PostgreSQL from a
        thread of its own (engine.store.probe), which closes its connection after each
        question, so a hung link costs neither a request thread nor the probe's answer."""
        if not self.postgres:
            self.ping()
            return
        if self._probe is None:
            self._probe = Probe(self._ping_and_close)
        self._probe()

    def _ping_and_close(self) -> None:
        try:
            self.ping()
        finally:
            self.close()

    def ping(self) -> None:
        """Whether the database answers (``SELECT 1``): :class:`DatabaseUnavailable`
        naming why not. Read-only, so a connection found broken is replaced and asked once
        more."""
        with self._guard:
            for attempt in (1, 2):
                try:
                    self.db.execute_sql("SELECT 1").fetchone()
                    return
                except DatabaseUnavailable:
                    if attempt == 2 or self.db.in_transaction():
                        raise

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
            # the optional driver (slm[postgresql]): imported where only PostgreSQL needs it
            from psycopg2.extras import execute_values
            tail = ' ON CONFLICT DO NOTHING RETURNING "id"' if skip_existing else ""
            return execute_values(cursor, f"INSERT INTO {table} ({columns}) VALUES %s{tail}", values,
                                  page_size=CHUNK, fetch=skip_existing)
        verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
        cursor.executemany(f"{verb} INTO {table} ({columns}) VALUES ({self._params(names)})", values)
        return []

    def _existing(self, model, ids: list[str]) -> set[str]:
        """Which of ``ids`` are stored in ``model``'s ``id`` column."""
        found: set[str] = set()
        for chunk in chunks(sorted(set(ids))):
            found.update(r for r, in self._select(model, "id", f"id IN ({self._params(chunk)})", chunk))
        return found

    @staticmethod
    def _page(query, seq_field, cursor, limit, convert) -> tuple[list, str | None]:
        limit = _limit(limit)
        rows = list(query.where(seq_field > _after(cursor)).order_by(seq_field)
                    .limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return [convert(r) for r in rows], (str(rows[-1].seq) if more else None)


def _ended_by_database(error: Exception) -> BaseException | None:
    """The error that made the database end a transaction itself (SQLite rolls back on a
    full disk, SQLITE_FULL), when rolling back afterwards found no transaction or savepoint
    to roll back: that error names the cause, the failed rollbacks do not."""
    if not (isinstance(error, pw.OperationalError) and _found_ended(error)):
        return None
    cause: BaseException | None = error
    while cause is not None and _found_ended(cause):
        cause = cause.__context__
    if cause is None or isinstance(cause, pw.PeeweeException):
        return cause
    return pw.OperationalError(*cause.args)      # the driver's own error, as peewee raises it


def _found_ended(error: BaseException) -> bool:
    """Whether ``error`` is a rollback (of the transaction, or of a savepoint in it) that
    found the transaction already ended by the database."""
    return any(text in str(error) for text in ("no transaction is active", "no such savepoint"))


def every(list_page, **filters):
    """Every item of a paged store listing (``list_decisions``, ``list_facts``, …), page
    after page of MAX_LIMIT, for readers that need a whole period."""
    cursor = None
    while True:
        page, cursor = list_page(**filters, cursor=cursor, limit=MAX_LIMIT)
        yield from page
        if cursor is None:
            return


def chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def where(query, terms: list):
    """``query`` restricted by all ``terms`` (none: unchanged)."""
    return query.where(*terms) if terms else query


def equal(model, **values) -> list:
    """``column == value`` for each value given (not None)."""
    return [getattr(model, name) == value for name, value in values.items()
            if value is not None]


def between(column, since, until) -> list:
    """A time column within [since, until), either bound optional."""
    terms = []
    if since is not None:
        terms.append(column >= instant_text(since, "since"))
    if until is not None:
        terms.append(column < instant_text(until, "until"))
    return terms


def _limit(limit) -> int:
    limit = DEFAULT_LIMIT if limit is None else limit
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return limit


def _after(cursor) -> int:
    if cursor in (None, ""):
        return 0
    text = str(cursor)
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise ValueError(f"invalid cursor {text!r}")
    return int(text)
