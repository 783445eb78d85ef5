"""Muting: a shadow decision (a proposed SLR, a draft agreement) is tried without waking
anyone up. Its notifications are still stored, as ``muted``, so one can see who *would*
have been told; the deliverer never picks them up."""
from __future__ import annotations

from dataclasses import replace

from schemas.records import Decision, Notification


def mute(decision: Decision, notifications: list[Notification]) -> list[Notification]:
    if not decision.shadow:
        return notifications
    return [replace(n, status="muted") for n in notifications]
