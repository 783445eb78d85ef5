"""Owner or standby: several ``slm serve`` on one PostgreSQL database, one of them writing.

Every such process runs this loop over the partition's lease (engine/store/ownership.py,
docs/SCALING.md section 3). It starts as a **standby**: it writes nothing (its store
refuses every write transaction) and tries to acquire the lease every third of the TTL.
Once it holds the lease it fences its store with it and **takes over**: the service
rebuilds as a restart does (snapshot plus log, missed deadlines fired at their own
event-time instants), then starts the scheduler and delivery.

The **owner** renews every third of the TTL. Its lease surely holds until the instant it
sent its last successful renewal plus the TTL, by this process's monotonic clock (the
database set the expiry later than that). A renewal runs in a thread of its own and is
waited for only until then, so a renewal hung on an unreachable database cannot keep the
owner writing past its lease. If the lease is lost (``LeaseLost``: another process took
over), or runs out before a renewal got through (the database unreachable, or the process
paused), or a write finds it gone, the owner **steps down**: its store refuses every write
at once, the service stops its scheduler and delivery and lets the engine go, and the loop
goes on as a standby. It never writes again under that epoch: the store's fence refuses
it, and a new tenure begins with a new epoch.

A clean stop releases the lease after the service's snapshot, so a standby takes over at
once and replays nothing.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from engine.service.state import STANDBY, ServiceState
from engine.store.connection import one_line
from engine.store.models import DEFAULT_PARTITION
from engine.store.ownership import this_process, ttl_seconds
from engine.store.store import Lease, LeaseHeld, LeaseLost
from schemas.values import format_instant

log = logging.getLogger("slm.ownership")


class Ownership:
    """The lease loop of one process: acquire the partition's lease or stand by, renew it
    while owning it, step down when it cannot. ``take_over(lease)`` starts the service as
    owner (without waiting for its rebuild); ``step_down(why)`` stops it writing and lets
    the engine go. Both are called from the loop's thread."""

    def __init__(self, state: ServiceState, ttl: timedelta, *, take_over: Callable[[Lease], None],
                 step_down: Callable[[str], None], owner: str | None = None,
                 partition: str = DEFAULT_PARTITION, clock: Callable[[], float] = time.monotonic,
                 hold_back: timedelta = timedelta(0), snapshot: Callable[[], None] = lambda: None):
        ttl_seconds(ttl)                               # ValueError unless positive
        self.state, self.store = state, state.store
        self.ttl, self.partition = ttl, partition
        self.owner = owner or this_process()
        self.interval = ttl.total_seconds() / 3        # renew, or try to acquire, this often
        self.take_over, self.step_down, self.clock = take_over, step_down, clock
        self.lease: Lease | None = None                # held by this process now
        self.valid_until = 0.0                         # by self.clock: the lease surely holds until then
        self.takeovers = 0                             # times this process became the owner
        self._lost = threading.Event()                 # a write found the lease gone
        self._wake = threading.Event()
        self._taking_over = True                       # False once stopping: no new tenure
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None
        # A partition this process does not prefer (``slm serve --prefer``): taken only once
        # it has had no owner for this long, so that a worker that prefers it gets it first.
        self.hold_back = hold_back
        self.snapshot = snapshot                       # before handing a partition over
        self._unowned_since: float | None = None     # by self.clock: a partition nobody ever owned
        self._yielded_until = 0.0                      # by self.clock: handed over, not taken back before
        state.retry_after = max(1, math.ceil(self.interval))
        state.lease_lost = self.lost

    def start(self) -> None:
        """Begin as a standby and start the loop (in a thread of its own)."""
        self.state.role = STANDBY
        self.store.refuse_writes(f"this process ({self.owner}) is a standby: it writes nothing until it owns "
                                 f"partition {self.partition!r}")
        self._thread = threading.Thread(target=self._run, name="slm-lease", daemon=True)
        self._thread.start()

    def lost(self) -> None:
        """A write found the lease gone: step down now, not at the next renewal."""
        self._lost.set()
        self._wake.set()

    def stop_taking_over(self) -> None:
        """Stopping: acquire nothing more (renewals go on until :meth:`release`)."""
        self._taking_over = False

    def release(self) -> None:
        """End the loop and hand the partition over at once (a clean stop, after the
        snapshot): a standby need not wait for the lease to run out."""
        self._taking_over = False
        self._ended.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 5)
        lease, self.lease = self.lease, None
        if lease is None:
            return
        self.store.refuse_writes(f"this process ({self.owner}) stopped and handed partition "
                                 f"{self.partition!r} over")
        try:
            self.store.release_lease(lease)
            log.info("handed partition %r over (epoch %d): a standby may take over at once",
                     lease.partition, lease.epoch)
        except Exception as err:
            log.warning("could not release the lease (a standby takes over once it runs out): %s", err)

    # ---- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._ended.is_set():
                if self.lease is None:
                    if self._taking_over:
                        self._try_to_acquire()
                    if self.lease is None:
                        self._pause(self.interval)
                    continue
                self._pause(self.interval)
                if self._ended.is_set():
                    break
                why = self._renew()
                if why is not None:
                    self._step_down(why)
                elif self.hold_back and self.lease is not None and self.lease.wanted_by:
                    self._hand_over(self.lease.wanted_by)
        except Exception:                  # never expected; an owner must not go on unrenewed
            log.exception("the lease loop failed")
            if self.lease is not None:
                self._step_down("the lease loop failed")
        finally:
            self.store.close()

    def _pause(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _held_back(self) -> bool:
        """Whether to leave the partition a while longer to a worker that prefers it: until
        it has had no owner for ``hold_back`` (by the database's clock; a partition nobody
        ever owned, from when this process first looked)."""
        if self.clock() < self._yielded_until:        # just handed over: the asking worker's turn
            return True
        if not self.hold_back:
            return False
        lease = self.store.lease(self.partition)
        if lease is None:
            if self._unowned_since is None:
                self._unowned_since = self.clock()
            return self.clock() - self._unowned_since < self.hold_back.total_seconds()
        unowned = self.store.database_now() - lease.expires_at
        if unowned < timedelta(0):
            self._standing_by(lease)
        return unowned < self.hold_back

    def _try_to_acquire(self) -> None:
        try:
            if self._held_back():
                return
            lease = self.store.acquire_lease(self.owner, self.partition, self.ttl)
        except LeaseHeld as held:
            self._standing_by(held.lease)
            if not self.hold_back:           # preferred here: ask an owner that does not prefer it
                self.store.want_lease(self.partition, self.owner, self.ttl)
            return
        except Exception as err:
            log.warning("could not ask the database for partition %r's lease: %s",
                        self.partition, one_line(err))
            self._disconnect()                     # the next attempt connects afresh
            return
        # How long it holds is known only from a statement whose sending time is known
        # (the acquisition may have waited for the old owner's last transaction): renew once.
        self.lease, self.valid_until = lease, self.clock() + self.ttl.total_seconds()
        self._lost.clear()
        why = self._renew()
        if why is None and not self._taking_over:
            why = "this process is stopping"
        if why is not None:
            self._let_go(why)
            log.warning("acquired partition %r (epoch %d) but did not take it over: %s", self.partition,
                        lease.epoch, why)
            return
        self.store.fence_with(self.lease, idle_at_most=self.ttl)
        self.takeovers += 1
        log.info("this process (%s) owns partition %r (epoch %d): taking over", self.owner, self.partition,
                 self.lease.epoch)
        self.take_over(self.lease)

    def _disconnect(self) -> None:
        try:
            self.store.close()
        except Exception:
            pass

    def _standing_by(self, holder: Lease) -> None:
        known = self.state.holder
        self.state.holder = holder
        if known is None or (known.owner, known.epoch) != (holder.owner, holder.epoch):
            log.info("standby: %s owns partition %r (epoch %d) until %s; trying to take over every %.1fs",
                     holder.owner, holder.partition, holder.epoch, format_instant(holder.expires_at), self.interval)

    def _renew(self) -> str | None:
        """Renew before the lease runs out by this process's clock; None if renewed, else
        why not. A failure that is no refusal is retried while the lease still holds."""
        while not self._ended.is_set():
            if self._lost.is_set():
                return "a write found the lease taken over"
            left = self.valid_until - self.clock()
            if left <= 0:
                return "its lease ran out before a renewal got through (the process paused, or the database " \
                       "was unreachable)"
            held = self.lease
            if held is None:
                return "it holds no lease"
            sent = self.clock()
            try:
                renewed = self._within(left, partial(self.store.renew_lease, held, self.ttl))
            except LeaseLost as lost:
                return str(lost)
            except TimeoutError:
                return "renewing its lease did not finish before the lease ran out"
            except Exception as err:
                log.warning("renewing the lease failed; trying again while it holds: %s", one_line(err))
                self._pause(min(self.interval / 2, left))
                continue
            self.lease, self.valid_until = renewed, sent + self.ttl.total_seconds()
            self.state.lease = renewed
            return None
        return None

    def _within(self, seconds: float, call: Callable[[], Lease]) -> Lease:
        """``call()`` in a thread of its own (with a database connection of its own, closed
        after), waited for at most ``seconds``: TimeoutError if it has not answered by then."""
        done = threading.Event()
        leases: list[Lease] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                leases.append(call())
            except BaseException as exc:
                errors.append(exc)
            finally:
                self.store.close()
                done.set()

        threading.Thread(target=run, name="slm-lease-renewal", daemon=True).start()
        if not done.wait(seconds):
            raise TimeoutError
        if errors:
            raise errors[0]
        return leases[0]

    def _step_down(self, why: str) -> None:
        epoch = self.lease.epoch if self.lease else None
        self._let_go(why)
        log.warning("stepping down from partition %r (epoch %s): %s. This process writes nothing more "
                    "and stands by", self.partition, epoch, why)
        self.step_down(why)

    def _hand_over(self, to: str) -> None:
        """Give a partition this process does not prefer to ``to``, which does and asked for
        it: snapshot (so that it replays nothing), step down, release the lease at once."""
        lease = self.lease
        assert lease is not None
        try:
            self.snapshot()
        except Exception as err:
            log.warning("the snapshot before handing partition %r over failed (the next owner replays more): %s",
                        self.partition, one_line(err))
        self._step_down(f"{to} prefers partition {self.partition!r} and asked for it")
        self._yielded_until = self.clock() + self.ttl.total_seconds()
        try:
            self.store.release_lease(lease)
        except Exception as err:
            log.warning("could not release the lease (%s takes over once it runs out): %s", to, one_line(err))

    def _let_go(self, why: str) -> None:
        """Hold the lease no more: every write of this process's store is refused from now on."""
        self.lease = None
        self.store.refuse_writes(f"this process ({self.owner}) gave partition {self.partition!r} up: {why}")
