"""The fact envelope tools post (DESIGN §3): CloudEvents-shaped JSON.

``id`` + ``source`` identify a fact; ``time`` is event time with an offset and is
normalised to UTC; ``data`` holds everything else.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from .values import format_instant, parse_instant

TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
CLOUDEVENTS_ATTRIBUTES = ("specversion", "datacontenttype", "dataschema")
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)    # durable_rules keeps event times as epoch seconds
LATEST = datetime(9999, 1, 1, tzinfo=timezone.utc)


class FactTime(fields.Field):
    """RFC 3339 with an offset, loaded as an aware UTC datetime."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            value = parse_instant(value)
        except ValueError as err:
            raise ValidationError(str(err)) from None
        if not EARLIEST <= value <= LATEST:
            raise ValidationError(f"{format_instant(value)} is outside the supported range "
                                  f"{format_instant(EARLIEST)} .. {format_instant(LATEST)}")
        return value

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format_instant(value)


class FactSchema(Schema):
    """One fact. Unknown top-level fields are errors; CloudEvents attributes are accepted."""

    class Meta:
        unknown = "raise"

    id = fields.String(required=True, validate=validate.Length(min=1, max=256))
    source = fields.String(required=True, validate=validate.Length(min=1, max=256))
    type = fields.String(required=True, validate=validate.Length(min=1, max=128))
    time = FactTime(required=True)
    subject = fields.String(validate=validate.Length(max=256), allow_none=True)
    service = fields.String(validate=validate.Length(max=128), allow_none=True)
    data = fields.Dict(keys=fields.String(), load_default=dict, allow_none=True)
    specversion = fields.String(load_only=True, validate=validate.OneOf(["1.0"]))
    datacontenttype = fields.String(load_only=True)
    dataschema = fields.String(load_only=True)

    @validates("type")
    def _dotted(self, value, **kwargs):
        if not TYPE_PATTERN.match(value):
            raise ValidationError(f"{value!r} is not a dotted type name (example: incident.opened)")
        if value.startswith("decision.") or value.startswith("clock."):
            raise ValidationError(f"{value!r}: types decision.* and clock.* are derived by the engine, "
                                  "not posted")

    @post_load
    def _normalise(self, data, **kwargs):
        for name in CLOUDEVENTS_ATTRIBUTES:
            data.pop(name, None)
        data["data"] = data.get("data") or {}
        data.setdefault("subject", None)
        data.setdefault("service", None)
        return data


def dump_fact(fact: dict) -> dict:
    """A loaded fact back to JSON-ready form (time as RFC 3339 UTC)."""
    return {**fact, "time": format_instant(fact["time"])}


def load_stored(body: dict) -> dict:
    """A fact as the store keeps it (``dump_fact`` of a fact validated when it was posted)
    back to its loaded form: only its time is parsed again, so a replay of a million facts
    does not validate them all a second time."""
    return {**body, "time": parse_instant(body["time"])}


def flatten_errors(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error messages as ``{"data.field": [messages]}``."""
    out: dict[str, list[str]] = {}
    for key, value in messages.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten_errors(value, path))
        else:
            out[path] = [str(v) for v in value]
    return out
