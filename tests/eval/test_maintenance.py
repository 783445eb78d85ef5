"""Maintenance windows (docs/RULES.md, "Maintenance windows"): declared and posted planned
downtime left out of the availability and threshold targets that exclude it."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.eval.engine import Engine
from engine.lang.calendar import ServiceCalendar
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules, load_texts
from engine.lang.maintenance import ExcludingCalendar, MaintenanceWindows
from engine.service.reports import compliance
from schemas.values import parse_instant
from tests.support import ROOT

RULES = ROOT / "fixtures" / "rulesets" / "maintenance"
TEXT = (RULES / "rules.yaml").read_text()
UTC = UTC
MINUTE = timedelta(minutes=1)


def fact(ident, kind, time, subject="mx1", **data):
    return {"id": ident, "source": "test", "type": kind, "time": time, "subject": subject, "service": "email",
            "data": data}


def down(ident, time):
    return fact(ident, "alert.firing", time, alertname="EmailDown")


def up(ident, time):
    return fact(ident, "alert.resolved", time, alertname="EmailDown")


def met(engine, target="email-availability"):
    retracted = {d.data.get("retracts") for d in engine.decisions if d.kind == "retracted"}
    return {(d.subject, d.data["counted"]) for d in engine.decisions
            if d.target == target and d.kind == "met" and d.id not in retracted}


def run(facts, until="2026-11-18T00:00:00Z") -> Engine:
    engine = Engine(load_rules(RULES))
    for f in facts:
        engine.apply(f)
    engine.advance(parse_instant(until))
    return engine


POSTED = [fact("m1", "maintenance.started", "2026-11-16T10:00:00Z", subject="CHG-12"),
          down("a3", "2026-11-16T10:05:00Z"),
          fact("m2", "maintenance.ended", "2026-11-16T10:30:00Z", subject="CHG-12"),
          up("a4", "2026-11-16T10:40:00Z")]


def test_a_posted_window_stops_counting_in_any_arrival_order():
    assert ("2026-11-16", 10 * MINUTE) in met(run(POSTED))
    assert ("2026-11-16", 10 * MINUTE) in met(run(list(reversed(POSTED))))


def test_a_posted_window_moves_nothing_of_a_target_that_does_not_exclude_it():
    engine = run(POSTED)
    breaches = [d.at for d in engine.decisions if d.target == "email-availability-raw" and d.kind == "breach"]
    assert breaches == [parse_instant("2026-11-16T10:19:24Z")]


def test_a_posted_window_open_at_the_end_of_a_clock_window_holds_the_next_one():
    facts = [fact("m1", "maintenance.started", "2026-11-16T23:00:00Z", subject="CHG-13"),
             down("a1", "2026-11-16T23:30:00Z"),
             fact("m2", "maintenance.ended", "2026-11-17T01:00:00Z", subject="CHG-13"),
             up("a2", "2026-11-17T01:05:00Z")]
    assert met(run(facts)) >= {("2026-11-16", timedelta(0)), ("2026-11-17", 5 * MINUTE)}


def test_posted_windows_survive_a_snapshot():
    engine = Engine(load_rules(RULES), history=False)
    for f in POSTED[:2]:
        engine.apply(f)
    restored = Engine.restore(engine.ruleset, engine.snapshot())
    held = restored.window_record("email-availability", "2026-11-16").clock.held
    assert held == {"maintenance:CHG-12": "fact:test#m1"}
    for f in POSTED[2:]:
        restored.apply(f)
    decisions = restored.advance(parse_instant("2026-11-17T00:00:00Z")).decisions
    assert [(d.kind, d.data["counted"]) for d in decisions if d.target == "email-availability"] == \
        [("met", 10 * MINUTE)]


def test_the_report_lists_the_months_windows_and_the_minutes_they_took_out():
    engine = run(POSTED, until="2026-11-20T00:00:00Z")
    report = compliance(engine.ruleset, [d.as_dict() | {"at": d.at.isoformat()} for d in engine.decisions],
                        "email", "2026-11", lambda t, label: engine.window_reading(t, label),
                        posted=engine.maintenance_spans)
    rows = {row["target"]: row for row in report["targets"]}
    assert "maintenance" not in rows["email-availability-raw"]
    found = rows["email-availability"]["maintenance"]
    sundays = ["2026-11-01", "2026-11-08", "2026-11-15", "2026-11-22", "2026-11-29"]
    assert [(w["from"], w["source"]) for w in found["windows"]] == sorted(
        [(f"{day}T02:00:00Z", "rules:email-patching") for day in sundays]
        + [("2026-11-16T10:00:00Z", "fact:test#m1"), ("2026-11-17T20:00:00Z", "rules:email-patching")])
    assert found["excluded_minutes"] == 5 * 120 + 30 + 120


# ---- the rule documents ---------------------------------------------------------------------

def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old, new, message", [
    ("service: email\ntimezone", "service: mail\ntimezone", "service: unknown service 'mail'"),
    ("timezone: Europe/London", "timezone: Europe/Londn", "timezone: unknown time zone 'Europe/Londn'"),
    ("to: 2026-11-17T22:00:00Z", "to: 2026-11-17T19:00:00Z", "'to' must come after 'from'"),
    ("exclude: maintenance", "exclude: maintenence", "'maintenence' is not one of: maintenance"),
])
def test_bad_maintenance_is_an_error_at_its_line(old, new, message):
    text = TEXT.replace(old, new, 1)
    with pytest.raises(RuleSetError) as raised:
        load_texts({"rules.yaml": text})
    problem, = raised.value.problems
    assert message in problem.message
    assert problem.line == line_of(text, new.split("\n")[0])


# ---- the arithmetic: windows against calendar hours, across a DST change ---------------------

OFFICE = ServiceCalendar("office", "Europe/London", {d: [(480, 1080)] for d in range(5)})
START = datetime(2026, 10, 19, tzinfo=UTC)          # the clocks go back on Sun 25 Oct


def brute_counted(calendar: ServiceCalendar, windows: MaintenanceWindows, a: datetime, b: datetime) -> timedelta:
    """Minute by minute: open on the calendar and inside no window."""
    holes = windows.spans(a, b)
    total, t = timedelta(0), a
    while t < b:
        if calendar.is_open(t) and not any(s <= t < e for s, e, _ in holes):
            total += MINUTE
        t += MINUTE
    return total


minutes = st.integers(0, 14 * 24 * 60)


@settings(max_examples=40, deadline=None)
@given(once=st.lists(st.tuples(minutes, st.integers(1, 600)), max_size=3),
       weekly=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 1380), st.integers(1, 300)), max_size=2),
       span=st.tuples(minutes, st.integers(0, 3 * 24 * 60)))
@example(once=[(7 * 60 + 20, 60)], weekly=[], span=(0, 24 * 60))              # a hole just after opening
@example(once=[(6 * 60 + 30, 60), (16 * 60 + 30, 90)], weekly=[], span=(0, 24 * 60))   # straddling both ends
@example(once=[], weekly=[(0, 7 * 60 + 30, 90)], span=(6 * 24 * 60, 2 * 24 * 60))     # Mondays, across the change
def test_excluded_counting_agrees_with_counting_minute_by_minute(once, weekly, span):
    week: dict[int, list] = {}
    for day, first, length in weekly:
        week.setdefault(day, []).append((first, min(first + length, 1440)))
    windows = MaintenanceWindows("s", once=[(START + m * MINUTE, START + (m + n) * MINUTE, "w") for m, n in once],
                                 weekly=[("w", "Europe/London", week)] if week else [])
    calendar = ExcludingCalendar(OFFICE, windows)
    a = START + span[0] * MINUTE
    b = a + span[1] * MINUTE
    counted = calendar.counted(a, b)
    assert counted == brute_counted(OFFICE, windows, a, b)
    assert counted + calendar.excluded(a, b) == OFFICE.counted(a, b)
    if counted > timedelta(0):
        deadline = calendar.instant_after(a, counted)
        assert deadline <= b and calendar.counted(a, deadline) == counted
        assert calendar.counted(a, deadline - timedelta(microseconds=1)) < counted
