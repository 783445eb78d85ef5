"""The deadline scheduler: a thread that fires clock deadlines at their wall-clock instants.

It sleeps until the engine's next deadline (at most a minute, so a changed wall clock is
noticed), is woken early when a write may have brought a deadline forward, and asks the
service to fire what is due. A failure is logged and retried a second later.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

log = logging.getLogger("slm.service")

IDLE_WAKEUP = 60.0          # seconds it sleeps when no deadline is pending


class DeadlineScheduler:
    def __init__(self, next_deadline: Callable[[], datetime | None], fire: Callable[[], object],
                 now: Callable[[], datetime]):
        self.next_deadline, self.fire, self.now = next_deadline, fire, now
        self._wake = threading.Condition()
        self._stop = threading.Event()

    def wake(self) -> None:
        """Look again: a write may have brought the next deadline forward."""
        with self._wake:
            self._wake.notify_all()

    def stop(self) -> None:
        self._stop.set()
        self.wake()

    def run(self) -> None:
        while not self._stop.is_set():
            deadline = self.next_deadline()
            wait = IDLE_WAKEUP if deadline is None else (deadline - self.now()).total_seconds()
            if wait > 0:
                with self._wake:
                    if not self._stop.is_set():    # a stop that came meanwhile is not slept through
                        self._wake.wait(timeout=min(wait, IDLE_WAKEUP))
                continue
            if self._stop.is_set():                # stopped while it waited for the write lock
                break
            try:
                self.fire()
            except Exception:
                log.exception("firing deadlines failed; retrying in 1s")
                self._stop.wait(1.0)
