"""Connections that survive the database going away.

peewee keeps one connection per thread and does not notice when the server closed it (a
restart of PostgreSQL, a failover, ``pg_terminate_backend``): every later statement of that
thread fails with ``connection already closed``, for as long as the process runs. Here a
connection the driver reports broken is dropped at its thread's next use, and a new one is
opened in its place; while connecting fails, further attempts wait a short backoff (they
fail at once meanwhile, so that a database that is down is not flooded with attempts).

Nothing is retried silently but a BEGIN (nothing of its transaction ran yet): the
statement or transaction that met the broken connection raises :class:`DatabaseUnavailable`.
A transaction whose COMMIT was sent on it may or may not have committed, so its caller must
treat the outcome as unknown (the service rebuilds its engine from the store before its
next write, engine/service/keeper.py).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import peewee as pw

FIRST_BACKOFF = 0.2          # seconds without a connection attempt after one failed,
MAX_BACKOFF = 2.0            # doubled after every further failure up to this
CONNECT_TIMEOUT = 5          # seconds a connection attempt may take (unless the URL says)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached, or the connection broke under a statement. The
    message names the cause in one line; what was in flight was not committed, or (a
    broken COMMIT) its outcome is unknown."""


# What the driver raises when the database is gone (peewee's wrappers of psycopg2's and
# sqlite3's errors): the API answers them 503, as DatabaseUnavailable.
DRIVER_ERRORS = (pw.InterfaceError, pw.OperationalError)


# What a transaction that lost its connection before COMMIT is known to have done.
LOST_IN_TRANSACTION = ("the connection to the database was lost during a transaction; "
                       "nothing of the transaction was committed")


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _state(db: pw.Database) -> Any:
    """peewee's per-thread connection state (its ``conn``, whether ``closed``)."""
    return db._state  # type: ignore[attr-defined]


def connection_lost(db: pw.Database) -> bool:
    """Whether this thread's connection is one the server has closed (psycopg2 marks a
    connection that broke under a statement ``closed``; SQLite's never break so)."""
    conn = _state(db).conn
    return conn is not None and bool(getattr(conn, "closed", 0))


class ReconnectingPostgresqlDatabase(pw.PostgresqlDatabase):
    """PostgreSQL, one connection per thread, replaced once the server has closed it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._backoff_lock = threading.Lock()
        self._retry_at = 0.0                  # time.monotonic(): no attempt before
        self._backoff = 0.0
        self._last_failure = ""

    def connect(self, reuse_if_open: bool = False) -> bool:
        if not _state(self).closed:
            return super().connect(reuse_if_open)
        with self._backoff_lock:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise DatabaseUnavailable(f"cannot connect to the database: {self._last_failure} "
                                          f"(next attempt in {wait:.1f}s)")
        try:
            opened = super().connect(reuse_if_open)
        except pw.OperationalError as error:
            with self._backoff_lock:
                self._backoff = min(MAX_BACKOFF, self._backoff * 2 or FIRST_BACKOFF)
                self._retry_at = time.monotonic() + self._backoff
                self._last_failure = one_line(error)
            raise DatabaseUnavailable(f"cannot connect to the database: {one_line(error)}") from error
        with self._backoff_lock:
            self._backoff, self._retry_at = 0.0, 0.0
        return opened

    def cursor(self, named_cursor=None):
        if connection_lost(self):
            if self.in_transaction():
                raise DatabaseUnavailable(LOST_IN_TRANSACTION)
            self.drop()
        return super().cursor(named_cursor)

    def drop(self) -> None:
        """Forget this thread's connection (closing it if it is still open)."""
        state = _state(self)
        try:
            if state.conn is not None:
                state.conn.close()
        except Exception:
            pass
        state.reset()

    def execute_sql(self, sql, params=None):
        with self._watched("a statement"):
            return super().execute_sql(sql, params)

    def begin(self, isolation_level=None):
        try:
            super().begin(isolation_level)
        except Exception:
            if not connection_lost(self):
                raise
            self.drop()                       # nothing of the transaction ran: a new connection
            with self._watched("BEGIN"):
                super().begin(isolation_level)

    def commit(self):
        # peewee has already popped the transaction: without this check, the COMMIT
        # would go to a new connection and "succeed", while the work was lost.
        if connection_lost(self):
            raise DatabaseUnavailable(LOST_IN_TRANSACTION)
        with self._watched("COMMIT", unknown=True):
            super().commit()

    def rollback(self):
        if connection_lost(self):
            return                            # the server ended the transaction with the session
        super().rollback()

    @contextmanager
    def _watched(self, what: str, unknown: bool = False) -> Iterator[None]:
        try:
            yield
        except DatabaseUnavailable:
            raise
        except Exception as error:
            if not connection_lost(self):
                raise
            outcome = ("; whether it committed is unknown" if unknown else
                       "; nothing of the transaction was committed" if self.in_transaction() else "")
            raise DatabaseUnavailable(f"the connection to the database was lost during {what}{outcome}: "
                                      f"{one_line(error)}") from error
