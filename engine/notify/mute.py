"""Muting: a notification stored but never sent, so one can see who *would* have been told
and why they were not; the deliverer never picks it up.

One path, several reasons: a shadow decision (a proposed SLR, a draft agreement) is tried
without waking anyone up; a silence a person set (engine/notify/silence.py) and an
inhibition the rules declare (engine/notify/inhibit.py) mute what they match, naming
themselves in ``last_error``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from schemas.records import Decision, Notification


def mute(decision: Decision, notifications: list[Notification]) -> list[Notification]:
    """A shadow decision's notifications, all muted."""
    if not decision.shadow:
        return notifications
    return [replace(n, status="muted") for n in notifications]


def mute_where(notifications: list[Notification], why: Callable[[Notification], str | None]) -> list[Notification]:
    """``notifications`` with each still pending that ``why`` gives a reason for muted,
    the reason its ``last_error``; one muted already keeps its first reason."""
    out = []
    for note in notifications:
        reason = why(note) if note.status == "pending" else None
        out.append(note if reason is None else replace(note, status="muted", last_error=reason))
    return out
