"""Deadline goals in the engine, over real durable_rules: each cycle's budget is priced
from its start to the deadline, a pause moves the breach as it does for any clock, and a
snapshot, a late fact and a rule change keep the price (docs/RULES.md, Deadline goals)."""
from __future__ import annotations

from datetime import timedelta

from engine.eval.engine import Engine
from engine.lang.loader import load_texts
from schemas.values import format_whole_duration, parse_instant
from tests.support.ruletexts import DESK_AGREEMENT

RULES = DESK_AGREEMENT + """\
  - id: access
    clock:
      applies_to: {type: request.opened}
      pause: request.pending
      resume: request.resumed
      stop: request.resolved
      restart: request.reopened
      calendar: office
    goal: {end_of: business_day, days: %(days)s}
    warn_at: [50%%]
"""


def ruleset(days: int = 1):
    return load_texts({"rules.yaml": RULES % {"days": days}})


def fact(ident, kind, time, subject="REQ-1"):
    return {"id": ident, "source": "test", "type": kind, "time": time, "subject": subject, "service": "desk",
            "data": {}}


def standing(engine) -> list[tuple]:
    retracted = {d.data.get("retracts") for d in engine.decisions if d.kind == "retracted"}
    return [(d.kind, d.cycle, d.at.strftime("%a %H:%M"), format_whole_duration(d.data["budget"]))
            for d in engine.decisions
            if d.kind != "retracted" and d.id not in retracted]


def run(facts, until="2026-11-12T00:00:00Z", rules=None) -> Engine:
    engine = Engine(rules or ruleset())
    for f in facts:
        engine.apply(f)
    engine.advance(parse_instant(until))
    return engine


FRIDAY = fact("f1", "request.opened", "2026-11-06T16:00:00Z")       # Friday 6 November 2026, GMT


def test_each_cycle_is_priced_from_its_own_start():
    reopened = fact("f3", "request.reopened", "2026-11-10T09:00:00Z")     # Tuesday: due Wednesday 18:00
    engine = run([FRIDAY, fact("f2", "request.resolved", "2026-11-09T10:00:00Z"), reopened])
    assert standing(engine) == [("met", 1, "Mon 10:00", "12h"),
                                ("warning", 2, "Wed 08:30", "19h"),       # 9h30: 9h on Tuesday + 30m
                                ("breach", 2, "Wed 18:00", "19h")]


def test_a_pause_moves_the_breach_past_the_deadline_as_for_any_goal():
    engine = run([FRIDAY, fact("p", "request.pending", "2026-11-09T09:00:00Z"),
                  fact("r", "request.resumed", "2026-11-09T11:00:00Z")])
    # 6h: 2h on Friday, 1h before the pause, 3h after it; 12h: 2h more on Tuesday
    assert standing(engine) == [("warning", 1, "Mon 14:00", "12h"), ("breach", 1, "Tue 10:00", "12h")]


def test_days_counts_business_days_over_the_weekend():
    # Wednesday's close: 2h on Friday + 10h on each of Monday, Tuesday and Wednesday
    assert standing(run([FRIDAY], rules=ruleset(days=3))) == [("warning", 1, "Tue 12:00", "1d8h"),
                                                              ("breach", 1, "Wed 18:00", "1d8h")]


def test_a_snapshot_keeps_the_price_of_the_running_cycle():
    engine = Engine(ruleset())
    engine.apply(FRIDAY)
    engine.advance(parse_instant("2026-11-09T09:00:00Z"))
    restored = Engine.restore(engine.ruleset, engine.snapshot())
    restored.advance(parse_instant("2026-11-12T00:00:00Z"))
    assert standing(restored) == [("warning", 1, "Mon 12:00", "12h"), ("breach", 1, "Mon 18:00", "12h")]
    clock = restored.clocks()[0]
    assert clock["budget"] == "12h"


def test_a_late_start_rebuilds_the_clock_at_its_own_price():
    monday = fact("f0", "request.opened", "2026-11-09T17:00:00Z")
    engine = Engine(ruleset())
    engine.apply(monday)                              # due Tuesday 18:00: 1h + 10h
    engine.apply(fact("f9", "request.resolved", "2026-11-10T17:00:00Z"))
    engine.advance(parse_instant("2026-11-12T00:00:00Z"))
    assert standing(engine) == [("warning", 1, "Tue 12:30", "11h"), ("met", 1, "Tue 17:00", "11h")]
    assert {d.data["budget"] for d in engine.decisions} == {timedelta(hours=11)}


DUE_RULES = RULES.replace("goal: {end_of: business_day, days: %(days)s}", "goal: {due: due_at}").replace("%%", "%")


def posted(ident, kind, time, due=None, subject="REQ-1"):
    made = fact(ident, kind, time, subject)
    if due is not None:
        made["data"] = {"due_at": due}
    return made


def test_a_posted_deadline_prices_the_cycle_from_its_start_to_it():
    rules = load_texts({"rules.yaml": DUE_RULES})
    engine = run([posted("f1", "request.opened", "2026-11-06T16:00:00Z", due="2026-11-10T12:00:00Z")],
                 rules=rules)
    # Friday 16:00 to Tuesday 12:00 on 08:00-18:00: 2h + 10h + 4h = 16h; half of it Monday 14:00
    assert standing(engine) == [("warning", 1, "Mon 14:00", "16h"), ("breach", 1, "Tue 12:00", "16h")]
    other = Engine(rules)
    other.apply(posted("f1", "request.opened", "2026-11-06T16:00:00Z", due="2026-11-10T12:00:00+01:00"))
    other.advance(parse_instant("2026-11-09T09:00:00Z"))
    restored = Engine.restore(rules, other.snapshot())                # the posted deadline is kept
    restored.advance(parse_instant("2026-11-12T00:00:00Z"))
    assert standing(restored) == [("warning", 1, "Mon 13:30", "15h"), ("breach", 1, "Tue 11:00", "15h")]


def test_without_a_posted_deadline_the_cycle_is_due_at_once():
    rules = load_texts({"rules.yaml": DUE_RULES})
    engine = run([posted("f1", "request.opened", "2026-11-09T10:00:00Z"),
                  posted("f2", "request.opened", "2026-11-09T10:00:00Z", due="not a time", subject="REQ-2"),
                  posted("f3", "request.opened", "2026-11-09T10:00:00Z", due="2026-11-09T09:00:00Z",
                         subject="REQ-3")], rules=rules)
    breaches = sorted((d.subject, d.at.strftime("%a %H:%M")) for d in engine.decisions if d.kind == "breach")
    assert breaches == [("REQ-1", "Mon 10:00"), ("REQ-2", "Mon 10:00"), ("REQ-3", "Mon 10:00")]


def test_a_late_start_keeps_the_deadline_it_posted():
    rules = load_texts({"rules.yaml": DUE_RULES})
    engine = Engine(rules)
    engine.apply(fact("p", "request.pending", "2026-11-09T09:00:00Z"))            # no clock yet
    engine.apply(posted("f1", "request.opened", "2026-11-06T16:00:00Z", due="2026-11-10T12:00:00Z"))
    engine.apply(fact("r", "request.resumed", "2026-11-09T11:00:00Z"))
    engine.apply(fact("p2", "request.pending", "2026-11-09T10:00:00Z"))          # late: rebuilds the clock
    engine.advance(parse_instant("2026-11-12T00:00:00Z"))
    # paused 10:00-11:00: 16h counted at Tuesday 13:00
    assert standing(engine)[-1] == ("breach", 1, "Tue 13:00", "16h")
