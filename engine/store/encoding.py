"""How records become column values, the same on SQLite and PostgreSQL.

Records are stored whole as canonical JSON (one text per record, so the decision chain can
hash it); the columns queries filter on copy fields out of it. Times in those columns are
UTC with fixed width (``2026-11-02T09:00:00.000000Z``) so they compare as text on both
databases; the records themselves keep what was posted.
"""
from __future__ import annotations

import json

from engine.clock import utcnow
from schemas.values import parse_instant

_UTC_TEXT = "%Y-%m-%dT%H:%M:%S.%fZ"


def canonical_json(obj) -> str:
    """The one JSON text of a record: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads(text):
    """A stored JSON column, None for SQL NULL."""
    return None if text is None else json.loads(text)


def now_text() -> str:
    """The current time as column text."""
    return utcnow().strftime(_UTC_TEXT)


def instant_text(value, what: str) -> str:
    """An RFC 3339 time (or aware datetime) as the fixed-width UTC text of the columns."""
    try:
        return parse_instant(value).strftime(_UTC_TEXT)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {exc}") from None


def required_text(record: dict, key: str, what: str) -> str:
    """``record[key]``, which must be a non-empty string."""
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} needs a non-empty string '{key}'")
    return value
