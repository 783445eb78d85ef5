"""Snapshots encoded beside the writer, so that no write waits while one is made.

Encoding the engine's state takes seconds with tens of thousands of clocks
(docs/BENCHMARKS.md), and the state must not change while it is encoded. Under the write
lock the service therefore only forks: the child process has an exact copy of the
parent's memory as it stood (copy on write, nothing is copied up front), encodes the
state from it (``Engine.snapshot``) and sends the bytes back through a pipe; a thread of
the parent stores them in a transaction of its own, while writes go on. The child does
nothing else (no logging, no database, no locks another thread could have held when it
forked), closes every descriptor it inherited but its pipe, and leaves with ``os._exit``,
so nothing of the parent's is flushed or shut down by it.

A child that dies part-way, or a store that fails to write, stores nothing: the newest
complete snapshot stays the one a restart uses (the store writes each in one transaction),
and the next write takes another. Where ``fork`` is unavailable or fails, the snapshot is
taken under the lock as before.
"""
from __future__ import annotations

import gc
import logging
import os
import threading
import time

from engine.eval.engine import Engine
from engine.eval.state import STATE_FORMAT
from engine.service.recovery import save_snapshot
from engine.store.store import Store

log = logging.getLogger("slm.service")

LENGTH = 8                       # bytes of the length that precedes a snapshot in the pipe


class SnapshotFailed(Exception):
    """A snapshot made beside the writer that was not stored."""


class Snapshots:
    """Takes the engine's snapshots, one at a time, in a forked child when ``background``."""

    def __init__(self, store: Store, background: bool):
        self.store = store
        self.background = background and hasattr(os, "fork")
        self.stored = 0                          # snapshots stored
        self.failures = 0                        # snapshots that were not
        self.child: int | None = None            # the process making the snapshot, while one does
        self._thread: threading.Thread | None = None
        self._failed = threading.Event()         # the last one failed: take one again soon

    @property
    def busy(self) -> bool:
        """A snapshot is being made or stored."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def take_failed(self) -> bool:
        """Whether the last snapshot failed since this was last asked."""
        failed = self._failed.is_set()
        self._failed.clear()
        return failed

    def take(self, engine: Engine, fact_seq: int, tick_seq: int, wait: bool = False) -> None:
        """Snapshot ``engine`` as it stands after fact ``fact_seq`` and tick ``tick_seq``.
        Call under the write lock, with no snapshot busy. Returns once the child is forked
        (at once), or once the snapshot is stored if ``wait`` or not ``background``."""
        if not self.background or wait:
            self.wait()
            save_snapshot(self.store, engine, fact_seq, tick_seq)
            self.stored += 1
            return
        assert not self.busy, "one snapshot at a time"
        version = engine.ruleset.version
        reading, writing = os.pipe()
        started = time.perf_counter()
        try:
            pid = os.fork()
        except OSError as error:
            os.close(reading)
            os.close(writing)
            log.warning("could not fork to snapshot (%s); snapshotting under the write lock", error)
            save_snapshot(self.store, engine, fact_seq, tick_seq)
            self.stored += 1
            return
        if pid == 0:                                          # the child: encode, send, leave
            code = 1
            try:
                gc.disable()                 # a collection would touch (and so copy) every page
                writing = _only(writing)
                body = engine.snapshot()
                _send(writing, len(body).to_bytes(LENGTH, "big") + body)
                code = 0
            finally:
                os._exit(code)
        os.close(writing)
        self.child = pid
        self._thread = threading.Thread(target=self._receive, args=(pid, reading, version, fact_seq, tick_seq,
                                                                    started), name="slm-snapshot", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the snapshot being made (if any) is stored or has failed."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _receive(self, pid: int, reading: int, version: str, fact_seq: int, tick_seq: int, started: float) -> None:
        try:
            with os.fdopen(reading, "rb") as pipe:
                sent = pipe.read()
            _, status = os.waitpid(pid, 0)
            self.child = None
            code = os.waitstatus_to_exitcode(status)
            length = int.from_bytes(sent[:LENGTH], "big")
            if code != 0 or len(sent) < LENGTH or len(sent) - LENGTH != length:
                raise SnapshotFailed(f"the snapshot process ended with {code} after sending {len(sent)} bytes")
            body = sent[LENGTH:]
            self.store.save_snapshot(version, STATE_FORMAT, fact_seq, tick_seq, body)
            self.stored += 1
            log.info("snapshot at fact %d: %.1f MiB in %.2fs beside the writer", fact_seq, len(body) / 2**20,
                     time.perf_counter() - started)
        except Exception as error:
            self.failures += 1
            self._failed.set()
            log.warning("the snapshot at fact %d was not stored (%s); the next write takes another",
                        fact_seq, error)
        finally:
            if self.store.db.thread_safe:        # this thread's own connection (not a shared one)
                self.store.close()


def _only(keep: int) -> int:
    """In the child: every descriptor closed but stdin, stdout, stderr and ``keep`` (moved
    to 3, which it returns), so that it holds none of the parent's listening sockets or
    database files: a server restarted while a snapshot's child still runs (after a
    crash) can bind its port again."""
    if keep != 3:
        os.dup2(keep, 3)
    os.closerange(4, _max_fd())
    return 3


def _max_fd() -> int:
    try:
        return min(os.sysconf("SC_OPEN_MAX"), 1 << 20)
    except (ValueError, OSError):
        return 1 << 16


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.close(fd)

