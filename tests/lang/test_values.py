"""The small value languages of rule files: durations, percentages, levels, hours."""
from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.values import (
    format_duration,
    format_remaining,
    format_whole_duration,
    parse_days,
    parse_duration,
    parse_instant,
    parse_level,
    parse_percent,
    parse_spans,
)


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("15m", 900), ("4h", 14400), ("1h30m", 5400), ("2d", 172800), ("PT15M", 900),
    ("P2D", 172800), ("P1DT2H", 93600), ("1w", 604800), ("1h 30m", 5400),
])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["4 hours", "", "15", "m", "PT", "1.5h", "h1", "-5m"])
def test_bad_durations_say_what_was_expected(text):
    with pytest.raises(ValueError, match="duration|unit"):
        parse_duration(text)


def test_a_bare_number_asks_for_a_unit():
    with pytest.raises(ValueError, match='give a unit, e.g. "15m"'):
        parse_duration(15)


@given(st.integers(min_value=0, max_value=10 ** 9))
def test_format_round_trips(seconds):
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def test_format_duration_shapes():
    assert format_duration(timedelta(minutes=11, seconds=15)) == "11m15s"
    assert format_duration(timedelta(0)) == "0s"
    assert format_duration(timedelta(days=2, hours=1)) == "2d1h"
    assert format_duration(timedelta(milliseconds=1500)) == "1.5s"
    assert format_duration(-timedelta(minutes=5)) == "-5m"


def test_percentages_are_exact():
    assert parse_percent("99.9%") == Fraction(999, 1000)
    assert parse_percent("75%") == Fraction(3, 4)
    for bad in ("75", "abc%", "-5%", 75):
        with pytest.raises(ValueError, match="percentage"):
            parse_percent(bad)


def test_levels():
    level = parse_level("100% + 2h")
    assert level.amount(timedelta(hours=4)) == timedelta(hours=6)
    assert level.text == "100% + 2h"
    assert parse_level("75%").amount(timedelta(minutes=15)) == timedelta(minutes=11, seconds=15)
    assert parse_level("100%-30m").amount(timedelta(hours=1)) == timedelta(minutes=30)
    assert parse_level("30m").amount(timedelta(hours=8)) == timedelta(minutes=30)
    with pytest.raises(ValueError, match="not a level"):
        parse_level("soon")


def test_days_and_spans():
    assert parse_days("mon-fri") == [0, 1, 2, 3, 4]
    assert parse_days("sat,sun") == [5, 6]
    assert parse_spans("08:00-12:00, 13:00-17:30") == [(480, 720), (780, 1050)]
    assert parse_spans("00:00-24:00") == [(0, 1440)]
    for bad in ("18:00-08:00", "8-18", "08:00-25:00"):
        with pytest.raises(ValueError):
            parse_spans(bad)
    with pytest.raises(ValueError, match="runs forward"):
        parse_days("fri-mon")
    with pytest.raises(ValueError, match="overlap"):
        parse_spans("08:00-12:00, 11:00-13:00")


def test_instants_need_an_offset():
    assert parse_instant("2026-11-02T10:00:00+01:00") == parse_instant("2026-11-02T09:00:00Z")
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_instant("2026-11-02T09:00:00")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_instant("yesterday")


@given(budget=st.integers(0, 10 ** 7), counted=st.integers(0, 2 * 10 ** 13))
def test_counted_and_remaining_add_up_to_the_budget_in_whole_seconds(budget, counted):
    """What a clock shows: both rounded down to whole seconds, they sum to the budget
    while it lasts (``20m`` + ``3h40m`` = ``4h``, not ``3h39m59s`` for 20m0.4s counted)."""
    budget_td, counted_td = timedelta(seconds=budget), timedelta(microseconds=counted)
    shown = parse_duration(format_whole_duration(counted_td))
    left = parse_duration(format_remaining(budget_td, counted_td))
    assert left == max(budget_td - shown, timedelta(0))
    assert shown <= counted_td < shown + timedelta(seconds=1)
    if shown <= budget_td:
        assert shown + left == budget_td
