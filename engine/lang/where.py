"""``where`` conditions evaluated in Python, with the reason the first one fails.

durable_rules matches the patterns it compiles; this is for the conditions the runtime
checks itself (a clock condition written as a pattern ``{type, where}``) and for
explaining a fact (why did it not start a clock?), where a yes/no is not enough: the
answer names the first condition that failed, ``where priority: "p1" ≠ "P1"``. The
semantics are the compiler's (engine/eval/compiler.py): envelope names are the fact's
own fields, any other name a field of ``data``; a ``null`` value means "absent".
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

from schemas.values import parse_instant

ENVELOPE = ("id", "source", "type", "time", "subject", "service")
MISSING = object()


def field_at(value: object, path: str, missing: object = None) -> object:
    """The value at a dotted ``path`` inside nested mappings, else ``missing``."""
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return missing
        value = value[part]
    return value


def lookup(fact: Mapping[str, Any]) -> Callable[[str], object]:
    """Field access on a fact as posted (``{id, type, time, subject, service, data}``)."""
    data = fact.get("data") or {}

    def get(name: str) -> object:
        if name in ENVELOPE:
            return fact.get(name, MISSING) if fact.get(name) is not None else MISSING
        return field_at(data, name, MISSING)
    return get


def failure(where: Mapping[str, Any], get: Callable[[str], object]) -> str | None:
    """None when every condition holds, else the first that fails, in words."""
    for key, cond in where.items():
        if key == "all":
            for item in cond:
                reason = failure(item, get)
                if reason:
                    return reason
        elif key == "any":
            reasons = [failure(item, get) for item in cond]
            if all(reasons):
                return "none of 'any' holds: " + "; ".join(cast(list[str], reasons))     # all() holds: none is None
        elif isinstance(cond, dict):
            for op, operand in cond.items():
                reason = _operator(key, op, operand, get(key))
                if reason:
                    return reason
        else:
            reason = _equals(key, cond, get(key))
            if reason:
                return reason
    return None


def _show(value: object) -> str:
    return "absent" if value is MISSING else json.dumps(value, default=str)


def _same(name: str, a: object, b: object) -> bool:
    if name == "time" and isinstance(a, str) and isinstance(b, str):
        try:
            return parse_instant(a) == parse_instant(b)
        except ValueError:
            return False
    return a == b and type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                               and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def _equals(name: str, expected: object, found: object) -> str | None:
    if expected is None:
        return None if found is MISSING else f"where {name}: {_show(found)} is present, expected absent"
    if found is not MISSING and _same(name, found, expected):
        return None
    return f"where {name}: {_show(found)} ≠ {_show(expected)}"


def _operator(name: str, op: str, operand: Any, found: Any) -> str | None:
    if op == "exists":
        return None if (found is not MISSING) == bool(operand) else \
            f"where {name}: {_show(found)}, expected {'present' if operand else 'absent'}"
    if op == "in":
        if found is not MISSING and any(_same(name, found, item) for item in operand):
            return None
        return f"where {name}: {_show(found)} is not one of {_show(operand)}"
    if op == "ne":
        return None if found is MISSING or not _same(name, found, operand) else \
            f"where {name}: {_show(found)} is {_show(operand)}, expected anything else"
    if found is MISSING:
        return f"where {name}: absent, expected {op} {_show(operand)}"
    if op == "matches":
        ok = isinstance(found, str) and re.fullmatch(operand, found) is not None
        return None if ok else f"where {name}: {_show(found)} does not match {_show(operand)}"
    try:
        left, right = (parse_instant(found), parse_instant(operand)) if name == "time" else (found, operand)
        ok = {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]
    except (TypeError, ValueError):
        ok = False
    symbol = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}[op]
    return None if ok else f"where {name}: {_show(found)} is not {symbol} {_show(operand)}"
