"""The patterns the API document states (schemas/strings.py) take exactly what the server
takes: a string matches the pattern (and the format beside it) if and only if the check
behind the parameter accepts it, as far as a pattern can say."""
from __future__ import annotations

import re

import jsonschema_rs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from schemas import strings
from schemas.api import IngestArgs, ReportArgs
from schemas.facts import FactTime
from schemas.values import parse_rfc3339

DATE_TIME = jsonschema_rs.validator_for({"type": "string", "format": "date-time"}, validate_formats=True)
UNREPRESENTABLE = "is outside the times that can be held"


def _taken(schema, **query) -> bool:
    try:
        schema().load(query)
    except ValidationError:
        return False
    return True


@settings(max_examples=500)
@given(st.text(alphabet="0123456789smhdwSMHDWPpTt \n", max_size=9))
@example("30s")
@example("031s")
@example("0m30s")
@example("PT30S")
@example("pt0h5s")
@example("P0DT")
@example("PT")
@example("5s\n")
@example(" 5s")
def test_a_wait_matches_the_pattern_if_and_only_if_it_is_taken(text):
    assert strings.matches(strings.WAIT, text) == _taken(IngestArgs, wait=text)


@settings(max_examples=300)
@given(st.from_regex(r"[0-9]{4}-[0-9]{2}\n?", fullmatch=True))
@example("1970-01")
@example("9998-12")
@example("9999-01")
@example("1969-12")
@example("2026-11\n")
def test_a_period_matches_the_pattern_if_and_only_if_it_is_taken(text):
    assert strings.matches(strings.PERIOD, text) == _taken(ReportArgs, service="email", period=text)


LOOSE_TIME = (r"[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,11})?"
              r"([Zz]|[+-][0-3][0-9]:[0-6][0-9])?\n?")


@settings(max_examples=500)
@given(st.from_regex(LOOSE_TIME, fullmatch=True))
@example("2016-12-31T23:59:60Z")
@example("2017-01-01T00:59:60+01:00")
@example("2016-12-31T23:59:60+01:00")
@example("2026-11-05T04:00:00.123456789+01:00")
@example("2026-11-05T04:00:00.1234567890Z")
@example("2026-11-05T04:00:00+00:60")
@example("2026-11-05T04:00:00Z\n")
@example("0000-01-01T00:00:00Z")
@example("0001-01-01T00:00:00+01:00")
@example("9999-12-31T23:59:59-01:00")
def test_an_instant_matches_pattern_and_format_if_and_only_if_it_parses(text):
    """Except an instant outside the years 1 to 9999 once its offset is applied, which no
    pattern can tell (tests/support/fuzz_hooks.py)."""
    stated = strings.matches(strings.INSTANT, text) and DATE_TIME.is_valid(text)
    try:
        parse_rfc3339(text)
    except ValueError as err:
        assert not stated or UNREPRESENTABLE in str(err), (text, str(err))
    else:
        assert stated, text


@pytest.mark.parametrize("pattern, text, whole", [
    (strings.TYPE_NAME, "incident.opened", True),
    (strings.TYPE_NAME, "incident.opened\n", False),
    (strings.POSTED_TYPE, "decision.breach", False),
    (strings.POSTED_TYPE, "decisions.x", True),
    (strings.CURSOR, "12\n", False),
    (strings.NO_NUL, "a\x00b", False),
])
def test_patterns_match_the_whole_text_as_json_schema_reads_them(pattern, text, whole):
    assert strings.matches(pattern, text) == whole
    assert jsonschema_rs.validator_for({"type": "string", "pattern": pattern}).is_valid(text) == whole


@settings(max_examples=500)
@given(st.sampled_from(["0001", "1969", "1970", "2026", "9998", "9999"]), st.from_regex(LOOSE_TIME, fullmatch=True))
@example("1969", "1969-12-31T23:30:00-01:00")
@example("1970", "1970-01-01T00:30:00+01:00")
@example("9999", "9999-01-01T00:30:00+01:00")
@example("9999", "9999-01-01T00:00:01Z")
@example("9998", "9998-12-31T23:30:00-01:00")
def test_a_fact_time_matches_pattern_and_format_if_it_is_taken(year, text):
    """A fact's time the pattern and format take is refused only for its instant, outside
    1970-01-01T00:00:00Z .. 9999-01-01T00:00:00Z (or beyond the years 1 to 9999)."""
    text = year + text[4:]
    stated = strings.matches(strings.FACT_INSTANT, text) and DATE_TIME.is_valid(text)
    try:
        FactTime().deserialize(text)
    except ValidationError as err:
        assert not stated or re.search("outside the (supported range|times that can be held)", str(err)), text
    else:
        assert stated, text
