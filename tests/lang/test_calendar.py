"""Service calendars: counted service time and the instants where budgets run out.

Expected values in the examples are worked out by hand (weekdays, offsets and bank
holidays of 2026 are noted beside them); the properties check the laws every clock relies
on, in three zones and around their DST changes.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.lang.calendar import ServiceCalendar
from schemas.values import parse_week

UTC = UTC
H = timedelta(hours=1)
US = timedelta(microseconds=1)
LONDON, NEW_YORK, SYDNEY = "Europe/London", "America/New_York", "Australia/Sydney"


def at(zone: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A local wall time as a UTC instant."""
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def local_day(zone: str, day: date) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    return (datetime.combine(day, time(), tz).astimezone(UTC),
            datetime.combine(day + timedelta(days=1), time(), tz).astimezone(UTC))


def calendar(zone: str, hours: dict, country=None, subdivision=None, dates=()) -> ServiceCalendar:
    return ServiceCalendar("test", zone, parse_week(hours), country, subdivision, dates)


UK_OFFICE = calendar(LONDON, {"mon-fri": "08:00-18:00", "sat": "09:00-12:30"}, "GB", "ENG",
                     [date(2026, 12, 24)])
UK_PLAIN = calendar(LONDON, {"mon-fri": "08:00-18:00", "sat": "09:00-12:30"})
UK_WEEKDAYS = calendar(LONDON, {"mon-fri": "08:00-18:00"}, "GB", "ENG")
UK_WEEKDAYS_PLAIN = calendar(LONDON, {"mon-fri": "08:00-18:00"})
NY_NIGHTS = calendar(NEW_YORK, {"mon-sun": "00:00-02:00, 22:00-24:00"}, "US", "NY")
SYDNEY_DESK = calendar(SYDNEY, {"mon-fri": "07:00-19:00", "sun": "01:30-03:30"}, "AU", "NSW")
LONDON_SUNDAYS = calendar(LONDON, {"sun": "00:00-24:00", "wed": "01:30-03:00"})
ALWAYS = ServiceCalendar.always()
CALENDARS = [UK_OFFICE, NY_NIGHTS, SYDNEY_DESK, LONDON_SUNDAYS, ALWAYS]


# -- hand-checked examples ---------------------------------------------------------------

def test_four_hours_from_friday_afternoon_run_out_monday_morning():
    # Fri 2026-01-16 16:00 GMT: 2h to 18:00, then Mon 19th 08:00 + 2h.
    friday = at(LONDON, 2026, 1, 16, 16)
    assert UK_WEEKDAYS.instant_after(friday, 4 * H) == utc(2026, 1, 19, 10)
    assert UK_WEEKDAYS.counted(friday, utc(2026, 1, 19, 10)) == 4 * H
    # with Saturday 09:00-12:30 hours the last 2h run out Saturday 11:00
    assert UK_OFFICE.instant_after(friday, 4 * H) == utc(2026, 1, 17, 11)


def test_a_bank_holiday_monday_pushes_the_deadline_to_tuesday():
    # Fri 2026-05-01 16:00 BST; Mon 4 May is the Early May bank holiday; Tue 10:00 BST = 09:00Z.
    friday = at(LONDON, 2026, 5, 1, 16)
    assert UK_WEEKDAYS.instant_after(friday, 4 * H) == utc(2026, 5, 5, 9)
    assert UK_WEEKDAYS_PLAIN.instant_after(friday, 4 * H) == utc(2026, 5, 4, 9)   # no holidays: Monday
    assert not UK_WEEKDAYS.is_open(at(LONDON, 2026, 5, 4, 12))
    assert UK_WEEKDAYS_PLAIN.is_open(at(LONDON, 2026, 5, 4, 12))


def test_extra_dates_close_a_day():
    week = parse_week({"mon-fri": "08:00-18:00"})
    closed_monday = ServiceCalendar("x", LONDON, week, dates=[date(2026, 1, 19)])
    assert closed_monday.instant_after(at(LONDON, 2026, 1, 16, 16), 4 * H) == utc(2026, 1, 20, 10)
    assert closed_monday.counted(at(LONDON, 2026, 1, 19), at(LONDON, 2026, 1, 20)) == timedelta(0)
    # dates may be given as text too, as in a rule file
    assert ServiceCalendar("x", LONDON, week, dates=["2026-01-19"]).counted(
        at(LONDON, 2026, 1, 19), at(LONDON, 2026, 1, 20)) == timedelta(0)


def test_christmas_week_in_the_uk_office():
    # Wed 23 Dec 16:00: 2h that day; Thu 24 closed (extra date), Fri 25 Christmas, Sat 26
    # Boxing Day, Mon 28 its substitute day; so Tue 29 08:00 + 2h (GMT = UTC).
    assert UK_OFFICE.instant_after(at(LONDON, 2026, 12, 23, 16), 4 * H) == utc(2026, 12, 29, 10)
    assert UK_PLAIN.instant_after(at(LONDON, 2026, 12, 23, 16), 4 * H) == utc(2026, 12, 24, 10)


def test_saturday_morning_hours():
    saturday = (at(LONDON, 2026, 1, 17), at(LONDON, 2026, 1, 18))
    assert UK_OFFICE.counted(*saturday) == timedelta(hours=3, minutes=30)
    assert UK_OFFICE.counted(at(LONDON, 2026, 1, 17, 10), at(LONDON, 2026, 1, 17, 11)) == H
    assert UK_OFFICE.counted(at(LONDON, 2026, 1, 18), at(LONDON, 2026, 1, 19)) == timedelta(0)  # Sunday


def test_a_whole_year_of_the_uk_office():
    # 2026 starts on a Thursday: 261 weekdays, 52 Saturdays. England's weekday bank
    # holidays: 1 Jan, 3 Apr, 6 Apr, 4 May, 25 May, 31 Aug, 25 Dec, 28 Dec (Boxing Day
    # substitute); Boxing Day itself is Saturday 26 Dec; 24 Dec is an extra closed date.
    # (261 - 8 - 1) × 10h + (52 - 1) × 3.5h = 2520h + 178.5h.
    year = (at(LONDON, 2026, 1, 1), at(LONDON, 2027, 1, 1))
    assert UK_OFFICE.counted(*year) == timedelta(hours=2698, minutes=30)
    assert UK_PLAIN.counted(*year) == timedelta(hours=2610 + 182)   # 261 × 10h + 52 × 3.5h


def test_a_deadline_across_the_spring_change():
    # Fri 27 Mar 16:00 GMT + 4h → Mon 30 Mar 10:00 BST = 09:00Z; 65h of wall time.
    friday = at(LONDON, 2026, 3, 27, 16)
    monday = UK_WEEKDAYS.instant_after(friday, 4 * H)
    assert monday == utc(2026, 3, 30, 9)
    assert monday - friday == 65 * H


@pytest.mark.parametrize("zone, day, hours", [
    (LONDON, date(2026, 3, 29), 23), (LONDON, date(2026, 10, 25), 25),
    (NEW_YORK, date(2026, 3, 8), 23), (NEW_YORK, date(2026, 11, 1), 25),
    (SYDNEY, date(2026, 10, 4), 23), (SYDNEY, date(2026, 4, 5), 25),
    (LONDON, date(2026, 3, 22), 24),
])
def test_a_whole_day_on_dst_change_days(zone, day, hours):
    # All these days are Sundays; one calendar only has Sundays (the day-by-day path),
    # the other every day of the week (plain subtraction).
    whole_day = local_day(zone, day)
    assert calendar(zone, {"sun": "00:00-24:00"}).counted(*whole_day) == hours * H
    assert calendar(zone, {"mon-sun": "00:00-24:00"}).counted(*whole_day) == hours * H
    saturday_to_monday = (whole_day[0] - 24 * H, whole_day[1] + 24 * H)
    assert calendar(zone, {"sun": "00:00-24:00"}).counted(*saturday_to_monday) == hours * H


@pytest.mark.parametrize("zone, day, hours, expected", [
    # Fall back: the wall clock shows 01:00-02:00 twice, so 00:00-02:00 lasts 3h.
    (LONDON, date(2026, 10, 25), "00:00-02:00", 3 * H),
    (NEW_YORK, date(2026, 11, 1), "00:00-02:00", 3 * H),
    (SYDNEY, date(2026, 4, 5), "01:30-03:30", 3 * H),        # 02:00-03:00 repeated there
    (LONDON, date(2026, 10, 25), "22:00-24:00", 2 * H),
    # Spring forward: London skips 01:00-02:00, New York and Sydney skip 02:00-03:00.
    (LONDON, date(2026, 3, 29), "00:00-02:00", 1 * H),
    (LONDON, date(2026, 3, 29), "01:00-02:00", 0 * H),       # wholly in the gap
    (LONDON, date(2026, 3, 29), "01:15-01:45", 0 * H),
    (LONDON, date(2026, 3, 29), "01:30-03:00", 1 * H),       # only 02:00-03:00 BST exists
    (NEW_YORK, date(2026, 3, 8), "00:00-02:00", 2 * H),
    (NEW_YORK, date(2026, 3, 8), "00:00-03:00", 2 * H),
    (SYDNEY, date(2026, 10, 4), "01:30-03:30", 1 * H),       # 01:30-02:00 and 03:00-03:30
])
def test_night_spans_on_dst_change_days(zone, day, hours, expected):
    nights = calendar(zone, {"sun": hours})
    start = at(zone, day.year, day.month, day.day)
    assert nights.counted(start, start + 48 * H) == expected


def test_the_spring_gap_in_detail():
    sundays = calendar(LONDON, {"sun": "00:00-24:00"})
    # 00:30 GMT + 1h of service: the clocks jump at 01:00Z, so 01:30Z = 02:30 BST.
    assert sundays.instant_after(utc(2026, 3, 29, 0, 30), H) == utc(2026, 3, 29, 1, 30)
    span = calendar(LONDON, {"sun": "01:30-03:00"})
    assert list(span.open_spans(utc(2026, 3, 28), utc(2026, 3, 30))) == [
        (utc(2026, 3, 29, 1), utc(2026, 3, 29, 2))]


def test_24x7_counts_wall_time():
    assert ALWAYS.id == "24x7" and ALWAYS.timezone == "UTC"
    assert ALWAYS.counted(at(LONDON, 2026, 3, 29), at(LONDON, 2026, 3, 30)) == 23 * H
    assert ALWAYS.counted(utc(2026, 1, 1), utc(2126, 1, 1)) == timedelta(days=36524)
    assert ALWAYS.counted(utc(2026, 1, 2), utc(2026, 1, 1)) == timedelta(0)
    assert ALWAYS.instant_after(utc(2026, 1, 1), timedelta(minutes=15)) == utc(2026, 1, 1, 0, 15)
    assert ALWAYS.is_open(utc(2026, 12, 25, 3))
    assert list(ALWAYS.open_spans(utc(2026, 1, 1), utc(2026, 1, 3))) == [(utc(2026, 1, 1), utc(2026, 1, 3))]


def test_instant_after_is_exact_to_the_microsecond():
    before_close = at(LONDON, 2026, 1, 16, 18) - US
    assert UK_WEEKDAYS.instant_after(before_close, 2 * US) == at(LONDON, 2026, 1, 19, 8) + US
    assert UK_WEEKDAYS.instant_after(before_close, US) == at(LONDON, 2026, 1, 16, 18)


def test_instant_after_zero_is_the_start_in_utc():
    start = datetime(2026, 1, 17, 12, tzinfo=ZoneInfo(LONDON))   # Saturday noon, closed
    assert UK_WEEKDAYS.instant_after(start, timedelta(0)) == start
    assert UK_WEEKDAYS.instant_after(start, timedelta(0)).tzinfo == UTC
    # from a closed time the first counted microsecond is at the next opening
    assert UK_WEEKDAYS.instant_after(start, US) == at(LONDON, 2026, 1, 19, 8) + US


def test_is_open_and_open_spans():
    assert UK_OFFICE.is_open(at(LONDON, 2026, 1, 16, 8))
    assert UK_OFFICE.is_open(at(LONDON, 2026, 1, 16, 18) - US)
    assert not UK_OFFICE.is_open(at(LONDON, 2026, 1, 16, 18))
    assert not UK_OFFICE.is_open(at(LONDON, 2026, 1, 18, 10))          # Sunday
    assert list(UK_OFFICE.open_spans(at(LONDON, 2026, 1, 16, 12), at(LONDON, 2026, 1, 19, 9))) == [
        (at(LONDON, 2026, 1, 16, 12), at(LONDON, 2026, 1, 16, 18)),
        (at(LONDON, 2026, 1, 17, 9), at(LONDON, 2026, 1, 17, 12, 30)),
        (at(LONDON, 2026, 1, 19, 8), at(LONDON, 2026, 1, 19, 9))]
    # adjacent spans merge, within a day and across midnight
    split = calendar(LONDON, {"mon-fri": "08:00-12:00, 12:00-18:00"})
    assert list(split.open_spans(utc(2026, 1, 12), utc(2026, 1, 13))) == [(utc(2026, 1, 12, 8), utc(2026, 1, 12, 18))]
    nights = calendar(NEW_YORK, {"mon-sun": "00:00-02:00, 22:00-24:00"})
    assert list(nights.open_spans(at(NEW_YORK, 2026, 1, 12, 12), at(NEW_YORK, 2026, 1, 13, 12))) == [
        (at(NEW_YORK, 2026, 1, 12, 22), at(NEW_YORK, 2026, 1, 13, 2))]


def test_bad_calendars_are_refused_with_a_clear_message():
    week = parse_week({"mon-fri": "08:00-18:00"})
    with pytest.raises(ValueError, match="no country 'XX'"):
        ServiceCalendar("x", LONDON, week, "XX")
    with pytest.raises(ValueError, match="no subdivision 'XYZ' of country 'GB'"):
        ServiceCalendar("x", LONDON, week, "GB", "XYZ")
    with pytest.raises(ValueError, match="needs a country"):
        ServiceCalendar("x", LONDON, week, None, "ENG")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        ServiceCalendar("x", "Mars/Olympus", week)


def test_a_calendar_without_hours_never_reaches_a_budget():
    never = ServiceCalendar("never", LONDON, {})
    assert never.counted(utc(2026, 1, 1), utc(2027, 1, 1)) == timedelta(0)
    assert not never.is_open(utc(2026, 1, 1, 12))
    with pytest.raises(ValueError, match="no service hours"):
        never.instant_after(utc(2026, 1, 1), H)
    assert never.instant_after(utc(2026, 1, 1), timedelta(0)) == utc(2026, 1, 1)
    with pytest.raises(ValueError, match="negative"):
        UK_OFFICE.instant_after(utc(2026, 1, 1), -H)


# -- properties ----------------------------------------------------------------------------

TRANSITIONS = [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1),       # London
               utc(2026, 3, 8, 7), utc(2026, 11, 1, 6),         # New York
               utc(2026, 4, 4, 16), utc(2026, 10, 3, 16)]       # Sydney, 03:00 AEDT / 02:00 AEST the next day
near_change = st.builds(lambda t, d: t + d, st.sampled_from(TRANSITIONS),
                        st.timedeltas(-timedelta(days=4), timedelta(days=4)))
anywhen = st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))
instants = st.one_of(near_change, anywhen)
calendars = st.sampled_from(CALENDARS)
amounts = st.timedeltas(timedelta(0), timedelta(hours=300))
PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(calendars, instants, instants, instants)
def test_counted_adds_up_over_split_intervals(cal, x, y, z):
    a, b, c = sorted((x, y, z))
    assert cal.counted(a, c) == cal.counted(a, b) + cal.counted(b, c)


@PROPERTY
@given(calendars, instants, instants)
def test_counted_lies_between_zero_and_wall_time(cal, x, y):
    a, b = sorted((x, y))
    assert timedelta(0) <= cal.counted(a, b) <= b - a
    assert cal.counted(b, a) == timedelta(0)
    spans = list(cal.open_spans(a, b))
    assert sum((e - s for s, e in spans), timedelta(0)) == cal.counted(a, b)
    assert all(a <= s < e <= b for s, e in spans)
    assert all(e1 < s2 for (_, e1), (s2, _) in pairwise(spans))   # ordered, merged


@PROPERTY
@given(calendars, instants, amounts)
def test_instant_after_is_the_earliest_instant_reaching_the_amount(cal, start, amount):
    end = cal.instant_after(start, amount)
    assert end.tzinfo == UTC and end >= start
    assert cal.counted(start, end) == amount
    if amount:
        assert cal.counted(start, end - US) < amount
        assert cal.is_open(end - US)
    else:
        assert end == start


ENGLAND = holidays.country_holidays("GB", subdiv="ENG", years=range(2025, 2028))
WEEKDAY_HOLIDAYS = sorted(d for d in ENGLAND if d.weekday() < 5)
days_2025_2027 = st.dates(date(2025, 1, 1), date(2027, 12, 31))



@PROPERTY
@given(days_2025_2027, st.sampled_from(WEEKDAY_HOLIDAYS), st.timedeltas(timedelta(0), 25 * H),
       st.timedeltas(timedelta(0), 25 * H))
def test_nothing_counts_on_closed_days(day, holiday, p, q):
    sunday = day + timedelta(days=6 - day.weekday())
    for closed in (sunday, holiday):
        start, end = local_day(LONDON, closed)
        assert UK_OFFICE.counted(start, end) == timedelta(0)
        # nor in any part of the day
        x, y = sorted((min(start + p, end - US), min(start + q, end - US)))
        assert UK_OFFICE.counted(x, y) == timedelta(0)
        assert not UK_OFFICE.is_open(x)
    # the same weekday holiday is a normal 10h day without the holidays
    assert UK_PLAIN.counted(*local_day(LONDON, holiday)) == 10 * H
    # a weekend day is closed in a Mon-Fri calendar in any zone
    for zone in (NEW_YORK, SYDNEY):
        office = calendar(zone, {"mon-fri": "07:00-19:00"})
        assert office.counted(*local_day(zone, sunday)) == timedelta(0)
        assert office.counted(*local_day(zone, sunday - timedelta(days=1))) == timedelta(0)


# An independent oracle: walk 15-minute blocks in UTC and ask, for each, whether its local
# wall time falls in that local day's hours. Every span boundary used here is a whole half
# hour and every offset a whole hour, so a block is open or closed throughout.
BLOCK = timedelta(minutes=15)
ORACLE_CALENDARS = [
    (UK_OFFICE, {"mon-fri": "08:00-18:00", "sat": "09:00-12:30"},
     set(holidays.country_holidays("GB", subdiv="ENG", years=range(2024, 2029))) | {date(2026, 12, 24)}),
    (NY_NIGHTS, {"mon-sun": "00:00-02:00, 22:00-24:00"},
     set(holidays.country_holidays("US", subdiv="NY", years=range(2024, 2029)))),
    (SYDNEY_DESK, {"mon-fri": "07:00-19:00", "sun": "01:30-03:30"},
     set(holidays.country_holidays("AU", subdiv="NSW", years=range(2024, 2029)))),
    (LONDON_SUNDAYS, {"sun": "00:00-24:00", "wed": "01:30-03:00"}, set()),
]


def oracle_open(cal: ServiceCalendar, week: dict, closed: set, instant: datetime) -> bool:
    local = instant.astimezone(ZoneInfo(cal.timezone))
    minute = local.hour * 60 + local.minute
    return local.date() not in closed and any(
        first <= minute < last for first, last in week.get(local.weekday(), ()))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ORACLE_CALENDARS), instants, st.integers(0, 4 * 96))
def test_counted_agrees_with_a_block_by_block_oracle(case, start, blocks):
    cal, hours, closed = case
    week = parse_week(hours)
    start = start.replace(minute=start.minute // 15 * 15, second=0, microsecond=0)
    steps = [start + i * BLOCK for i in range(blocks)]
    expected = sum(oracle_open(cal, week, closed, s) for s in steps) * BLOCK
    assert cal.counted(start, start + blocks * BLOCK) == expected
    assert all(cal.is_open(s) == oracle_open(cal, week, closed, s) for s in steps[:96])


def test_an_unknown_holiday_subdivision_lists_the_countrys_codes():
    """``DE-BE`` (ISO 3166-2) is not the holidays package's code; the error says which are."""
    with pytest.raises(ValueError) as err:
        ServiceCalendar("berlin", "Europe/Berlin", {}, country="DE", subdivision="DE-BE")
    assert "no subdivision 'DE-BE' of country 'DE'" in str(err.value) and ", BE, " in str(err.value)
    with pytest.raises(ValueError, match="no country 'XX'"):
        ServiceCalendar("x", "UTC", {}, country="XX", subdivision="BE")
    assert ServiceCalendar("berlin", "Europe/Berlin", {}, country="DE", subdivision="BE").subdivision == "BE"
