"""Who may write: one evaluating process per SQLite database, one owner per partition of a
PostgreSQL database, and the fence that keeps an owner that lost its partition from writing.

Two processes evaluating one database both decide, and each records what the other's
state contradicts (a breach for a clock the other stopped), while every audit chain
still verifies. So exactly one process writes what is decided:

- **SQLite** runs one such process per database file. :class:`WriterLock` is an
  exclusive ``flock`` on a file beside the database (``slm.db-writer``) that names its
  holder's host and pid; the operating system drops it when the process ends, however it
  ends. ``Store.open(url, writer=True)`` takes it; readers (``slm report``, ``slm audit
  verify``) open without it. An in-memory database needs none.
- **PostgreSQL** lets several processes share a database, one owner per partition
  (docs/SCALING.md, section 3): a row of ``partition_leases`` says who owns a partition
  (``owner``, host and pid), in which tenure (``epoch``, raised by every acquisition) and
  until when (``expires_at``). Every time is the database's clock, never a process's,
  so machines whose clocks disagree still agree on who owns what.

The owner fences its writes: :meth:`Leases.fence_with` makes the first statement of
every write transaction of the store (``StoreBase.transaction``) check that the lease's
epoch is still the partition's, so a process that paused past its lease and lost the
partition cannot write after the new owner took over; its transaction raises
:class:`LeaseLost` and writes nothing. The leases work on SQLite too (a write
transaction there locks the whole database), but there the file lock is what keeps a
second process out.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from engine.store.base import StoreBase
from engine.store.encoding import now_text
from engine.store.models import DEFAULT_PARTITION
from schemas.values import format_instant, parse_instant

DEFAULT_TTL = timedelta(seconds=15)      # an owner renews well within it (docs/SCALING.md: every 5 s)


_STARTED = secrets.token_hex(3)     # tells apart processes that share host and pid (containers)


def this_process() -> str:
    """The owner name of this process in ``partition_leases``: ``host:pid:nonce``, the
    nonce drawn once per process, so two containers that share a host name and both run
    as pid 1 are still two owners."""
    return f"{socket.gethostname()}:{os.getpid()}:{_STARTED}"


class WriterLockHeld(RuntimeError):
    """Another process holds the SQLite database's writer lock."""


class LeaseHeld(RuntimeError):
    """Another owner holds the partition's lease, and it has not expired."""

    def __init__(self, lease: Lease):
        self.lease = lease
        super().__init__(f"partition {lease.partition!r} is owned by {lease.owner} (epoch {lease.epoch}) until "
                         f"{format_instant(lease.expires_at)} by the database's clock")


class PartitionMapMismatch(RuntimeError):
    """This node's map of services to partitions is not the one the database records: two
    nodes would disagree on which partition a fact belongs to."""


class LeaseLost(RuntimeError):
    """This process no longer owns the partition: another owner took it over (a higher
    epoch). It must write nothing more for the partition; the transaction that found out
    is rolled back."""


@dataclass(frozen=True)
class Lease:
    """One tenure of one owner over one partition, as the database last said."""

    partition: str
    owner: str
    epoch: int
    expires_at: datetime        # by the database's clock
    wanted_by: str | None = None    # a renewal's answer: another worker that prefers the partition asks for it


# ---- SQLite: one writer process per file ------------------------------------------------

class WriterLock:
    """An exclusive lock on ``<database>-writer``, holding its holder's host and pid.

    ``flock`` locks belong to the open file, so the lock lasts while this process keeps
    the file open and ends with it, also when the process is killed; the file itself
    stays and is overwritten by the next holder."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd           # None once released

    @classmethod
    def take(cls, database: str | os.PathLike) -> WriterLock:
        """The writer lock of the SQLite file ``database``, or :class:`WriterLockHeld`
        naming the process that holds it."""
        import fcntl  # POSIX only: imported where a lock is taken

        database = Path(database).resolve()
        path = database.with_name(database.name + "-writer")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, 4096, 0))
            os.close(fd)
            raise WriterLockHeld(
                f"the SQLite database {database} is being written by {holder} (it holds {path.name}): "
                "SQLite runs one slm process per database; stop that one first, or use PostgreSQL, "
                "which runs more than one") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode() + b"\n", 0)
        return cls(path, fd)

    def release(self) -> None:
        """Let another process take it (closing the file releases the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _holder(text: bytes) -> str:
    try:
        holder = json.loads(text)
        return f"another process (host {holder['host']}, pid {holder['pid']})"
    except (ValueError, KeyError, TypeError):
        return "another process (still writing its host and pid)"


# ---- PostgreSQL: leases with a fencing epoch -------------------------------------------

class Leases(StoreBase):
    """Acquire, renew and release partition leases, and fence this store's writes with one.

    Why the fence locks the lease row, and in which mode: the fence is ``SELECT … FOR KEY
    SHARE`` of the lease row with our epoch, a takeover locks that row ``FOR UPDATE``
    before it raises the epoch, and a renewal is a plain ``UPDATE`` of ``expires_at``.
    ``FOR UPDATE`` conflicts with ``KEY SHARE``, so a takeover waits until every owner
    transaction in flight has committed or rolled back, and each one after it finds the
    new epoch. A plain ``UPDATE`` of columns that are no key does not conflict with it, so
    the owner's renewals never queue behind its own writes, however long they run. (An
    upsert would not do for the takeover: ``ON CONFLICT DO UPDATE`` takes only the weaker
    lock a renewal takes, and would not wait.) docs/SCALING.md proposed an epoch on the
    chain head row instead, to save this statement where decisions are appended; but not
    every write transaction locks that row (ticks, snapshots, delivery outcomes), the
    chain heads are sealed audit records, and a row lock taken there would also make the
    renewals wait. One small statement per write transaction buys a fence that no write
    path can forget. On SQLite every write transaction locks the whole database, which
    serialises takeovers and fenced writes just the same.
    """

    fenced_by: Lease | None = None
    fence_idle_ms: int | None = None       # PostgreSQL: a fenced transaction idle this long is ended

    def acquire_lease(self, owner: str | None = None, partition: str = DEFAULT_PARTITION,
                      ttl: timedelta = DEFAULT_TTL) -> Lease:
        """Own ``partition`` for ``ttl`` if its lease is free, expired or already ``owner``'s
        (default: this process); the new lease, its epoch one higher than any before. If
        another owner holds it: :class:`LeaseHeld`, saying who and until when. A takeover
        waits for the transactions of the fenced owner still in flight."""
        owner, p = owner or this_process(), self.db.param
        returning = ' RETURNING "partition", owner, epoch, expires_at'
        with self.transaction(fenced=False):
            row = self.db.execute_sql(             # the partition's first owner
                f'INSERT INTO partition_leases ("partition", owner, epoch, acquired_at, expires_at) '
                f"VALUES ({p}, {p}, 1, {self._now()}, {self._now(ttl)}) ON CONFLICT DO NOTHING{returning}",
                [partition, owner]).fetchone()
            if row is None and self.postgres:      # wait for the owner's transactions in flight
                self.db.execute_sql(f'SELECT epoch FROM partition_leases WHERE "partition" = {p} FOR UPDATE',
                                    [partition])
            if row is None:
                row = self.db.execute_sql(
                    f"UPDATE partition_leases SET owner = {p}, epoch = epoch + 1, acquired_at = {self._now()}, "
                    f'expires_at = {self._now(ttl)} WHERE "partition" = {p} '
                    f"AND (owner = {p} OR expires_at <= {self._now()}){returning}",
                    [owner, partition, owner]).fetchone()
            if row is None:
                held = self.lease(partition)
                assert held is not None            # the INSERT above made the row if there was none
                raise LeaseHeld(held)
        return _lease(row)

    def renew_lease(self, lease: Lease, ttl: timedelta = DEFAULT_TTL) -> Lease:
        """Extend ``lease`` to ``ttl`` from now (the database's clock), if it is still the
        partition's tenure (same owner and epoch, expired or not): the renewed lease. Else
        :class:`LeaseLost`, naming the owner that took the partition."""
        p = self.db.param
        row = self._lone_statement(
            f'UPDATE partition_leases SET expires_at = {self._now(ttl)} WHERE "partition" = {p} '
            f'AND owner = {p} AND epoch = {p} RETURNING "partition", owner, epoch, expires_at, '
            f"CASE WHEN wanted_until > {self._now()} AND wanted_by <> owner THEN wanted_by END",
            [lease.partition, lease.owner, lease.epoch]).fetchone()
        if row is None:
            raise self._lost(lease)
        return _lease(row)

    def want_lease(self, partition: str, owner: str, ttl: timedelta = DEFAULT_TTL) -> None:
        """Ask the owner of ``partition`` to hand it over (this process prefers it): the
        owner sees it at its next renewal, for ``ttl``."""
        p = self.db.param
        self._lone_statement(
            f'UPDATE partition_leases SET wanted_by = {p}, wanted_until = {self._now(ttl)} '
            f'WHERE "partition" = {p} AND owner <> {p}', [owner, partition, owner])

    def release_lease(self, lease: Lease) -> None:
        """Hand the partition over now (a clean stop): the lease expires at once, so the
        next owner need not wait for its TTL. A lease already lost is left as it is. The
        store stays fenced with it: once another owner has taken the partition, this
        store's writes fail (:meth:`fence_with` None to write unfenced)."""
        p = self.db.param
        self._lone_statement(
            f'UPDATE partition_leases SET expires_at = {self._now()} WHERE "partition" = {p} '
            f"AND owner = {p} AND epoch = {p}", [lease.partition, lease.owner, lease.epoch])

    def lease(self, partition: str = DEFAULT_PARTITION) -> Lease | None:
        """The partition's lease as stored (expired or not); None if nobody ever owned it."""
        row = self.db.execute_sql(f'SELECT "partition", owner, epoch, expires_at FROM partition_leases '
                                  f'WHERE "partition" = {self.db.param}', [partition]).fetchone()
        return None if row is None else _lease(row)

    def agree_partition_map(self, digest: str, body: str) -> None:
        """Record this node's partition map (its digest and canonical JSON) if the database
        has none yet; :class:`PartitionMapMismatch` if it records another one."""
        M = self.m.PartitionMap
        with self.transaction(fenced=False):
            M.insert(id=1, digest=digest, body=body, recorded_at=now_text()).on_conflict_ignore().execute()
            stored = M.get_by_id(1)
        if stored.digest != digest:
            raise PartitionMapMismatch(
                f"this node's partition map (digest {digest[:12]}…, {body}) is not the one this database "
                f"records (digest {stored.digest[:12]}…, {stored.body}, recorded {stored.recorded_at}): every "
                "node of a database must be given the same --partitions file")

    def database_now(self) -> datetime:
        """The database's clock, by which leases expire."""
        return parse_instant(self.db.execute_sql(f"SELECT {self._now()}").fetchone()[0])

    def fence_with(self, lease: Lease | None, idle_at_most: timedelta | None = None) -> None:
        """From now on, begin every write transaction of this store (every thread's) by
        checking that ``lease`` still holds the partition: :class:`LeaseLost` if not, and
        the transaction writes nothing. None: unfenced again.

        ``idle_at_most`` (PostgreSQL; the lease's TTL): the server ends such a transaction
        once it has waited that long for this process's next statement. The fence's lock
        holds a takeover back until the transaction ends, so an owner paused, or cut off
        from the database, in the middle of one would otherwise stall the takeover for as
        long as the server takes to notice (TCP keepalive: hours)."""
        self.fenced_by = lease
        self.fence = None if lease is None else self._check_fence
        self.fence_idle_ms = None if idle_at_most is None else max(1, int(idle_at_most.total_seconds() * 1000))

    def refuse_writes(self, why: str) -> None:
        """From now on every write transaction of this store raises :class:`LeaseLost`
        saying ``why``, whoever holds the partition: this process has given its ownership
        up (a standby, or an owner that stepped down or stopped), so it must not write
        even under an epoch nobody has replaced yet. :meth:`fence_with` a new lease to
        write again."""
        def refuse() -> None:
            raise LeaseLost(why)
        self.fenced_by, self.fence = None, refuse

    def _lone_statement(self, sql: str, params: list):
        """Run one statement in a transaction of its own that commits as the statement
        ends (the connection is in autocommit outside ``transaction()``): a renewal or a
        release holds the lease row's lock only while the database runs it, so a process
        paused just after sending one cannot leave the row locked and stall a takeover."""
        with self._guard:
            if self.db.in_transaction():
                raise RuntimeError("a lease is renewed or released outside any transaction")
            return self.db.execute_sql(sql, params)

    def _check_fence(self) -> None:
        lease, p = self.fenced_by, self.db.param
        if lease is None:
            return
        idle = self.fence_idle_ms if self.postgres else None
        limit = "" if idle is None else f", set_config('idle_in_transaction_session_timeout', '{idle}', true)"
        held = self.db.execute_sql(
            f'SELECT epoch{limit} FROM partition_leases WHERE "partition" = {p} AND owner = {p} AND epoch = {p}'
            + (" FOR KEY SHARE" if self.postgres else ""),
            [lease.partition, lease.owner, lease.epoch]).fetchone()
        if held is None:
            raise self._lost(lease)

    def _lost(self, lease: Lease) -> LeaseLost:
        now = self.lease(lease.partition)
        by = "nobody" if now is None else f"{now.owner} (epoch {now.epoch})"
        return LeaseLost(f"partition {lease.partition!r} is no longer owned by {lease.owner} (epoch {lease.epoch}): "
                         f"{by} holds it now, so this process writes nothing more for it")

    def _now(self, ttl: timedelta | None = None) -> str:
        """SQL for the database's clock (plus ``ttl``), as the store writes every time:
        fixed-width UTC text (encoding.py), which compares in time order. On PostgreSQL
        the statement's time, not ``now()``, which is the transaction's start: a takeover
        may have waited in its transaction for the old owner's, and its lease runs from
        when it got the partition."""
        seconds = 0.0 if ttl is None else ttl_seconds(ttl)
        if self.postgres:
            return (f"to_char((statement_timestamp() + interval '{seconds:.6f} seconds') AT TIME ZONE 'UTC', "
                    """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""")
        return f"(strftime('%Y-%m-%dT%H:%M:%f', 'now', '{seconds:+f} seconds') || '000Z')"


def ttl_seconds(ttl: timedelta) -> float:
    """A lease's time to live in seconds; ValueError unless it is positive."""
    seconds = float(ttl.total_seconds())
    if not seconds > 0:
        raise ValueError(f"a lease's time to live must be positive, not {ttl}")
    return seconds


def _lease(row: tuple) -> Lease:
    partition, owner, epoch, expires_at, *wanted = row
    return Lease(partition, owner, epoch, parse_instant(expires_at), *wanted)
