"""On-call schedules (engine/lang/oncall.py): who a schedule puts on call at an instant,
across a rotation's handover, a DST change and overrides; and the file checked with the
rules, every mistake at the ``oncall:`` that names it."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules, load_texts
from engine.lang.oncall import OnCall, Schedule
from tests.support import PORTFOLIO

HERE = Path(__file__).resolve().parent / "oncall"
ROTA = (HERE / "london-rota.ics").read_text()
ALL_DAY = (HERE / "all-day.ics").read_text()
EMAIL = (PORTFOLIO / "services" / "email.yaml").read_text()
SLM = "  service_level_manager: slm-mail@example.org\n"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def who(schedule: Schedule, instant: str) -> tuple[str, ...] | None:
    shift = schedule.on_call(at(instant))
    return None if shift is None else shift.holders


@pytest.fixture(scope="module")
def rota() -> Schedule:
    return Schedule("oncall/london-rota.ics", ROTA, "Europe/London")


@pytest.mark.parametrize("instant, expected", [
    # the handover on Monday 23 March is at 09:00 GMT, 09:00 UTC
    ("2026-03-23T08:59:59", ("alice@example.org",)), ("2026-03-23T09:00:00", ("bob@example.org",)),
    # clocks go forward on Sunday 29 March: the next handover, 09:00 BST, is 08:00 UTC
    ("2026-03-30T07:59:59", ("bob@example.org",)), ("2026-03-30T08:00:00", ("alice@example.org",)),
    # clocks go back on Sunday 25 October: Bob's shift began at 08:00 UTC and ends at 09:00 UTC
    ("2026-10-19T07:59:59", ("alice@example.org",)), ("2026-10-19T08:00:00", ("bob@example.org",)),
    ("2026-10-26T08:30:00", ("bob@example.org",)), ("2026-10-26T09:00:00", ("alice@example.org",)),
])
def test_the_rotation_hands_over_at_local_time_across_dst(rota, instant, expected):
    assert who(rota, instant) == expected


def test_a_shorter_event_overrides_the_rotation_for_as_long_as_it_lasts(rota):
    # Carol covers Tuesday 31 March 09:00-17:00 BST, inside Alice's week
    assert who(rota, "2026-03-31T07:59:59") == ("alice@example.org",)
    shift = rota.on_call(at("2026-03-31T12:00:00"))
    assert shift is not None and shift.holders == ("carol@example.org",)
    assert shift.as_dict() == {"event": "Override: Carol", "uid": "override-carol-20260331@example.org",
                               "from": "2026-03-31T08:00:00Z", "to": "2026-03-31T16:00:00Z"}
    assert who(rota, "2026-03-31T16:00:00") == ("alice@example.org",)


def test_an_occurrence_changed_with_recurrence_id_gives_its_own_attendee(rota):
    assert who(rota, "2026-04-07T12:00:00") == ("dave@example.org",)      # Bob's week of 6 April
    assert who(rota, "2026-04-20T12:00:00") == ("bob@example.org",)       # his next one is his again


def test_after_the_last_shift_nobody_is_on_call(rota):
    assert who(rota, "2027-01-12T12:00:00") is None


def test_the_same_instant_gives_the_same_answer_whatever_was_asked_before(rota):
    first = [who(rota, i) for i in ("2026-03-31T12:00:00", "2026-03-23T09:00:00", "2026-04-07T12:00:00")]
    fresh = Schedule("oncall/london-rota.ics", ROTA, "Europe/London")
    assert [who(fresh, i) for i in ("2026-04-07T12:00:00", "2026-03-23T09:00:00", "2026-03-31T12:00:00")] == \
        first[::-1]


def test_all_day_events_are_days_of_the_holders_zone_and_ties_go_by_uid():
    london = Schedule("duty.ics", ALL_DAY, "Europe/London")
    # Saturday 4 July in London starts at 23:00 UTC the day before; two events cover it,
    # equally long and starting together: the UID decides, not the file's order
    assert who(london, "2026-07-03T23:30:00") == ("erin@example.org",)
    assert who(london, "2026-07-04T22:59:59") == ("erin@example.org",)
    assert who(london, "2026-07-04T23:00:00") is None
    assert who(Schedule("duty.ics", ALL_DAY), "2026-07-03T23:30:00") is None      # UTC by default


# ---- loaded with the rules ---------------------------------------------------------------

def rules(holder: str, **extra: str) -> dict[str, str]:
    files = {str(p.relative_to(PORTFOLIO)): p.read_text() for p in sorted(PORTFOLIO.rglob("*.yaml"))}
    files["services/email.yaml"] = EMAIL.replace(SLM, f"  service_level_manager: {holder}\n")
    return {**files, "services/oncall/london-rota.ics": ROTA, **extra}


def problems_of(files: dict[str, str]) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_texts(files)
    return [str(p) for p in caught.value.problems]


SLM_LINE = EMAIL[:EMAIL.index(SLM)].count("\n") + 1
HOLDER_COLUMN = len("  service_level_manager: ") + 1


def test_a_holder_may_be_a_schedule_beside_the_rule_file_and_is_part_of_the_version():
    ruleset = load_texts(rules("{oncall: oncall/london-rota.ics, timezone: Europe/London, "
                               "fallback: mail-desk@example.org}"))
    [holder] = ruleset.holders("email", "service_level_manager")
    assert isinstance(holder, OnCall) and holder.fallback == ("mail-desk@example.org",)
    assert holder.schedule.file == "services/oncall/london-rota.ics"
    assert holder.schedule.on_call(at("2026-03-23T09:00:00")).holders == ("bob@example.org",)
    changed = load_texts(rules("{oncall: oncall/london-rota.ics, timezone: Europe/London, "
                               "fallback: mail-desk@example.org}",
                               **{"services/oncall/london-rota.ics": ROTA.replace("Alice", "Alicia")}))
    assert changed.version != ruleset.version         # the schedule is part of what a version is
    assert not [w for w in ruleset.warnings if w.code == "oncall"]


def test_a_rules_directory_brings_its_schedules_along(tmp_path):
    for name, text in rules("[{oncall: oncall/london-rota.ics}, slm-mail@example.org]").items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    ruleset = load_rules(tmp_path)
    assert "services/oncall/london-rota.ics" in ruleset.files
    assert [str(h) for h in ruleset.holders("email", "service_level_manager")] == \
        ["oncall:services/oncall/london-rota.ics", "slm-mail@example.org"]
    result = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("holder, extra, expected", [
    ("{oncall: oncall/rota.ics}", {},
     f"{SLM_LINE}:{HOLDER_COLUMN + 9}: oncall: no such file 'services/oncall/rota.ics' (a path relative to this "
     "rule file; schedules found: services/oncall/london-rota.ics)"),
    ("{oncall: ../../elsewhere.ics}", {},
     f"{SLM_LINE}:{HOLDER_COLUMN + 9}: oncall: '../../elsewhere.ics' is outside the rules directory"),
    ("{oncall: oncall/rota.txt}", {}, f"{SLM_LINE}:{HOLDER_COLUMN + 9}: oncall: 'oncall/rota.txt' is no iCalendar"),
    ("{oncall: oncall/empty.ics}", {"services/oncall/empty.ics": "BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n"},
     f"{SLM_LINE}:{HOLDER_COLUMN + 9}: oncall: services/oncall/empty.ics:1: has no events (VEVENT)"),
    ("{oncall: oncall/bad.ics}", {"services/oncall/bad.ics": "this is not a calendar\n"},
     f"{SLM_LINE}:{HOLDER_COLUMN + 9}: oncall: services/oncall/bad.ics:1: is no iCalendar file"),
    ("{oncall: oncall/nobody.ics}",
     {"services/oncall/nobody.ics": ALL_DAY.replace("SUMMARY:frank@example.org", "SUMMARY:Frank's day")},
     f"{SLM_LINE}:{HOLDER_COLUMN + 9}: oncall: services/oncall/nobody.ics:11: event \"Frank's day\": its SUMMARY "
     "gives nobody to notify"),
    ("{oncall: oncall/london-rota.ics, timezone: Europe/Londn}", {},
     f"{SLM_LINE}:{HOLDER_COLUMN + 43}: timezone: unknown time zone 'Europe/Londn'"),
    ("{oncall: oncall/london-rota.ics, fallback: desk at example}", {},
     f"{SLM_LINE}:{HOLDER_COLUMN + 43}: fallback: 'desk at example' is neither an e-mail address nor a URL"),
    ("{oncall: oncall/london-rota.ics, fallbak: desk@example.org}", {},
     f"{SLM_LINE}:{HOLDER_COLUMN + 33}: unknown field 'fallbak'"),
])
def test_each_mistake_is_an_error_at_the_holder_that_names_the_schedule(holder, extra, expected):
    problems = problems_of(rules(holder, **extra))
    assert len(problems) == 1 and problems[0].startswith("services/email.yaml:" + expected), problems


def test_a_schedule_alone_without_a_fallback_is_a_warning():
    ruleset = load_texts(rules("{oncall: oncall/london-rota.ics}"))
    [warning] = [w for w in ruleset.warnings if w.code == "oncall"]
    assert (warning.file, warning.line) == ("services/email.yaml", SLM_LINE)
    assert "held by an on-call schedule alone, with no fallback" in warning.message
