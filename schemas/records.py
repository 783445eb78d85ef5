"""The records slm produces, defined once: a decision and a notification.

The engine builds :class:`Decision` objects, the notify stage builds :class:`Notification`
objects, the store keeps :meth:`as_dict` (its canonical JSON is what the audit chain
hashes), and the API schemas (``schemas.api``) are tested against these fields, so a
field cannot be dropped on the way out without a test failing.

Times and durations stay Python values until a record is written out: a replay that
discards its decisions never formats them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from .values import format_instant, format_whole_duration

# Fields written only when set, so each kind of decision keeps its own compact shape
# (a Rule's decision has no cycle, a warning no activity). Everything else is always written.
_OPTIONAL = ("agreement_type", "cycle", "level", "activity", "repeat", "severity", "message")


@dataclass(slots=True)
class Decision:
    """One thing the engine decided: a warning, breach, met, escalation, retraction, or a
    kind a Rule decides. ``id`` is deterministic (see ``engine.eval.records``)."""

    id: str
    kind: str
    target: str | None
    subject: str | None
    service: str | None
    agreement: str | None
    at: datetime
    shadow: bool
    data: dict[str, Any]
    rule: dict[str, Any]              # {id, file, line, ruleset}: the definition that decided
    because: list[str]                # refs: fact:<source>#<id>, decision:<id>, clock:<target>/<subject>
    agreement_type: str | None = None
    cycle: int | None = None
    level: str | None = None
    activity: str | None = None
    repeat: int | None = None
    severity: str | None = None
    message: str | None = None
    # Not part of the record: the text a Rule gives its notifications, if it differs.
    notice: str | None = field(default=None, compare=False, metadata={"record": False})

    def as_dict(self) -> dict[str, Any]:
        """The record as stored, hashed and returned by the API."""
        out = {"id": self.id, "kind": self.kind, "target": self.target, "subject": self.subject,
               "service": self.service, "agreement": self.agreement, "at": format_instant(self.at),
               "shadow": self.shadow, "data": _plain(self.data), "rule": self.rule,
               "because": list(self.because)}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def fact_ref(source: str, fact_id: str) -> str:
    """A fact as a ``because`` names it: ``fact:<source>#<id>``. A fact is identified by its
    source and id together (two tools may use the same id), so the reference carries both:
    ``%`` and ``#`` in the source are written ``%25`` and ``%23``, so the first ``#`` ends it."""
    return "fact:" + source.replace("%", "%25").replace("#", "%23") + "#" + fact_id


def fact_key(ref_key: str) -> tuple[str | None, str]:
    """``(source, id)`` of what follows ``fact:`` in a reference. Decisions stored before
    references carried the source name the id alone (``fact:<id>``): their source is
    None, and an id with a ``#`` in it reads as a source and id (callers that find no
    such fact try the whole text as an id)."""
    source, sep, fact_id = ref_key.partition("#")
    if not sep or not source:
        return None, ref_key
    return _ESCAPED.sub(lambda m: "#" if m.group() == "%23" else "%", source), fact_id


_ESCAPED = re.compile("%2[35]")


SILENCE_MATCHERS = ("service", "target", "subject", "recipient")   # what a silence matches (engine/notify/silence.py)
NOTIFICATION_STATUSES = ("pending", "retrying", "sent", "failed", "muted", "cancelled", "undeliverable")


@dataclass(slots=True)
class Notification:
    """Who is told of a decision, in which RACI capacity, through which channel, and how
    its delivery went.

    The first eight fields, ``oncall`` and ``call`` are what routing decided (stored once as the
    record's body); the delivery fields change as the outbox works on it (stored in columns of their own).
    ``status``: pending → sent | retrying → sent | failed; ``muted`` (a shadow decision's,
    never sent), ``cancelled`` (its decision was retracted before it went out),
    ``undeliverable`` (no channel for the recipient, e.g. e-mail without a relay)."""

    id: str
    decision: str
    activity: str
    recipient: str
    roles: list[str]
    raci: str                         # letters merged in R, A, C, I order: "R,A"; "" for a call
    channel: str                      # email | webhook | chat | default
    message: str
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: str | None = None   # RFC 3339 UTC, while pending or retrying
    message_id: str | None = None        # the message it went out in (its own id, or a group's)
    # What routing decided too, written only when set: the on-call schedules that gave this
    # recipient, or found nobody on call ({schedule, role, at, gave, event, uid, from, to,
    # fallback}: engine/notify/route.py).
    oncall: list[dict[str, Any]] | None = None
    # A write-back's request as rendered (kind, url, the texts; the credentials only named:
    # engine/lang/writeback.py), written only when set.
    call: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("oncall", "call"):
            if out[name] is None:
                del out[name]
        return out


def record_fields(cls: type[Decision | Notification]) -> set[str]:
    """The names a record of ``cls`` can carry when written out."""
    return {f.name for f in fields(cls) if f.metadata.get("record", True)}


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Durations as text (whole seconds), instants as RFC 3339; everything else as is."""
    if not any(isinstance(v, (timedelta, datetime)) for v in data.values()):
        return data
    return {k: format_whole_duration(v) if isinstance(v, timedelta)
            else format_instant(v) if isinstance(v, datetime) else v for k, v in data.items()}
