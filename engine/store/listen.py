"""Waking on PostgreSQL notifications (``LISTEN``), with polling as the fallback.

An API node tells the partition's owner that facts wait (``NOTIFY slm_facts``), and the
owner tells API nodes that it settled facts (``NOTIFY slm_decided``), both at commit
(engine/store/facts.py). A notification is a hint, never the record: it is lost while the
listening connection is down, so every waiter also polls, and a :class:`Listener` is only
what makes the poll come sooner. On SQLite (one process) nobody else can notify, and
:meth:`Listener.wait` simply sleeps.
"""
from __future__ import annotations

import logging
import os
import select
import threading

import peewee as pw

from engine.store.connection import one_line

log = logging.getLogger("slm.store")


class Listener:
    """One connection of its own that LISTENs on ``channels``; :meth:`wait` returns the
    payloads heard (empty: the time ran out, or nobody can notify)."""

    def __init__(self, db: pw.Database, channels: tuple[str, ...]):
        self.db, self.channels = db, channels
        self._conn = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._wakeup = os.pipe()                   # written by close(): ends a select at once

    def wait(self, timeout: float) -> set[str]:
        """Block up to ``timeout`` seconds for a notification; the payloads heard."""
        if not isinstance(self.db, pw.PostgresqlDatabase):
            self._closed.wait(timeout)
            return set()
        with self._lock:
            conn = self._connection()
            if conn is None:                       # the database is unreachable: poll later
                self._closed.wait(timeout)
                return set()
            try:
                if not conn.notifies and conn not in select.select([conn, self._wakeup[0]], [], [], timeout)[0]:
                    return set()
                conn.poll()
                heard = {note.payload for note in conn.notifies}
                conn.notifies.clear()
                return heard
            except Exception as err:               # the connection broke: the next wait makes another
                log.info("listening on %s failed (%s); polling until it is back", ", ".join(self.channels),
                         one_line(err))
                self._drop()
                return set()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        os.write(self._wakeup[1], b"x")
        with self._lock:
            self._drop()
            for end in self._wakeup:
                os.close(end)

    def _connection(self):
        if self._conn is not None or self._closed.is_set():
            return self._conn
        # the optional driver: PostgreSQL only
        import psycopg2
        try:
            conn = psycopg2.connect(dbname=self.db.database, **self.db.connect_params)
            conn.autocommit = True
            with conn.cursor() as cursor:
                for channel in self.channels:
                    cursor.execute(f"LISTEN {channel}")
        except Exception as err:
            log.info("cannot listen on %s yet (%s); polling", ", ".join(self.channels), one_line(err))
            return None
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
