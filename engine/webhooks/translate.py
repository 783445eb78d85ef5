"""A payload through a mapping: the facts it becomes, and why, or why it became none.

The facts come out as ``POST /v1/facts`` takes them (``time`` an RFC 3339 string): they
are validated, checked for lateness and stored by the same intake as posted facts, so a
mapping can produce nothing that a tool could not have posted itself. A mapped fact that
misses a field it needs (the path found nothing, the map has no entry and no default) is
not made; the answer says which field and what was found.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.lang.mapping import MappedFact, MappedValue, Mapping
from schemas.values import format_instant

REQUIRED = ("id", "type", "time", "service")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_UNITS = {"epoch_s": ("seconds", 1), "epoch_ms": ("milliseconds", 1000), "epoch_ns": ("nanoseconds", 10**9)}
MAX_SHOWN = 80            # characters of a found value quoted in a reason


class Miss(Exception):
    """A mapped fact cannot be made from this payload; the message says why."""


@dataclass
class Translation:
    """What a payload became: facts in order, how each field of each was found, and why
    the mapped facts that were not made were not."""

    facts: list[dict[str, Any]] = field(default_factory=list)
    found: list[dict[str, Any]] = field(default_factory=list)      # per fact: {fact, item, fields}
    reasons: list[str] = field(default_factory=list)


def translate(mapping: Mapping, payload: object) -> Translation:
    """The facts ``payload`` becomes under ``mapping``."""
    out = Translation()
    for spec in mapping.facts:
        name = f"facts[{spec.index}]"
        if spec.when is not None and not truthy(spec.when.search(payload)):
            out.reasons.append(f"{name}: when {spec.when_text!r} is not true for this payload")
            continue
        for item, context in _contexts(spec, payload, out.reasons):
            where = name if item is None else f"{name} (item {item})"
            try:
                fact, how = _make(mapping, spec, context)
            except Miss as miss:
                out.reasons.append(f"{where}: {miss}")
                continue
            out.facts.append(fact)
            out.found.append({"fact": spec.index, "item": item, "fields": how})
    return out


def truthy(value: object) -> bool:
    """JMESPath's truth: false, null, empty strings, lists and objects are false; 0 is true."""
    return value is not None and value is not False and value not in ("", [], {})


def _contexts(spec: MappedFact, payload: object, reasons: list[str]) -> list[tuple[int | None, object]]:
    if spec.each is None:
        return [(None, payload)]
    items = spec.each.search(payload)
    if not isinstance(items, list) or not items:
        reasons.append(f"facts[{spec.index}]: each {spec.each_text!r} gives "
                       f"{'no list' if not isinstance(items, list) else 'an empty list'} for this payload")
        return []
    return [(index, {"item": item, "payload": payload}) for index, item in enumerate(items)]


def _make(mapping: Mapping, spec: MappedFact, context: object) -> tuple[dict[str, Any], dict[str, str]]:
    fact: dict[str, Any] = {"source": mapping.source}
    how: dict[str, str] = {}
    for name, value in spec.fields.items():
        found, how[name] = find(value, context)
        if found is None and name in REQUIRED:
            raise Miss(f"{name}: {how[name]}; a fact needs one")
        fact[name] = _converted(name, found, value)
        if name == "time" and value.format != "rfc3339":
            how[name] += f", read as {value.format}: {fact[name]}"
    data = {}
    for key, value in spec.data.items():
        found, how[f"data.{key}"] = find(value, context)
        if found is not None:
            data[key] = found
    fact["data"] = data
    return fact, how


def find(value: MappedValue, context: object) -> tuple[Any, str]:
    """What ``value`` gives for ``context`` and how it was found, in words."""
    if value.path is not None:
        found = value.path.search(context)
        how = f"{value.text} is {_show(found)}"
    else:
        found, how = value.value, f"the constant {_show(value.value)}"
    if found in (None, ""):
        if value.has_default:
            return value.default, f"{how}, so the default {_show(value.default)}"
        return None, f"{how}: nothing found" if value.path is not None else how
    if value.map is not None:
        key = as_key(found)
        if key in value.map:
            return value.map[key], f"{how}, mapped to {_show(value.map[key])}"
        if value.has_default:
            return value.default, f"{how}, not in the map, so the default {_show(value.default)}"
        known = ", ".join(repr(k) for k in list(value.map)[:10])
        raise Miss(f"{value.place.split('.', 1)[1]}: {how}, which its map does not name (it names {known}) "
                   "and it has no default")
    return found, how


def as_key(found: object) -> str:
    """A found value as a map's keys are written: text as is, numbers and booleans as JSON."""
    return found if isinstance(found, str) else json.dumps(found)


def _converted(name: str, found: object, value: MappedValue) -> object:
    field_name = value.place.split(".", 1)[1]
    if name == "time":
        return to_time(found, value.format, value.timezone, field_name)
    if name == "id" and isinstance(found, (int, float)) and not isinstance(found, bool):
        return json.dumps(found)
    if name in ("id", "type", "service", "subject") and found is not None and not isinstance(found, str):
        if name == "subject" and isinstance(found, (int, float)) and not isinstance(found, bool):
            return json.dumps(found)
        raise Miss(f"{field_name}: found {_show(found)}, which is not text")
    return found


def to_time(found: object, fmt: str, zone: str, name: str = "time") -> object:
    """``found`` as an RFC 3339 string, read as ``fmt`` says; an rfc3339 string is passed
    on as written (the intake checks it, and keeps it as posted)."""
    try:
        if fmt == "rfc3339":
            if not isinstance(found, str):
                raise Miss(f"{name}: found {_show(found)}, not RFC 3339 text (for a number, give format: "
                           "epoch_s or epoch_ms)")
            return found
        if fmt in EPOCH_UNITS:
            return format_instant(_from_epoch(found, fmt, name))
        if not isinstance(found, str):
            raise Miss(f"{name}: found {_show(found)}, not text to read as {fmt}")
        parsed = datetime.fromisoformat(found) if fmt == "iso8601" else datetime.strptime(found, fmt)
    except (ValueError, OverflowError, OSError) as err:
        raise Miss(f"{name}: {_show(found)} does not read as {fmt} ({err})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return format_instant(parsed)


def _from_epoch(found: object, fmt: str, name: str) -> datetime:
    """A count of seconds, milliseconds or nanoseconds since 1970 (a number or its text),
    read exactly when it is whole (Opsgenie's nanoseconds do not fit a float)."""
    unit, per_second = EPOCH_UNITS[fmt]
    if isinstance(found, str):
        found = float(found) if any(c in found for c in ".eE") else int(found)
    if isinstance(found, bool) or not isinstance(found, (int, float)):
        raise Miss(f"{name}: found {_show(found)}, not a number of {unit} since 1970")
    if isinstance(found, int):
        return EPOCH + timedelta(microseconds=found * 1_000_000 // per_second)
    return datetime.fromtimestamp(found / per_second, UTC)


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 1] + "…"
