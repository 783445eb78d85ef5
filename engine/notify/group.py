"""Grouping: an outage that breaches a thousand clocks must not send a thousand mails.

Notifications for the same recipient and activity that are claimed together go out as
one message (the outbox claims, with every due notification, the pending ones of the same
recipient that are not due yet: a notification waits ``--group-wait`` before its first
attempt, so what arrives in that window joins it, as Alertmanager's group_wait). A
message of one notification carries that notification's id; a grouped message has a
deterministic id made from its notifications' ids, so a retry of the same group is
recognisably the same message to a receiver that drops duplicates.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass
class Message:
    """What one delivery sends to one recipient: one or more notifications."""

    id: str
    recipient: str
    channel: str
    activity: str
    notifications: list[dict] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [n["id"] for n in self.notifications]


def message_id(notification_ids: list[str]) -> str:
    """A single notification's own id; a group's from its members' ids (order-free)."""
    if len(notification_ids) == 1:
        return notification_ids[0]
    digest = hashlib.sha256("|".join(sorted(notification_ids)).encode()).hexdigest()[:24]
    return "msg_" + digest


def group(notifications: list[dict]) -> list[Message]:
    """Messages, one per (recipient, activity), in the order their first notification came."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for note in notifications:
        # a write-back is one request of its own (engine/notify/writeback.py): never grouped
        alone = note["id"] if note.get("channel") == "writeback" else ""
        groups.setdefault((note["recipient"], note.get("activity") or "", alone), []).append(note)
    return [Message(message_id([n["id"] for n in notes]), recipient, notes[0]["channel"], activity, notes)
            for (recipient, activity, _), notes in groups.items()]
