"""The delivery worker: after a write commits, the service hands it the new notifications'
ids; it claims due notifications from the outbox, groups them, delivers and records.

It never runs inside a write: ingestion only stores outbox rows and wakes the worker, so a
receiver that is down never slows ingestion. Each destination is delivered by one pool
thread at a time, with timeouts, so a slow receiver holds up only its own messages. On
start it finds whatever was left pending or retrying (after a SIGKILL, say) by the same
claim: the outbox is the only queue, and its leases run out for a process that died.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from engine.clock import utcnow
from engine.notify.deliver import Channels, DeliveryError, redact, send
from engine.notify.group import Message, group
from engine.notify.record import RetryPolicy, outcome
from engine.notify.silence import SilenceCache, silenced_queued

log = logging.getLogger("slm.notify")

DEFAULT_GROUP_WAIT = timedelta(seconds=30)


class DeliveryWorker:
    """Claims, groups, delivers and records; one thread claiming, a pool delivering."""

    def __init__(self, store, channels: Channels, *, policy: RetryPolicy = RetryPolicy(),
                 group_wait: timedelta = DEFAULT_GROUP_WAIT, threads: int = 8, poll: float = 0.5,
                 batch: int = 1000, now: Callable[[], datetime] = utcnow):
        self.store, self.channels, self.policy = store, channels, policy
        self.silences = SilenceCache()
        self.group_wait, self.threads, self.poll, self.batch, self.now = group_wait, threads, poll, batch, now
        self.lease = timedelta(seconds=max(5.0, 3 * channels.timeout))   # a dead deliverer's claims run out
        self.listeners: list[Callable[[str, int], None]] = []     # (status, notifications): metrics
        self._busy: set[str] = set()                   # destinations being delivered right now
        self._busy_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="slm-deliver")
        self._thread: threading.Thread | None = None

    # ---- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start claiming; again after :meth:`stop` too (an owner that stood by and took over
        again), with a pool and a stop of its own."""
        if self._stop.is_set():
            self._stop = threading.Event()
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="slm-deliver")
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="slm-delivery", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 10.0) -> None:
        """Stop claiming; let deliveries under way finish (their leases cover the rest)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def handoff(self, ids: list[str]) -> None:
        """Committed notifications: due after the group wait (the claim finds them)."""
        if ids:
            self._wake.set()

    def _run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self._wake.wait(self.poll)
                self._wake.clear()
                if stop.is_set():
                    break
                try:
                    self.run_once()
                except Exception:
                    log.exception("claiming notifications failed; trying again shortly")
                    stop.wait(self.poll * 4)
        finally:
            self.store.close()

    # ---- one round ------------------------------------------------------------------------
    def run_once(self) -> int:
        """Claim what is due (not for destinations being delivered), group it, hand each
        destination's messages to the pool; how many notifications were claimed."""
        with self._busy_lock:
            busy = set(self._busy)
        if len(busy) >= self.threads:
            return 0
        now = self.now()
        if not self.store.due_exists(now):
            return 0
        claimed = self._unsilenced(self.store.claim(now, now + self.lease, limit=self.batch, exclude=busy), now)
        by_destination: dict[str, list[Message]] = {}
        for message in group(claimed):
            by_destination.setdefault(message.recipient, []).append(message)
        with self._busy_lock:
            self._busy.update(by_destination)
        for destination, messages in by_destination.items():
            self._pool.submit(self._deliver, destination, messages)
        return len(claimed)

    def _unsilenced(self, claimed: list[dict], now) -> list[dict]:
        """``claimed`` less what an active silence matches now, which is stored muted instead."""
        if not claimed:
            return claimed
        silences = list(self.silences.read(self.store).values())
        if not any(s.state(now) == "active" for s in silences):
            return claimed
        decisions = self.store.decisions_by_id({n["decision"] for n in claimed})
        muted = silenced_queued(claimed, decisions, silences, now)
        if muted:
            self.store.mute_queued(muted)
            log.info("muted %d queued notification%s under a silence", len(muted), "" if len(muted) == 1 else "s")
        return [n for n in claimed if n["id"] not in muted]

    def _deliver(self, destination: str, messages: list[Message]) -> None:
        try:
            decisions = self.store.decisions_by_id({n["decision"] for m in messages for n in m.notifications})
            for message in messages:
                self.deliver(message, decisions)
        except Exception:
            log.exception("delivering to %s failed; its leases run out and it is tried again",
                          redact(destination))
        finally:
            with self._busy_lock:
                self._busy.discard(destination)
            self.store.close()
            self._wake.set()

    def deliver(self, message: Message, decisions: dict[str, dict]) -> str:
        """Send one message and record the outcome; the status it left."""
        error = None
        try:
            send(message, decisions, self.channels)
        except DeliveryError as exc:
            error = exc
        status = outcome(self.store, message, error, self.policy, self.now())
        where = redact(message.recipient)
        if status == "sent":
            log.info("sent %s to %s (%d notification%s)", message.id, where, len(message.ids),
                     "" if len(message.ids) == 1 else "s")
        else:
            assert error is not None        # outcome() says "sent" exactly when there was no error
            log.warning("%s: %s to %s: %s", status, message.id, where, error.reason)
        for listener in self.listeners:
            try:
                listener(status, len(message.ids))
            except Exception:
                log.exception("a delivery listener failed")
        return status
