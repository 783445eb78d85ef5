"""The ``sli.counts`` fact: good and total events of one interval, for ratio targets
(docs/RULES.md, "Ratio targets").

``data: {name, good, total, start}``; the interval is [``data.start``, the fact's ``time``):
a count is known when its interval ends, so the fact's own time is the end, and a rolling
window or a burn-rate window never has to be rewritten by counts that arrive later.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from fractions import Fraction
from typing import Any, NamedTuple

from .values import parse_instant

COUNTS_TYPE = "sli.counts"


class Counts(NamedTuple):
    good: Fraction
    total: Fraction
    start: datetime


def _number(value: object) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (
            float("inf"), float("-inf")):
        return None
    return Fraction(value)


def counts_problems(data: Mapping[str, Any], end: datetime | None) -> dict[str, str]:
    """What is wrong with an ``sli.counts`` fact's data, by field (``data.good``, …); empty
    if nothing is. ``end``: the fact's time, which the interval ends at."""
    problems: dict[str, str] = {}
    if not isinstance(data.get("name"), str) or not data["name"]:
        problems["data.name"] = "the SLI's name is required (a ratio target's ratio.name), a string"
    numbers = {}
    for name in ("good", "total"):
        value = _number(data.get(name))
        if name not in data:
            problems[f"data.{name}"] = f"'{name}' is required: the number of {name} events in the interval"
        elif value is None:
            problems[f"data.{name}"] = f"{data[name]!r} is not a number"
        elif value < 0:
            problems[f"data.{name}"] = f"{data[name]!r}: a count is not negative"
        else:
            numbers[name] = value
    if len(numbers) == 2 and numbers["good"] > numbers["total"]:
        problems["data.good"] = f"good ({data['good']}) is more than total ({data['total']})"
    start = data.get("start")
    if start is None:
        problems["data.start"] = "'start' is required: the RFC 3339 instant the interval begins (it ends at 'time')"
    else:
        try:
            begins = parse_instant(start) if isinstance(start, str) else None
        except ValueError:
            begins = None
        if begins is None:
            problems["data.start"] = f"{start!r} is not an RFC 3339 instant with an offset"
        elif end is not None and begins >= end:
            problems["data.start"] = f"the interval ends at the fact's time ({end.isoformat()}), so it starts " \
                                     f"before it, not at {start}"
    return problems


def read_counts(data: Mapping[str, Any]) -> Counts:
    """An ``sli.counts`` fact's counts (validated before: ValueError if they are not)."""
    good, total = _number(data.get("good")), _number(data.get("total"))
    if good is None or total is None or not isinstance(data.get("start"), str):
        raise ValueError("not an sli.counts fact's data")
    return Counts(good, total, parse_instant(data["start"]))
