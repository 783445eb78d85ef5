"""Silences: a time-boxed mute set by a person ("the mail relay is being replaced tonight,
page nobody about email"), like Alertmanager's silences.

A silence has matchers on a decision's ``service``, ``target`` and ``subject`` and on a
notification's ``recipient`` (glob patterns: ``email``, ``INC-*``, ``*@example.org``),
a span (``starts_at`` to ``ends_at``), who made it and why. While it is active, every
notification recorded that all its matchers match is stored ``muted``, its
``last_error`` naming the silence, so one can see who would have been told and why they
were not; it is never sent. A notification still queued when a silence begins (waiting
for its group, or to be retried) is muted so when the deliverer takes it up. A silence
ends at ``ends_at``, or earlier when someone expires it; nothing muted is sent later, and
what was sent before it began stays sent.

Silences live in the store as chained events (created, expired): engine/store/silences.py.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from engine.notify.mute import mute_where
from schemas.records import SILENCE_MATCHERS as MATCHERS
from schemas.records import Decision, Notification
from schemas.values import format_instant, parse_instant

MAX_REASON = 1000
MAX_PATTERN = 200


class SilenceError(ValueError):
    """A silence that cannot be made; ``details`` names each bad field."""

    def __init__(self, details: dict[str, list[str]]):
        self.details = details
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(details.items())))


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    reason: str
    created_at: datetime
    expired_at: datetime | None = None
    expired_by: str | None = None

    @property
    def until(self) -> datetime:
        """When it stops muting: its end, or when it was expired if that came first."""
        return self.ends_at if self.expired_at is None else min(self.ends_at, self.expired_at)

    def state(self, now: datetime) -> str:
        """``pending`` before it starts, ``active`` while it mutes, ``expired`` after."""
        if now >= self.until:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def mutes(self, decision: Decision, notification: Notification) -> bool:
        """All its matchers match (a matcher on a field the decision lacks never does)."""
        return self.matches({"service": decision.service, "target": decision.target, "subject": decision.subject,
                             "recipient": notification.recipient})

    def matches(self, values: dict[str, Any]) -> bool:
        """All its matchers match ``values`` (service, target, subject, recipient)."""
        return all(isinstance(value := values.get(name), str) and fnmatchcase(value, pattern)
                   for name, pattern in self.matchers.items())

    def why(self) -> str:
        """What a notification it mutes says (its ``last_error``)."""
        return f"silenced by {self.id} until {format_instant(self.until)} ({self.created_by}: {self.reason})"

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "matchers": dict(self.matchers), "starts_at": format_instant(self.starts_at),
            "ends_at": format_instant(self.ends_at), "created_by": self.created_by, "reason": self.reason,
            "created_at": format_instant(self.created_at),
            "expired_at": None if self.expired_at is None else format_instant(self.expired_at),
            "expired_by": self.expired_by}
        if now is not None:
            out["state"] = self.state(now)
        return out


def new_silence(matchers: dict[str, object], starts_at: datetime, ends_at: datetime, created_by: str,
                reason: object, now: datetime) -> Silence:
    """A silence checked whole: SilenceError names each bad field."""
    problems: dict[str, list[str]] = {}
    if not isinstance(matchers, dict) or not matchers:
        problems["matchers"] = [f"at least one of {', '.join(MATCHERS)} (a glob pattern): a silence of "
                                "everything would hide every breach"]
        matchers = {}
    for name, pattern in matchers.items():
        if name not in MATCHERS:
            problems[f"matchers.{name}"] = [f"not a matcher (matchers: {', '.join(MATCHERS)})"]
        elif not isinstance(pattern, str) or not pattern.strip() or len(pattern) > MAX_PATTERN:
            problems[f"matchers.{name}"] = [f"a glob pattern of 1 to {MAX_PATTERN} characters"]
        elif pattern.strip("*") == "":
            problems[f"matchers.{name}"] = ["matches everything: name what to silence"]
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        problems["reason"] = [f"say why, in 1 to {MAX_REASON} characters"]
    if ends_at <= starts_at:
        problems["ends_at"] = [f"{format_instant(ends_at)} is not after starts_at {format_instant(starts_at)}"]
    elif ends_at <= now:
        problems["ends_at"] = [f"{format_instant(ends_at)} has passed: such a silence would mute nothing"]
    if problems:
        raise SilenceError(problems)
    return Silence("sil_" + secrets.token_hex(8), {k: str(v) for k, v in matchers.items()}, starts_at, ends_at,
                   created_by, str(reason).strip(), now)


def from_events(events: Iterable[dict[str, Any]]) -> dict[str, Silence]:
    """Silences by id, from their stored events in order (created, then maybe expired)."""
    out: dict[str, Silence] = {}
    for event in events:
        if event["event"] == "created":
            out[event["id"]] = Silence(event["id"], dict(event["matchers"]), parse_instant(event["starts_at"]),
                                       parse_instant(event["ends_at"]), event["created_by"], event["reason"],
                                       parse_instant(event["created_at"]))
        elif event["event"] == "expired" and event["id"] in out and out[event["id"]].expired_at is None:
            out[event["id"]] = replace(out[event["id"]], expired_at=parse_instant(event["at"]),
                                       expired_by=event["by"])
    return out


class SilenceCache:
    """The silences as their events fold, read again only once an event was added (by this
    process or another): every write that notifies, and every claim of the deliverer,
    asks for them, and reading and folding every silence ever made each time cost in
    proportion to them all. One per reader: it is not shared between threads."""

    def __init__(self) -> None:
        self._seen: tuple[int, int] | None = None         # (the store's identity, its events' version)
        self._silences: dict[str, Silence] = {}

    def read(self, store: Any) -> dict[str, Silence]:
        """Silences by id, as the store holds them now."""
        seen = (id(store), store.silences_version())
        if seen != self._seen:
            self._silences, self._seen = from_events(store.silence_events()), seen
        return self._silences


def silenced_queued(claimed: list[dict[str, Any]], decisions: dict[str, dict[str, Any]],
                    silences: Iterable[Silence], now: datetime) -> dict[str, str]:
    """Of notifications queued before a silence began (claimed for delivery: records with
    ``id``, ``decision``, ``recipient``), those an active silence matches now: id -> why.
    The deliverer mutes them instead of sending them, as Alertmanager does at send time."""
    active = [s for s in silences if s.state(now) == "active"]
    out = {}
    for note in claimed if active else ():
        decision = decisions.get(note["decision"]) or {}
        values = {"service": decision.get("service"), "target": decision.get("target"),
                  "subject": decision.get("subject"), "recipient": note["recipient"]}
        found = next((s for s in active if s.matches(values)), None)
        if found is not None:
            out[note["id"]] = found.why()
    return out


def created_event(silence: Silence) -> dict[str, Any]:
    """What the store chains when ``silence`` is made."""
    return {k: v for k, v in silence.as_dict().items() if k not in ("id", "expired_at", "expired_by")}


def expired_event(by: str, now: datetime) -> dict[str, Any]:
    """What the store chains when a silence is ended early."""
    return {"by": by, "at": format_instant(now)}


def silence(decision: Decision, notifications: list[Notification], silences: Iterable[Silence],
            now: datetime) -> list[Notification]:
    """``notifications`` with those an active silence matches stored ``muted``, naming it."""
    active = [s for s in silences if s.state(now) == "active"]
    if not active:
        return notifications

    def why(note: Notification) -> str | None:
        found = next((s for s in active if s.mutes(decision, note)), None)
        return None if found is None else found.why()
    return mute_where(notifications, why)
