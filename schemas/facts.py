"""The fact envelope tools post (README.md, "The API"): CloudEvents-shaped JSON.

``id`` + ``source`` identify a fact; ``time`` is event time with an offset and is
normalised to UTC, the instant the engine works on; the string as posted is kept beside
it as ``time_posted`` (the offset the tool used, a leap second as written), stored with
the fact but never evaluated; ``data`` holds everything else.

The limits below are the engine's and the stores' limits, stated where a client can see
them: durable_rules refuses a fact with more than about 245 object properties in all or
nested about 250 deep (and the service then had to rebuild), PostgreSQL cannot store a
NUL character, SQLite's driver cannot encode a lone surrogate, ``NaN`` or
``Infinity`` are not JSON at all, and durable_rules reads an integer as a 64-bit one
(a larger one compared wrongly, and one of 400 digits failed inside the engine); every
finite float is held exactly. A fact that breaks one is refused with 422 naming the
field, before anything is written.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates, validates_schema
from marshmallow.exceptions import SCHEMA

from . import strings
from .counts import COUNTS_TYPE, counts_problems
from .fields import AnyField
from .values import format_instant, parse_instant, parse_rfc3339

MAX_DATA_KEYS = 128        # object properties in ``data``, nested ones included
MAX_DATA_DEPTH = 16        # objects and arrays inside ``data``
MAX_DATA_ITEMS = 4096      # values in ``data`` in all (array items included)
MAX_STRING = 64 * 1024     # characters in one string of ``data``
MAX_KEY = 256              # characters in one property name
MIN_INTEGER, MAX_INTEGER = -2**63, 2**63 - 1   # durable_rules reads integers as C's long long
_UNSAFE = re.compile("[\x00\ud800-\udfff]")   # NUL (PostgreSQL) and lone surrogates (not UTF-8)

TYPE_PATTERN = re.compile(strings.TYPE_NAME)    # matched whole (fullmatch), as the document's pattern is
CLOUDEVENTS_ATTRIBUTES = ("specversion", "datacontenttype", "dataschema")
POSTED_TIME = "time_posted"     # the stored fact's ``time`` as it was posted (never posted itself)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)    # durable_rules keeps event times as epoch seconds
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


# A value inside ``data``, as the API document states it (components/schemas/FactValue):
# what can be stated per value. The totals (MAX_DATA_KEYS properties and MAX_DATA_ITEMS
# values in all, MAX_DATA_DEPTH levels) and the property names (at most MAX_KEY characters,
# no NUL) are in its description: OpenAPI 3.0 has no ``propertyNames``.
FACT_VALUE_REF = {"$ref": "#/components/schemas/FactValue"}
FACT_VALUE: dict[str, Any] = {
    "description": f"Any JSON value but an integer beyond 64 bits and a string with NUL or over {MAX_STRING} "
                   f"characters; in all at most {MAX_DATA_KEYS} properties, {MAX_DATA_ITEMS} values and "
                   f"{MAX_DATA_DEPTH} levels, property names of at most {MAX_KEY} characters without NUL",
    "anyOf": [
        {"type": "string", "maxLength": MAX_STRING, "pattern": strings.NO_NUL},
        {"type": "integer", "minimum": MIN_INTEGER, "maximum": MAX_INTEGER},
        {"type": "number", "not": {"type": "integer"}},       # 1.5, 1e300: floats, held exactly
        {"type": "boolean"},
        {"type": "array", "items": FACT_VALUE_REF},
        {"type": "object", "additionalProperties": FACT_VALUE_REF},
        {"type": "string", "nullable": True, "enum": [None]},
    ],
}


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as posted (None if it can)."""
    found = _UNSAFE.search(value)
    if found is None:
        return None
    char = found.group()
    what = "a NUL character" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"
    return f"contains {what} at position {found.start()}; strings must be valid Unicode without NUL"


class Text(fields.String):
    """A string the stores and the engine can keep exactly: no NUL, no lone surrogate."""

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> str:
        value = super()._deserialize(value, attr, data, **kwargs)
        problem = text_problem(value)
        if problem:
            raise ValidationError(problem)
        return value


class FactData(fields.Dict):
    """``data``: any JSON object within the engine's limits (see the module's docstring).
    Errors are keyed by the path inside ``data`` (``data.labels.host``, ``data.items[3]``)."""

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> dict[str, Any]:
        # marshmallow leaves Mapping._deserialize unannotated (a Dict field loads a dict)
        value = cast(dict[str, Any], super()._deserialize(value, attr, data, **kwargs))  # type: ignore[no-untyped-call]
        problems: dict[str, list[str]] = {}
        counts = {"keys": 0, "items": 0}
        _check_value(value, "", 0, counts, problems)
        if counts["keys"] > MAX_DATA_KEYS:
            problems.setdefault("_object", []).append(
                f"{counts['keys']} properties in all (nested ones included); at most {MAX_DATA_KEYS}")
        if counts["items"] > MAX_DATA_ITEMS:
            problems.setdefault("_object", []).append(f"{counts['items']} values in all; at most {MAX_DATA_ITEMS}")
        if problems:
            raise ValidationError(problems)
        return value


def _check_value(value: object, path: str, depth: int, counts: dict[str, int], problems: dict[str, list[str]]) -> None:
    """Walk one JSON value of ``data`` and note what breaks a limit, by path. Stops
    descending (and counting) once there are problems enough to name."""
    if len(problems) >= 20:
        return
    counts["items"] += 1
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            problems[path or "_object"] = [f"a string of {len(value)} characters; at most {MAX_STRING}"]
        elif (problem := text_problem(value)):
            problems[path or "_object"] = [problem]
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            problems[path or "_object"] = [f"{value} is not a finite number (NaN, Infinity and numbers "
                                           "beyond the range of a double such as 1e400 are refused)"]
    elif isinstance(value, int) and not isinstance(value, bool) and not MIN_INTEGER <= value <= MAX_INTEGER:
        digits = len(str(abs(value)))
        problems[path or "_object"] = [f"an integer of {digits} digits is beyond what the rule engine holds "
                                       f"({MIN_INTEGER} .. {MAX_INTEGER}); send it as a string or a float"]
    elif isinstance(value, (dict, list)):
        if depth >= MAX_DATA_DEPTH:
            problems[path or "_object"] = [f"nested deeper than {MAX_DATA_DEPTH} levels"]
            return
        if isinstance(value, dict):
            for key, item in value.items():
                counts["keys"] += 1
                where = f"{path}.{key}" if path else str(key)
                if not isinstance(key, str) or len(key) > MAX_KEY:
                    problems[where[:80]] = [f"property names are strings of at most {MAX_KEY} characters"]
                    continue
                if (problem := text_problem(key)):
                    problems[where.encode("utf-8", "backslashreplace").decode()] = [f"the property name {problem[:-1]}"]
                    continue
                _check_value(item, where, depth + 1, counts, problems)
        else:
            for index, item in enumerate(value):
                _check_value(item, f"{path}[{index}]", depth + 1, counts, problems)


class FactTime(AnyField):
    """RFC 3339 ``date-time`` exactly, loaded as an aware UTC datetime."""

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> datetime:
        try:
            value = parse_rfc3339(value)
        except ValueError as err:
            raise ValidationError(str(err)) from None
        if not EARLIEST <= value <= LATEST:
            raise ValidationError(f"{format_instant(value)} is outside the supported range "
                                  f"{format_instant(EARLIEST)} .. {format_instant(LATEST)}")
        return value

    def _serialize(self, value: datetime | None, attr: str | None, obj: object, **kwargs: Any) -> str | None:
        return None if value is None else format_instant(value)


NO_NUL = {"pattern": strings.NO_NUL}


class FactSchema(Schema):
    """One fact. Unknown top-level fields are errors; CloudEvents attributes are accepted."""

    class Meta:
        unknown = "raise"

    id = Text(required=True, validate=validate.Length(min=1, max=256), metadata=NO_NUL)
    source = Text(required=True, validate=validate.Length(min=1, max=256), metadata=NO_NUL)
    type = Text(required=True, validate=validate.Length(min=1, max=128), metadata={"pattern": strings.POSTED_TYPE})
    time = FactTime(required=True, metadata={"pattern": strings.FACT_INSTANT, "description": (
        "RFC 3339, from 1970-01-01T00:00:00Z to 9999-01-01T00:00:00Z, at most `slm serve --skew` ahead of the "
        "server's clock and at most `--max-lateness` behind the newest fact of its subject (else 422)")})
    subject = Text(validate=validate.Length(max=256), allow_none=True, metadata=NO_NUL)
    service = Text(validate=validate.Length(max=128), allow_none=True,
                   metadata={strings.KNOWN: "services-in-force", "description": "a service of the rules in force"})
    data = FactData(keys=fields.String(), load_default=dict, allow_none=True, metadata={
        "additionalProperties": FACT_VALUE_REF, "maxProperties": MAX_DATA_KEYS})
    specversion = fields.String(load_only=True, validate=validate.OneOf(["1.0"]))
    datacontenttype = fields.String(load_only=True)
    dataschema = fields.String(load_only=True)

    @validates("type")
    def _dotted(self, value: str, **kwargs: Any) -> None:
        if not TYPE_PATTERN.fullmatch(value):
            raise ValidationError(f"{value!r} is not a dotted type name (example: incident.opened)")
        if value.startswith("decision.") or value.startswith("clock."):
            raise ValidationError(f"{value!r}: types decision.* and clock.* are derived by the engine, "
                                  "not posted")

    @validates_schema
    def _counts(self, data: dict[str, Any], **kwargs: Any) -> None:
        """An ``sli.counts`` fact carries its interval's good and total events (schemas.counts)."""
        if data.get("type") == COUNTS_TYPE and isinstance(data.get("data"), dict):
            time = data.get("time")
            problems = counts_problems(data["data"], time if isinstance(time, datetime) else None)
            if problems:
                raise ValidationError({"data": {name[5:]: [text] for name, text in problems.items()}})

    @post_load(pass_original=True)
    def _normalise(self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        for name in CLOUDEVENTS_ATTRIBUTES:
            data.pop(name, None)
        if isinstance(original.get("time"), str):
            data[POSTED_TIME] = original["time"]
        data["data"] = data.get("data") or {}
        data.setdefault("subject", None)
        data.setdefault("service", None)
        return data


def dump_fact(fact: Mapping[str, Any]) -> dict[str, Any]:
    """A loaded fact back to JSON-ready form (time as RFC 3339 UTC), without the posted
    time string: what the fact says, whatever offset it was written in."""
    out = {**fact, "time": format_instant(fact["time"])}
    out.pop(POSTED_TIME, None)
    return out


def stored_fact(fact: Mapping[str, Any]) -> dict[str, Any]:
    """A loaded fact as the store keeps it: :func:`dump_fact` and the time as posted."""
    out = dump_fact(fact)
    if fact.get(POSTED_TIME) is not None:
        out[POSTED_TIME] = fact[POSTED_TIME]
    return out


def load_stored(body: Mapping[str, Any]) -> dict[str, Any]:
    """A fact as the store keeps it (:func:`stored_fact` of a fact validated when it was
    posted) back to its loaded form: only its time is parsed again, so a replay of a
    million facts does not validate them all a second time."""
    return {**body, "time": parse_instant(body["time"])}


def flatten_errors(messages: Mapping[str | int, Any] | list[Any], prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error messages (``ValidationError.messages``) as
    ``{"data.field": [messages]}``; a bare list (an error that names no field) goes under
    ``prefix``, or ``_schema`` as marshmallow files a schema's own errors."""
    if isinstance(messages, list):
        return {prefix or SCHEMA: [str(v) for v in messages]}
    out: dict[str, list[str]] = {}
    for key, value in messages.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten_errors(value, path))
        else:
            out[path] = [str(v) for v in value]
    return out


# What FactSchema loads, and the limits of its string fields: (name, shortest, longest).
_SCHEMA_FIELDS = frozenset({"id", "source", "type", "time", "subject", "service", "data", *CLOUDEVENTS_ATTRIBUTES})
_REQUIRED_TEXT = (("id", 1, 256), ("source", 1, 256), ("type", 1, 128))
_OPTIONAL_TEXT = (("subject", 256), ("service", 128))


def quick_load(raw: object) -> dict[str, Any] | None:
    """The common fact loaded as ``FactSchema().load`` loads it (the same dict, keys in the
    same order), at a fraction of its cost; None for anything it does not decide, which
    the schema then loads (or refuses, with its messages). It takes only what it can
    accept outright: plain strings within their limits, a time :func:`parse_rfc3339`
    reads within range, ``data`` within the engine's limits; any other fact, a type the
    schema checks further (``sli.counts``) and every fact the schema would refuse go to
    the schema. tests/lang/test_fact_schema.py compares the two on generated facts."""
    if type(raw) is not dict or not raw.keys() <= _SCHEMA_FIELDS:
        return None
    for name, shortest, longest in _REQUIRED_TEXT:
        value = raw.get(name)
        if type(value) is not str or not shortest <= len(value) <= longest or _UNSAFE.search(value):
            return None
    for name, longest in _OPTIONAL_TEXT:
        value = raw.get(name)
        if value is not None and (type(value) is not str or len(value) > longest or _UNSAFE.search(value)):
            return None
    kind = raw["type"]
    if not TYPE_PATTERN.fullmatch(kind) or kind.startswith(("decision.", "clock.")) or kind == COUNTS_TYPE:
        return None
    if "specversion" in raw and (type(raw["specversion"]) is not str or raw["specversion"] != "1.0"):
        return None
    if any(name in raw and type(raw[name]) is not str for name in ("datacontenttype", "dataschema")):
        return None
    posted = raw.get("time")
    if type(posted) is not str:
        return None
    try:
        at = parse_rfc3339(posted)
    except ValueError:
        return None
    if not EARLIEST <= at <= LATEST:
        return None
    data = raw.get("data")
    if data is not None:
        if type(data) is not dict or not all(type(key) is str for key in data):
            return None
        problems: dict[str, list[str]] = {}
        counts = {"keys": 0, "items": 0}
        _check_value(data, "", 0, counts, problems)
        if problems or counts["keys"] > MAX_DATA_KEYS or counts["items"] > MAX_DATA_ITEMS:
            return None
    # as the schema builds it: its fields in their order, then what _normalise adds
    out: dict[str, Any] = {"id": raw["id"], "source": raw["source"], "type": kind, "time": at}
    for name in ("subject", "service"):
        if name in raw:
            out[name] = raw[name]
    out["data"] = dict(data) if data else {}
    out[POSTED_TIME] = posted
    out.setdefault("subject", None)
    out.setdefault("service", None)
    return out
