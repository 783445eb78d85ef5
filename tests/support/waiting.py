"""Waiting on real time for something another thread or process does, with a generous
bound and no assertion on how long it took."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
PATIENCE = 60                  # seconds a wait may take before the test gives up


def until(predicate: Callable[[], T], what: str, *, patience: float = PATIENCE,
          tolerate: tuple[type[BaseException], ...] = ()) -> T:
    """Ask ``predicate`` until it answers something true, and return that answer. An error
    of a ``tolerate`` type counts as a false answer (a server not yet listening)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            value = predicate()
        except tolerate:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)
