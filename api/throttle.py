"""Slowing a token whose facts are refused again and again.

A client that keeps posting facts the service refuses (a broken integration, or someone
probing) costs validation and the write lock each time and takes nothing from it. After
``after`` refusals in a row, a token waits before its next request is read: one second,
doubling with each further refusal up to ``longest``; a request in that time is answered
429 with ``Retry-After``, and is not read at all. One request that is not refused clears
the count. ``after=0`` never slows a token (``slm serve --slow-after 0``).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import datetime

REFUSALS_BEFORE_SLOWING = 20      # refused requests in a row a token may make unslowed
FIRST_WAIT = 1.0                  # seconds, doubling with each further refusal
LONGEST_WAIT = 60.0
TOKENS_REMEMBERED = 10_000        # the oldest are forgotten first


class RefusalThrottle:
    """Per token name: refusals in a row, and until when it must wait (by ``now``)."""

    def __init__(self, now: Callable[[], datetime], after: int = REFUSALS_BEFORE_SLOWING,
                 first: float = FIRST_WAIT, longest: float = LONGEST_WAIT, size: int = TOKENS_REMEMBERED):
        self.now, self.after, self.first, self.longest, self.size = now, after, first, longest, size
        self._tokens: dict[str, tuple[int, float]] = {}      # name -> (refusals in a row, wait until)
        self._lock = threading.Lock()

    def wait(self, token: str) -> int | None:
        """Whole seconds ``token`` must still wait before a request of it is read, else None."""
        with self._lock:
            _, until = self._tokens.get(token, (0, 0.0))
        left = until - self.now().timestamp()
        return math.ceil(left) if left > 0 else None

    def note(self, token: str, refused: bool) -> None:
        """A request of ``token`` was answered: refused (a 4xx) or not."""
        with self._lock:
            if not refused:
                self._tokens.pop(token, None)
                return
            count, until = self._tokens.pop(token, (0, 0.0))
            count += 1
            if self.after and count >= self.after:
                delay = min(self.longest, self.first * 2 ** min(count - self.after, 32))
                until = self.now().timestamp() + delay
            while len(self._tokens) >= self.size:
                del self._tokens[next(iter(self._tokens))]
            self._tokens[token] = (count, until)
