"""The shapes of the strings the API takes, written once for the checks and the API document.

Each pattern is in the regular-expression dialect that Python's ``re`` and ECMA-262 (the
one JSON Schema's ``pattern`` uses) read alike, and is always matched whole: ECMA's ``$``
is the end of the text, where Python's ``re.match`` would also let a trailing newline
through. :class:`Matches` checks a field that way and hands the pattern to apispec, so
the document says exactly what the server refuses.
"""
from __future__ import annotations

import re

from marshmallow import ValidationError, validate

# A string the stores can keep: PostgreSQL refuses NUL. (Lone surrogates are refused too,
# but a JSON Schema regex cannot name them, and a query string cannot carry them.)
NO_NUL = r"^[^\u0000]*$"

# A fact type, dotted (``incident.opened``); a posted one is never the engine's own.
GLOB = r"^[^\u0000]*[^*\u0000][^\u0000]*$"       # a silence's matcher: not only ``*`` (that would match all)
REASON = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"   # free text that says something: not blank
DURATION = r"^(?=[0-9])([0-9]{1,6}w)?([0-9]{1,6}d)?([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$"
TYPE_NAME = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
POSTED_TYPE = r"^(?!decision\.|clock\.)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"

# A page's cursor: a row number, ASCII digits, within 64 bits.
CURSOR = r"^[0-9]{1,18}$"

# A report's month, YYYY-MM, within the years facts can have.
PERIOD = r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-(0[1-9]|1[0-2])$"
PERIOD_RANGE = "a month as YYYY-MM from 1970-01 to 9998-12 (the times facts can have)"
# A report's period: one month, or the months from one to another inclusive (``2026-09..2026-11``).
_MONTH = PERIOD[1:-1]
PERIODS = "^" + _MONTH + r"(\.\." + _MONTH + ")?$"
PERIODS_RANGE = PERIOD_RANGE + ", or months from one to another, YYYY-MM..YYYY-MM"
MAX_MONTHS = 60     # months one report may span: a report reads every decision of its months

# RFC 3339 ``date-time`` (section 5.6) as schemas.values.parse_rfc3339 reads it: ASCII digits,
# ``T``, seconds, at most nine digits of fraction, ``Z`` or an offset under 24 hours. A leap
# second (``:60``) is read too. The instant it names must lie in the years 1 to 9999 in
# UTC: a pattern cannot say so, and ``0001-01-01T00:00:00+01:00`` is refused (400).
_DAY = r"(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_CLOCK = r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
INSTANT = r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-" + _DAY + _CLOCK + "$"
# A fact's time: the same, within 1970-01-01T00:00:00Z .. 9999-01-01T00:00:00Z (schemas.facts:
# the engine keeps event times as epoch seconds). The pattern takes the days an offset can
# move into that range (1969-12-31, 9999-01-01); which of their instants lie inside it, it
# cannot say.
_FACT_DATE = r"(1969-12-31|(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-" + _DAY + "|9999-01-01)"
FACT_INSTANT = "^" + _FACT_DATE + _CLOCK + "$"

# ``?wait=`` on POST /v1/facts: a duration (schemas.values.parse_duration) of at most 30
# seconds, so every unit but seconds counts zero: ``5s``, ``0m30s``, ``PT5S``. The
# pattern is the whole of what is taken: no spaces, ASCII digits.
_SECONDS = r"0*([0-9]|[12][0-9]|30)"
WAIT = (r"^(?=[0-9])(0+w)?(0+d)?(0+h)?(0+m)?(" + _SECONDS + r"s)?$"
        r"|^[Pp](?=.*[0-9])(0+[Ww])?(0+[Dd])?([Tt](0+[Hh])?(0+[Mm])?(" + _SECONDS + r"[Ss])?)?$")
MAX_WAIT_SECONDS = 30

# Not a pattern: names the rules define. A field whose metadata carries this key takes one of
# them; api/document.py writes them into the document as an enum, per rule set (``services``,
# ``targets`` and ``kinds`` of every rule set put in force, as api/filters.py checks a
# listing's filters; ``services-in-force``: of the rules in force only; ``customers-in-force``: the
# customers its agreements name; ``targets-in-force``: the targets of the rules in force).
KNOWN = "x-slm-known"


def matches(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches the whole of ``text``, as JSON Schema's ``pattern`` would."""
    return re.fullmatch(pattern, text) is not None


class Matches(validate.Regexp):
    """marshmallow's ``Regexp`` matching the whole value, as JSON Schema's ``pattern`` with
    ``^…$`` does; apispec reads its ``regex`` into the document."""

    def __init__(self, pattern: str, error: str | None = None) -> None:
        super().__init__(pattern, error=error)
        self.whole = re.compile(pattern)

    def __call__(self, value):  # type: ignore[no-untyped-def]   # Regexp's overloads; a str here
        if not isinstance(value, str) or self.whole.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value
