"""Real time, as opposed to the engine's event time: one source for every "now" of the
machine (the outbox, token expiry, stored creation times, the server's default clock)."""
from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """This machine's clock, in UTC."""
    return datetime.now(UTC)
