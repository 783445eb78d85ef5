"""Follow the sun, ``calendar: {any_of: [...]}``: time counts whenever any member calendar
is open, overlaps once. Properties against a minute-by-minute oracle, around the DST
changes of three zones; the rule language's errors at file:line."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.lang.calendar import ServiceCalendar
from engine.lang.errors import RuleSetError
from engine.lang.followsun import AnyOfCalendar
from engine.lang.loader import load_texts
from schemas.values import parse_week

MINUTE, US = timedelta(minutes=1), timedelta(microseconds=1)


def calendar(name: str, zone: str, hours: dict, country=None, subdivision=None) -> ServiceCalendar:
    return ServiceCalendar(name, zone, parse_week(hours), country, subdivision)


LONDON = calendar("london-office", "Europe/London", {"mon-fri": "08:00-18:00"}, "GB", "ENG")
NEW_YORK = calendar("new-york-office", "America/New_York", {"mon-fri": "08:00-18:00"}, "US", "NY")
SYDNEY = calendar("sydney-office", "Australia/Sydney", {"mon-fri": "08:00-18:00"}, "AU", "NSW")
SUN = AnyOfCalendar([LONDON, NEW_YORK, SYDNEY])
TWO = AnyOfCalendar([LONDON, NEW_YORK])

TRANSITIONS = [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC),
               datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
               datetime(2026, 4, 4, 16, tzinfo=UTC), datetime(2026, 10, 3, 16, tzinfo=UTC)]
minutes = st.integers(-4 * 1440, 4 * 1440).map(lambda m: timedelta(minutes=m))
instants = st.builds(lambda t, d: t + d, st.sampled_from(TRANSITIONS), minutes)
calendars = st.sampled_from([SUN, TWO])
PROPERTY = settings(max_examples=40, deadline=None)


def example_monday() -> datetime:
    return datetime(2026, 11, 9, tzinfo=UTC)     # Monday 9 November 2026: GMT, EST, AEDT


def test_the_offices_hand_over_and_overlaps_count_once():
    day = example_monday()
    # London 08-18 UTC, New York 13-23 UTC, Sydney 21-07 UTC (AEDT, UTC+11): one long day
    assert LONDON.counted(day + timedelta(hours=8), day + timedelta(hours=24)) == timedelta(hours=10)
    assert TWO.counted(day, day + timedelta(days=1)) == timedelta(hours=15)          # 08:00-23:00
    # the whole Monday: Sydney's Monday 00:00-07:00 UTC (its Monday 11:00-18:00), then 08:00-24:00
    assert SUN.counted(day, day + timedelta(days=1)) == timedelta(hours=7 + 16)
    assert SUN.instant_after(day + timedelta(hours=7), timedelta(hours=2)) == day + timedelta(hours=10)


@PROPERTY
@given(calendars, instants, st.integers(1, 48 * 60).map(lambda m: timedelta(minutes=m)))
def test_counted_is_the_minutes_when_any_office_is_open(cal, start, length):
    end = start + length
    oracle = sum((MINUTE for n in range(length // MINUTE)
                  if any(m.is_open(start + n * MINUTE) for m in cal.members)), timedelta(0))
    assert cal.counted(start, end) == oracle
    assert max(m.counted(start, end) for m in cal.members) <= oracle <= sum(
        (m.counted(start, end) for m in cal.members), timedelta(0))


@PROPERTY
@given(calendars, instants, instants, instants)
def test_counted_adds_up_over_split_intervals(cal, x, y, z):
    a, b, c = sorted((x, y, z))
    assert cal.counted(a, c) == cal.counted(a, b) + cal.counted(b, c)


@PROPERTY
@given(calendars, instants, st.integers(0, 100 * 60).map(lambda m: timedelta(minutes=m)))
def test_instant_after_is_the_earliest_instant_reaching_the_amount(cal, start, amount):
    end = cal.instant_after(start, amount)
    assert end >= start and cal.counted(start, end) == amount
    if amount:
        assert cal.counted(start, end - US) < amount


@PROPERTY
@given(calendars, instants, st.integers(1, 5))
def test_a_deadline_on_the_union_runs_out_exactly_at_its_close(cal, start, days):
    close = cal.business_day_end(start, days)
    assert cal.instant_after(start, cal.counted(start, close)) == close


RULES = """\
kind: Calendar
id: london-office
timezone: Europe/London
hours: {mon-fri: "08:00-18:00"}
---
kind: Calendar
id: sydney-office
timezone: Australia/Sydney
hours: {mon-fri: "08:00-18:00"}
---
kind: Service
id: desk
---
kind: Agreement
id: sla-desk
type: SLA
service: desk
targets:
  - id: p1
    clock:
      applies_to: {type: incident.opened}
      stop: incident.resolved
      calendar: CAL
    goal: 4h
"""


@pytest.mark.parametrize("cal, expected", [
    ("{any_of: [london-office, sydney-ofice]}",
     "r.yaml:23:42: calendar: unknown calendar 'sydney-ofice' (known: sydney-office, london-office, 24x7)"),
    ("{any_of: [london-office]}", "r.yaml:23:26: any_of: a list of two calendars or more"),
    ("{any_of: [london-office, london-office]}", "r.yaml:23:26: any_of: a calendar is named twice"),
    ("{all_of: [london-office, sydney-office]}",
     "r.yaml:23:17: calendar: expected a calendar's name, {any_of: [calendar, calendar, …]} or {by: FIELD, "
     "map: {value: calendar, …}, default: calendar} (unknown: all_of)"),
])
def test_a_wrong_any_of_is_an_error_at_its_place(cal, expected):
    with pytest.raises(RuleSetError) as caught:
        load_texts({"r.yaml": RULES.replace("CAL", cal)})
    assert [str(p) for p in caught.value.problems] == [expected]


def test_a_target_counts_on_the_union():
    ruleset = load_texts({"r.yaml": RULES.replace("CAL", "{any_of: [london-office, sydney-office]}")})
    cal = ruleset.targets["p1"].calendar
    assert isinstance(cal, AnyOfCalendar) and [m.id for m in cal.members] == ["london-office", "sydney-office"]
    assert cal.timezone == "Europe/London"           # months and days are the first one's


@pytest.mark.parametrize("cal, expected", [
    ("{by: region, map: {emea: london-office, apac: sydney-ofice}, default: london-office}",
     "r.yaml:23:63: calendar: unknown calendar 'sydney-ofice' (known: sydney-office, london-office, 24x7)"),
    ("{by: region, map: {emea: london-office}, default: londn-office}",
     "r.yaml:23:67: calendar: unknown calendar 'londn-office' (known: london-office, sydney-office, 24x7)"),
    ("{by: region, map: {}, default: london-office}", "r.yaml:23:35: map: shorter than minimum length 1."),
    ("{by: 'the region', map: {emea: london-office}, default: london-office}",
     "r.yaml:23:22: by: 'the region' is not a data field name"),
    ("{by: region, map: {emea: london-office}}", "r.yaml:23:17: missing required field 'default'"),
])
def test_a_wrong_calendar_by_field_is_an_error_at_its_place(cal, expected):
    with pytest.raises(RuleSetError) as caught:
        load_texts({"r.yaml": RULES.replace("CAL", cal)})
    assert [str(p) for p in caught.value.problems] == [expected]


def test_only_a_clock_target_chooses_its_calendar_per_ticket():
    text = RULES.replace("""    clock:
      applies_to: {type: incident.opened}
      stop: incident.resolved
      calendar: CAL
    goal: 4h""", """    availability:
      down: {type: alert.firing}
      up: {type: alert.resolved}
      calendar: {by: region, map: {emea: london-office}, default: london-office}
    goal: 99%""")
    with pytest.raises(RuleSetError) as caught:
        load_texts({"r.yaml": text})
    assert [str(p) for p in caught.value.problems] == [
        "r.yaml:23:22: calendar: by chooses a ticket's calendar, and only a clock target counts per ticket "
        "(give a window target one calendar)"]


def test_slm_docs_says_which_calendar_each_ticket_counts_on():
    from click.testing import CliRunner

    from cli.main import main
    from tests.support import ROOT
    out = CliRunner().invoke(main, ["docs", "global-desk", "--rules", str(ROOT / "fixtures" / "rulesets" /
                                                                          "follow-the-sun")]).output
    assert ("**P2 incidents are resolved within 8 hours, counted in the hours of the calendar its region names "
            "(emea: london-office; amer: new-york-office; apac: sydney-office; otherwise london-office), from the "
            "fact that names it.**") in out
    assert "counted in whichever of these is open: london-office (business hours Mon–Fri 08:00–18:00" in out
