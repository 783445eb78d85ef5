"""Deadline goals' calendar arithmetic: the close of the N-th business day after a start
(engine.lang.calendar.ServiceCalendar.business_day_end), by hand-checked examples and by
properties against an oracle built from counted service time alone, in three zones and
around their DST changes."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.lang.calendar import ServiceCalendar
from schemas.values import parse_week
from tests.support.ruletexts import DESK_AGREEMENT

LONDON, NEW_YORK, SYDNEY = "Europe/London", "America/New_York", "Australia/Sydney"
US = timedelta(microseconds=1)


def calendar(zone: str, hours: dict, country=None, subdivision=None, dates=()) -> ServiceCalendar:
    return ServiceCalendar("test", zone, parse_week(hours), country, subdivision, dates)


def at(zone: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(zone)).astimezone(UTC)


UK_OFFICE = calendar(LONDON, {"mon-fri": "09:00-17:30"}, "GB", "ENG", [date(2026, 12, 24)])
NY_NIGHTS = calendar(NEW_YORK, {"mon-sun": "00:00-02:00, 22:00-24:00"}, "US", "NY")
SYDNEY_DESK = calendar(SYDNEY, {"mon-fri": "07:00-19:00", "sun": "01:30-03:30"}, "AU", "NSW")
LONDON_SUNDAYS = calendar(LONDON, {"sun": "00:00-24:00", "wed": "01:30-03:00"})
ALWAYS = ServiceCalendar.always()
CALENDARS = [UK_OFFICE, NY_NIGHTS, SYDNEY_DESK, LONDON_SUNDAYS, ALWAYS]


# -- hand-checked examples ---------------------------------------------------------------

@pytest.mark.parametrize("cal, start, days, close", [
    # Monday 2 November 2026, 10:00 GMT: the next business day is Tuesday, closing 17:30
    (UK_OFFICE, at(LONDON, 2026, 11, 2, 10), 1, at(LONDON, 2026, 11, 3, 17, 30)),
    # after Monday's close it is still Tuesday: the day counts, not the hour
    (UK_OFFICE, at(LONDON, 2026, 11, 2, 20), 1, at(LONDON, 2026, 11, 3, 17, 30)),
    # Friday 6 November: over the weekend to Monday 9th; two days: Tuesday 10th
    (UK_OFFICE, at(LONDON, 2026, 11, 6, 11), 1, at(LONDON, 2026, 11, 9, 17, 30)),
    (UK_OFFICE, at(LONDON, 2026, 11, 6, 11), 2, at(LONDON, 2026, 11, 10, 17, 30)),
    # Saturday: the next business day is Monday
    (UK_OFFICE, at(LONDON, 2026, 11, 7, 11), 1, at(LONDON, 2026, 11, 9, 17, 30)),
    # Wednesday 23 December 2026: the 24th is closed (extra date), 25th and 28th bank
    # holidays (Christmas; Boxing Day on a Saturday, substitute Monday 28th): Tuesday 29th
    (UK_OFFICE, at(LONDON, 2026, 12, 23, 9), 1, at(LONDON, 2026, 12, 29, 17, 30)),
    # Friday 23 October 2026 BST, over the clocks going back (Sunday 25th): Monday 17:30 GMT
    (UK_OFFICE, at(LONDON, 2026, 10, 23, 12), 1, datetime(2026, 10, 26, 17, 30, tzinfo=UTC)),
    # 24x7: every day is a business day, closing at midnight UTC
    (ALWAYS, datetime(2026, 11, 2, 10, tzinfo=UTC), 1, datetime(2026, 11, 4, tzinfo=UTC)),
])
def test_the_close_of_the_nth_business_day_after_the_start(cal, start, days, close):
    assert cal.business_day_end(start, days) == close


def test_days_count_from_one_and_a_calendar_without_hours_has_no_business_day():
    with pytest.raises(ValueError, match="from 1; got 0"):
        UK_OFFICE.business_day_end(at(LONDON, 2026, 11, 2, 10), 0)
    with pytest.raises(ValueError, match="no service hours"):
        calendar(LONDON, {}).business_day_end(at(LONDON, 2026, 11, 2, 10), 1)


# -- properties ---------------------------------------------------------------------------

TRANSITIONS = [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC),
               datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
               datetime(2026, 4, 4, 16, tzinfo=UTC), datetime(2026, 10, 3, 16, tzinfo=UTC)]
near_change = st.builds(lambda t, d: t + d, st.sampled_from(TRANSITIONS),
                        st.timedeltas(-timedelta(days=4), timedelta(days=4)))
instants = st.one_of(near_change, st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31),
                                               timezones=st.just(UTC)))
PROPERTY = settings(max_examples=200, deadline=None)


def local_day(cal: ServiceCalendar, day: date) -> tuple[datetime, datetime]:
    return (datetime.combine(day, time(), cal.zone).astimezone(UTC),
            datetime.combine(day + timedelta(days=1), time(), cal.zone).astimezone(UTC))


def oracle(cal: ServiceCalendar, start: datetime, days: int) -> datetime:
    """The same close from counted service time alone: walk local dates after the start's,
    keep those with any service time, and take the end of the last open span of the
    ``days``-th."""
    day = start.astimezone(cal.zone).date()
    while True:
        day += timedelta(days=1)
        first, last = local_day(cal, day)
        spans = list(cal.open_spans(first, last))
        if spans:
            days -= 1
            if days == 0:
                return spans[-1][1]


@PROPERTY
@given(st.sampled_from(CALENDARS), instants, st.integers(1, 12))
def test_the_close_is_that_of_the_nth_day_with_service_hours(cal, start, days):
    assert cal.business_day_end(start, days) == oracle(cal, start, days)


@PROPERTY
@given(st.sampled_from(CALENDARS), instants, st.integers(1, 12))
def test_a_clock_counting_from_the_start_runs_out_exactly_at_the_close(cal, start, days):
    """The budget of a deadline goal is the service time from the start to the close; a
    clock that never pauses reaches it at the close itself, not before, not after."""
    close = cal.business_day_end(start, days)
    budget = cal.counted(start, close)
    assert close > start and budget > timedelta(0)
    assert cal.instant_after(start, budget) == close
    assert cal.counted(start, close - US) < budget


@PROPERTY
@given(st.sampled_from(CALENDARS), instants, st.integers(1, 12))
def test_one_more_day_closes_later_and_the_start_hour_does_not_matter(cal, start, days):
    close = cal.business_day_end(start, days)
    assert cal.business_day_end(start, days + 1) > close
    midnight = datetime.combine(start.astimezone(cal.zone).date(), time(), cal.zone).astimezone(UTC)
    assert cal.business_day_end(max(midnight, start - timedelta(hours=1)), days) == close


# -- the rule language ------------------------------------------------------------------------

TARGET = DESK_AGREEMENT + """\
  - id: access
    clock:
      applies_to: {type: request.opened}
      stop: request.resolved
      calendar: office
    goal: GOAL
"""


@pytest.mark.parametrize("goal, expected", [
    ("{end_of: week}", "r.yaml:19:20: end_of: 'week' is not one of: business_day"),
    ("{end_of: business_day, days: 0}", "r.yaml:19:40: days: must be greater than or equal to 1 and less than "
                                        "or equal to 366."),
    ("{end_of: business_day, days: one}", "r.yaml:19:40: days: not a valid integer."),
    ("{end_of: business_day, hours: 4}", "r.yaml:19:34: unknown field 'hours'"),
    ("{end_of: business_day, due: due_at}", "r.yaml:19:20: end_of: give end_of (with days) or due, one of them"),
    ("{due: due_at, days: 2}", "r.yaml:19:31: days: days counts business days of end_of; a due deadline is "
                               "posted whole"),
    ("{due: 'due at'}", "r.yaml:19:17: due: 'due at' is not a data field name (e.g. due_at)"),
    ("{}", "r.yaml:19:11: due: give end_of (with days) or due, one of them"),
])
def test_a_wrong_deadline_is_an_error_at_its_place(goal, expected):
    from engine.lang.errors import RuleSetError
    from engine.lang.loader import load_texts
    with pytest.raises(RuleSetError) as caught:
        load_texts({"r.yaml": TARGET.replace("GOAL", goal)})
    assert [str(p) for p in caught.value.problems] == [expected]


def test_slm_docs_says_the_deadline_in_words():
    from click.testing import CliRunner

    from cli.main import main
    from tests.support import RULES
    out = CliRunner().invoke(main, ["docs", "service-desk", "--rules", str(RULES), "--agreement",
                                    "sla-service-desk"], catch_exceptions=False).output
    assert "**Access requests are resolved by the end of the next business day, counted in business hours" in out
    assert "- A warning is raised at 50% of the time from the start to the deadline." in out


def test_a_posted_deadline_must_be_a_time_field_the_catalogue_declares():
    from engine.lang.errors import RuleSetError
    from engine.lang.loader import load_texts
    catalogue = """
---
kind: Facts
id: facts
types:
  request.opened: {data: {due_at: string}}
  request.resolved: {}
"""
    with pytest.raises(RuleSetError) as caught:
        load_texts({"r.yaml": TARGET.replace("GOAL", "{due: due_at}") + catalogue})
    assert [str(p) for p in caught.value.problems] == [
        "r.yaml:19:17: due: the catalogue's request.opened facts have no time field 'due_at' to post the "
        "deadline in (declare it {type: time, required: true})"]
    fine = load_texts({"r.yaml": TARGET.replace("GOAL", "{due: due_at}")
                       + catalogue.replace("due_at: string", "due_at: {type: time, required: true}")})
    assert fine.targets["access"].goal.due == "due_at"
