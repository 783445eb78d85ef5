"""Parsers for the small value languages of rule files: durations, percentages,
escalation levels, weekly service hours and instants.

Each parser raises ``ValueError`` with a message that says what was expected, so the
schemas can attach it to the offending node's file:line:column.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from itertools import pairwise

from .strings import MAX_MONTHS, PERIODS

DURATION_EXAMPLES = "examples: 90s, 15m, 4h, 1h30m, 2d, PT15M"

_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_SHORT = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$", re.ASCII)
_ISO = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.ASCII)


def parse_duration(text: object) -> timedelta:
    """``90s``, ``15m``, ``4h``, ``1h30m``, ``2d``, ``1w`` or ISO 8601 ``PT15M``/``P2D``."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"{_show(text)} is not a duration ({DURATION_EXAMPLES})")
    if isinstance(text, int):
        raise ValueError(f'{text} is not a duration: give a unit, e.g. "{text}m" or "{text}s"')
    raw = text.strip().replace(" ", "")
    match = _SHORT.match(raw) or _ISO.match(raw.upper())
    if not raw or not match or not any(match.groups()) or raw.upper() in ("P", "PT"):
        raise ValueError(f"{_show(text)} is not a duration ({DURATION_EXAMPLES})")
    seconds = sum(int(n) * s for n, s in zip(match.groups(), _UNIT_SECONDS.values(), strict=True) if n)
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration` in the short form: ``1h30m``, ``0s``, ``-5m``."""
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, rest = divmod(micros, 1_000_000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if seconds or rest or not parts:
        parts.append(f"{seconds}.{rest:06d}".rstrip("0").rstrip(".") + "s")
    return sign + "".join(parts)


@lru_cache(maxsize=4096)
def format_whole_duration(value: timedelta) -> str:
    """A duration for people and records: whole seconds, rounded toward zero (``20m3s``,
    never ``20m3.798232s``), so it always parses back with :func:`parse_duration`."""
    seconds = int(value.total_seconds())
    return format_duration(timedelta(seconds=seconds))


def format_hours(value: timedelta) -> str:
    """A duration of service hours, in whole seconds and never in days (``30h``, ``1h30m``,
    ``45m``): 30 business hours are not "1d6h", as a business day is not 24 hours."""
    seconds = int(value.total_seconds())
    hours, rest = divmod(abs(seconds), 3600)
    minutes, rest = divmod(rest, 60)
    parts = ([f"{hours}h"] if hours else []) + ([f"{minutes}m"] if minutes else [])
    if rest or not parts:
        parts.append(f"{rest}s")
    return ("-" if seconds < 0 else "") + "".join(parts)


def format_remaining(budget: timedelta, counted: timedelta) -> str:
    """What is left of ``budget`` once ``counted`` is used, in whole seconds, so that it
    and ``format_whole_duration(counted)`` add up to the budget (``20m`` and ``3h40m`` of
    ``4h``, never ``3h39m59s`` for a count of 20m0.4s)."""
    used = timedelta(seconds=int(counted.total_seconds()))
    return format_whole_duration(max(budget - used, timedelta(0)))


def parse_percent(text: object) -> Fraction:
    """``75%`` or ``99.9%`` as an exact fraction (0.75, 0.999)."""
    if isinstance(text, str) and text.strip().endswith("%"):
        try:
            number = Decimal(text.strip()[:-1].strip())
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite() and number >= 0:
            return Fraction(number) / 100
    raise ValueError(f"{_show(text)} is not a percentage (examples: 75%, 99.9%)")


@dataclass(frozen=True)
class Level:
    """A point on a clock: a share of the budget plus a fixed amount of counted time."""

    share: Fraction
    offset: timedelta
    text: str
    # ``14.4x``: an escalation level reached when the target's burn-rate level of that factor
    # fires (docs/RULES.md, "Burn-rate alerts"); share and offset are then unused
    burn: Fraction | None = None

    def amount(self, budget: timedelta) -> timedelta:
        return _scale(budget, self.share) + self.offset


@dataclass(frozen=True)
class DeadlineGoal:
    """A duration target's goal that is a deadline: the close of the ``days``-th business
    day of the target's calendar after the day a cycle starts (``{end_of: business_day,
    days: N}``), or the instant the fact that starts the cycle posts in its data field
    ``due`` (``{due: FIELD}``). Each cycle's budget is the service time from its start to
    that deadline, so levels are shares of the time from start to deadline (docs/RULES.md,
    Deadline goals)."""

    days: int               # end_of: business_day; 0 with due
    text: str
    due: str | None = None  # the data field the start fact posts its deadline in


_BURN_LEVEL = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*x\s*$")
_LEVEL = re.compile(r"^\s*([0-9.]+\s*%)\s*(?:([+-])\s*(\S+))?\s*$")


def parse_level(text: object) -> Level:
    """``75%``, ``100% + 2h``, ``100% - 30m``, a plain duration ``30m``, or a burn-rate
    factor ``14.4x``."""
    if isinstance(text, str):
        burn = _BURN_LEVEL.match(text)
        if burn and Fraction(burn.group(1)) > 0:
            return Level(Fraction(0), timedelta(0), f"{burn.group(1)}x", Fraction(burn.group(1)))
        match = _LEVEL.match(text)
        if match:
            share = parse_percent(match.group(1).replace(" ", ""))
            offset = parse_duration(match.group(3)) if match.group(3) else timedelta(0)
            if match.group(2) == "-":
                offset = -offset
            return Level(share, offset, _normal_level(text))
        try:
            return Level(Fraction(0), parse_duration(text), text.strip())
        except ValueError:
            pass
    raise ValueError(f"{_show(text)} is not a level (examples: 75%, 100%, 100% + 2h, 30m, 14.4x)")


def _normal_level(text: str) -> str:
    return re.sub(r"\s*([+-])\s*", r" \1 ", text.strip())


def _scale(value: timedelta, share: Fraction) -> timedelta:
    micros = Fraction(value // timedelta(microseconds=1)) * share
    return timedelta(microseconds=round(micros))


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def parse_days(text: object) -> list[int]:
    """``mon-fri``, ``sat``, ``mon,wed,fri`` or ``sat-sun`` → weekday numbers (Mon = 0)."""
    days: list[int] = []
    for part in str(text).lower().replace(" ", "").split(","):
        ends = part.split("-")
        if len(ends) > 2 or any(e not in DAY_NAMES for e in ends):
            raise ValueError(f"{_show(text)} is not a day or range of days (examples: mon-fri, sat, mon,wed)")
        first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
        if last < first:
            raise ValueError(f"{_show(text)}: a range of days runs forward (mon-fri, not fri-mon)")
        days.extend(range(first, last + 1))
    return days


def parse_spans(text: object) -> list[tuple[int, int]]:
    """``08:00-18:00`` or ``08:00-12:00, 13:00-17:00`` → minutes since midnight, end ≤ 1440."""
    items = text if isinstance(text, list) else str(text).split(",")
    spans = []
    for item in items:
        match = _SPAN.match(str(item).strip())
        if not match:
            raise ValueError(f"{_show(item)} is not a span of hours (examples: 08:00-18:00, 00:00-24:00)")
        h1, m1, h2, m2 = map(int, match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or start >= 1440 or end > 1440 or end <= start:
            raise ValueError(f"{_show(item)}: hours run forward within one day, from 00:00 up to 24:00")
        spans.append((start, end))
    spans.sort()
    for (_, end), (start, _) in pairwise(spans):
        if start < end:
            raise ValueError(f"{_show(text)}: spans overlap")
    return spans


def parse_week(hours: Mapping[str, object]) -> dict[int, list[tuple[int, int]]]:
    """A ``hours`` mapping of a Calendar → weekday → sorted spans in minutes."""
    week: dict[int, list[tuple[int, int]]] = {}
    for days, spans in hours.items():
        parsed = parse_spans(spans)
        for day in parse_days(days):
            if day in week:
                raise ValueError(f"{DAY_NAMES[day]} is given twice")
            week[day] = parsed
    return week


def _canonical(text: object) -> datetime | None:
    """The form :func:`format_instant` writes for whole seconds (``2026-11-02T09:11:15Z``),
    read at once; None for any other form (or an impossible date), which the full
    parsers read. The engine reads this form on every fact, so it costs what Python's own
    ISO parser costs: the slice checks the separators (``--T::Z``), that parser the digits,
    and together they admit nothing RFC 3339 does not."""
    if type(text) is str and len(text) == 20 and text[4:20:3] == "--T::Z":
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None
    return None


def parse_instant(text: object) -> datetime:
    """An instant with an offset (``2026-11-02T09:00:00Z``) as an aware UTC datetime: RFC
    3339, or another ISO 8601 form with an offset, or a datetime (for values people type,
    YAML loads and the store keeps; facts posted are held to :func:`parse_rfc3339`)."""
    value = _canonical(text)
    if value is not None:
        return value
    if isinstance(text, datetime):
        value = text
    else:
        try:
            value = datetime.fromisoformat(str(text).strip().replace("z", "Z"))
        except ValueError:
            raise ValueError(f"{_show(text)} is not an RFC 3339 time (example: 2026-11-02T09:00:00Z)") from None
    if value.tzinfo is None:
        raise ValueError(f"{_show(text)} has no UTC offset (add Z or +01:00)")
    return _in_utc(value, text)


def _in_utc(value: datetime, text: object) -> datetime:
    """``value`` in UTC; a ValueError if that falls outside the years 1 to 9999."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{_show(text)} is outside the times that can be held (years 0001 to 9999 "
                         "in UTC)") from None


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
                      r"(?:([Zz])|([+-])([01]\d|2[0-3]):([0-5]\d))", re.ASCII)   # RFC 3339's digits are ASCII


def parse_rfc3339(text: object) -> datetime:
    """RFC 3339 ``date-time`` exactly (§5.6: ``T``, seconds, ``Z`` or a ``±hh:mm`` offset;
    no week dates, no basic format, no space), as an aware UTC datetime. A leap second
    (``23:59:60``) is read as the instant after ``23:59:59`` (RFC 3339 §5.7 allows it;
    Python's datetime has no 60th second). Fractions beyond microseconds are cut."""
    value = _canonical(text)
    if value is not None:
        return value
    if isinstance(text, datetime):
        return parse_instant(text)
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if not match:
        if isinstance(text, str) and re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", text, re.ASCII):
            raise ValueError(f"{_show(text)} has no UTC offset (add Z or +01:00)")
        raise ValueError(f"{_show(text)} is not an RFC 3339 time (example: 2026-11-02T09:00:00Z)")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    leap = second == "60"
    try:
        offset = UTC if zulu else timezone((1 if sign == "+" else -1)
                                                    * timedelta(hours=int(off_h), minutes=int(off_m)))
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), 59 if leap else int(second),
                         int((fraction or "0")[:6].ljust(6, "0")), tzinfo=offset)
    except ValueError as err:
        raise ValueError(f"{_show(text)} is not a valid time: {err}") from None
    if leap:
        shift = 0 if zulu else (1 if sign == "+" else -1) * (int(off_h) * 60 + int(off_m))
        if (int(hour) * 60 + int(minute) - shift) % 1440 != 23 * 60 + 59:       # RFC 3339 §5.7
            raise ValueError(f"{_show(text)}: a leap second is 23:59:60 UTC")
        if value.replace(tzinfo=None, microsecond=0) == datetime.max.replace(microsecond=0):
            raise ValueError(f"{_show(text)} is outside the times that can be held (years 0001 to 9999 in UTC)")
        value += timedelta(seconds=1)
    return _in_utc(value, text)


def parse_date(text: object) -> date:
    if isinstance(text, date) and not isinstance(text, datetime):
        return text
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{_show(text)} is not a date (example: 2026-01-01)") from None


def format_instant(value: datetime) -> str:
    """UTC, seconds precision unless there are fractions: ``2026-11-02T09:11:15Z``."""
    if value.tzinfo is not UTC:                            # (the engine's instants are UTC already)
        value = value.astimezone(UTC)
    if value.year < 1000:                                  # isoformat pads the year; keep the text as it was
        text = f"{value.year:04d}-" + value.strftime("%m-%dT%H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond:06d}".rstrip("0")
        return text + "Z"
    text = value.isoformat()[:-6]                          # drop "+00:00": 3x faster than strftime
    return (text.rstrip("0") if value.microsecond else text) + "Z"


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def report_months(period: str) -> list[str]:
    """The months of a report's period (schemas.strings.PERIODS), oldest first: ``2026-11``
    is one month, ``2026-09..2026-11`` three. ValueError if it is neither, if the range ends
    before it starts, or spans more than ``MAX_MONTHS``."""
    if not isinstance(period, str) or re.fullmatch(PERIODS, period) is None:
        raise ValueError(f"{_show(period)} is not a month YYYY-MM or a range YYYY-MM..YYYY-MM")
    first, _, last = period.partition("..")
    last = last or first
    start = int(first[:4]) * 12 + int(first[5:]) - 1
    end = int(last[:4]) * 12 + int(last[5:]) - 1
    if end < start:
        raise ValueError(f"{period}: a range's last month comes before its first")
    if end - start + 1 > MAX_MONTHS:
        raise ValueError(f"{period} spans {end - start + 1} months; at most {MAX_MONTHS}")
    return [f"{n // 12:04d}-{n % 12 + 1:02d}" for n in range(start, end + 1)]
