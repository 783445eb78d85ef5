"""A readiness probe that answers in bounded time, also when the database hangs.

When the link to PostgreSQL dies silently (no reset: a cut cable, a firewall dropping
packets), a statement sent on it waits until TCP gives up, many minutes. A load balancer
counts a probe that times out as a failure it cannot tell from a crashed process, and a
request thread blocked on it is lost to the API. So the question ``SELECT 1`` is asked from
a thread of its own, and the probe waits for the answer only so long; while that thread
still waits for an earlier answer, the probe says so at once and sends no other.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from engine.store.connection import DatabaseUnavailable

PROBE_TIMEOUT = 3.0          # seconds a probe waits for the database's answer


class Probe:
    """Runs ``ask`` (which raises if the database does not answer) in a daemon thread,
    one at a time, waiting at most ``timeout`` seconds for it."""

    def __init__(self, ask: Callable[[], None], timeout: float = PROBE_TIMEOUT):
        self.ask, self.timeout = ask, timeout
        self._lock = threading.Lock()
        self._sent_at: float | None = None        # time.monotonic() of the question in flight
        self._done = threading.Event()
        self._error: BaseException | None = None

    def __call__(self) -> None:
        """Return if the database answered in time, else raise DatabaseUnavailable (or the
        driver's error) naming why."""
        with self._lock:
            if self._sent_at is not None:
                waited = time.monotonic() - self._sent_at
                raise DatabaseUnavailable(f"the database has not answered a probe sent {waited:.0f}s ago")
            self._sent_at, self._error = time.monotonic(), None
            done = self._done = threading.Event()
        threading.Thread(target=self._run, args=(done,), name="slm-probe", daemon=True).start()
        if not done.wait(self.timeout):
            raise DatabaseUnavailable(f"the database did not answer within {self.timeout:g}s")
        if self._error is not None:
            raise self._error

    def _run(self, done: threading.Event) -> None:
        try:
            self.ask()
        except BaseException as error:          # handed to the caller that waits for it
            self._error = error
        finally:
            with self._lock:
                self._sent_at = None
            done.set()
