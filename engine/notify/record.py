"""Recording an attempt's outcome in the outbox, and when to try again.

Retries back off exponentially with full jitter (delay drawn from [initial·2ⁿ/2,
initial·2ⁿ], capped), so receivers coming back are not hit by every sender at once. The
schedule is stored (``next_attempt_at``), not held in memory, so it survives a restart.
A notification queued longer than the max age (``--delivery-max-age``, 24 h by default)
is ``failed`` with its last error after its next failed attempt.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.notify.deliver import DeliveryError, Undeliverable
from engine.notify.group import Message


@dataclass(frozen=True)
class RetryPolicy:
    initial: timedelta = timedelta(seconds=2)
    cap: timedelta = timedelta(minutes=10)
    max_age: timedelta = timedelta(hours=24)

    def delay(self, attempts: int, rand=random.random) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1, 2, …)."""
        ceiling = min(self.cap.total_seconds(), self.initial.total_seconds() * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=ceiling / 2 + rand() * ceiling / 2)


def outcome(store, message: Message, error: DeliveryError | None, policy: RetryPolicy,
            now: datetime) -> str:
    """Store what one attempt at ``message`` did to each of its notifications; the
    status given (sent, retrying, failed or undeliverable)."""
    if error is None:
        store.record_sent(message.ids, message.id)
        return "sent"
    if isinstance(error, Undeliverable):
        store.record_failure(message.ids, "undeliverable", error.reason, None, None)
        return "undeliverable"
    attempts = max(n.get("attempts") or 0 for n in message.notifications) + 1
    queued = [n["queued_at"] for n in message.notifications if n.get("queued_at")]
    too_old = bool(queued) and now - min(queued) >= policy.max_age
    if not error.retry or too_old:
        store.record_failure(message.ids, "failed", error.reason, None, message.id)
        return "failed"
    store.record_failure(message.ids, "retrying", error.reason, now + policy.delay(attempts), message.id)
    return "retrying"
