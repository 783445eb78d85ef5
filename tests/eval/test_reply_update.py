"""Reply and update targets in the engine, over real durable_rules: a duration clock whose
starts after a stop begin the next cycle (``cycles: reply``), or whose updates restart it
only while a cycle runs (``cycles: update``); both with pause and cancel, a late fact, a
snapshot, and the checks at file:line (docs/RULES.md, "Reply and update targets")."""
from __future__ import annotations

import pytest

from engine.eval.engine import Engine
from engine.lang.errors import RuleSetError
from engine.lang.explain import explain
from engine.lang.loader import load_texts
from schemas.values import format_whole_duration, parse_instant
from tests.support.ruletexts import DESK_AGREEMENT

RULES = DESK_AGREEMENT + """\
  - id: reply
    clock:
      applies_to: {type: ticket.opened}
      start: [ticket.opened, {type: ticket.comment, where: {by: customer}}]
      stop: {type: ticket.comment, where: {by: agent}}
      pause: ticket.on_hold
      resume: ticket.off_hold
      cancel: ticket.closed
      cycles: reply
      calendar: office
    goal: 1h
  - id: update
    clock:
      applies_to: {type: ticket.opened}
      start: [ticket.opened, ticket.reopened]
      restart: {type: ticket.comment, where: {by: agent}}
      stop: ticket.solved
      pause: ticket.on_hold
      resume: ticket.off_hold
      cancel: ticket.closed
      cycles: update
      calendar: office
    goal: 4h
"""

MONDAY = "2026-11-09T"            # Monday 9 November 2026, GMT: local = Z


def fact(ident, kind, hour, by=None, subject="T-1"):
    return {"id": ident, "source": "test", "type": kind, "time": f"{MONDAY}{hour}:00Z", "subject": subject,
            "service": "desk", "data": {"by": by} if by else {}}


def standing(engine, target) -> list[tuple]:
    retracted = {d.data.get("retracts") for d in engine.decisions if d.kind == "retracted"}
    return [(d.kind, d.cycle, d.at.strftime("%H:%M"), _duration(d.data["counted"]))
            for d in engine.decisions
            if d.target == target and d.kind != "retracted" and d.id not in retracted]


def _duration(counted) -> str:
    """A decision's counted time (a restored engine's earlier decisions hold it as written)."""
    return counted if isinstance(counted, str) else format_whole_duration(counted)


def run(facts, until="2026-11-09T18:00:00Z") -> Engine:
    engine = Engine(load_texts({"rules.yaml": RULES}))
    for f in facts:
        engine.apply(f)
    engine.advance(parse_instant(until))
    return engine


def test_each_customer_message_after_an_answer_begins_a_cycle():
    engine = run([fact("a", "ticket.opened", "09:00"), fact("b", "ticket.comment", "09:20", "agent"),
                  fact("c", "ticket.comment", "10:00", "customer"), fact("d", "ticket.comment", "10:30", "customer"),
                  fact("e", "ticket.comment", "10:50", "agent"), fact("f", "ticket.comment", "11:00", "agent"),
                  fact("g", "ticket.comment", "12:00", "customer")])
    assert standing(engine, "reply") == [("met", 1, "09:20", "20m"), ("met", 2, "10:50", "50m"),
                                         ("breach", 3, "13:00", "1h")]


def test_a_cancel_ends_the_waiting_cycle_and_the_next_message_begins_another():
    engine = run([fact("a", "ticket.opened", "09:00"), fact("b", "ticket.closed", "09:30"),
                  fact("c", "ticket.comment", "11:00", "customer"), fact("d", "ticket.comment", "11:40", "agent")])
    assert standing(engine, "reply") == [("cancelled", 1, "09:30", "30m"), ("met", 2, "11:40", "40m")]


def test_a_message_while_the_ticket_is_on_hold_waits_with_it():
    engine = run([fact("a", "ticket.opened", "09:00"), fact("b", "ticket.on_hold", "09:30"),
                  fact("c", "ticket.comment", "10:00", "customer"), fact("d", "ticket.off_hold", "12:00")])
    assert standing(engine, "reply") == [("breach", 1, "12:30", "1h")]


def test_updates_restart_the_clock_and_stop_with_the_solution():
    engine = run([fact("a", "ticket.opened", "08:00"), fact("b", "ticket.comment", "11:00", "agent"),
                  fact("c", "ticket.solved", "13:00"), fact("d", "ticket.comment", "13:30", "agent")],
                 until="2026-11-10T18:00:00Z")
    assert standing(engine, "update") == [("met", 1, "11:00", "3h"), ("met", 2, "13:00", "2h")]


def test_an_update_while_on_hold_begins_a_cycle_that_waits_and_a_cancel_ends_the_updates():
    engine = run([fact("a", "ticket.opened", "08:00"), fact("b", "ticket.on_hold", "09:00"),
                  fact("c", "ticket.comment", "10:00", "agent"), fact("d", "ticket.off_hold", "11:00"),
                  fact("e", "ticket.closed", "14:00"), fact("f", "ticket.comment", "14:30", "agent")])
    assert standing(engine, "update") == [("met", 1, "10:00", "1h"), ("cancelled", 2, "14:00", "3h")]


def test_a_reopening_begins_the_updates_again():
    engine = run([fact("a", "ticket.opened", "08:00"), fact("b", "ticket.solved", "09:00"),
                  fact("c", "ticket.reopened", "10:00")])
    assert standing(engine, "update") == [("met", 1, "09:00", "1h"), ("breach", 2, "14:00", "4h")]


def test_a_late_answer_retracts_the_breach_of_its_cycle_and_later_cycles_stand():
    engine = Engine(load_texts({"rules.yaml": RULES}))
    for f in [fact("a", "ticket.opened", "09:00"), fact("b", "ticket.comment", "09:20", "agent"),
              fact("c", "ticket.comment", "10:00", "customer")]:
        engine.apply(f)
    engine.advance(parse_instant(f"{MONDAY}12:00:00Z"))
    assert standing(engine, "reply")[-1] == ("breach", 2, "11:00", "1h")
    engine.apply(fact("e", "ticket.comment", "13:00", "customer"))
    engine.apply(fact("d", "ticket.comment", "10:45", "agent"))       # late: posted after 13:00
    engine.advance(parse_instant(f"{MONDAY}18:00:00Z"))
    assert standing(engine, "reply") == [("met", 1, "09:20", "20m"), ("met", 2, "10:45", "45m"),
                                         ("breach", 3, "14:00", "1h")]


def test_a_snapshot_of_an_answered_ticket_takes_the_next_message():
    engine = Engine(load_texts({"rules.yaml": RULES}))
    engine.apply(fact("a", "ticket.opened", "09:00"))
    engine.apply(fact("b", "ticket.comment", "09:20", "agent"))
    restored = Engine.restore(engine.ruleset, engine.snapshot())
    restored.apply(fact("c", "ticket.comment", "10:00", "customer"))
    restored.advance(parse_instant(f"{MONDAY}18:00:00Z"))
    assert standing(restored, "reply") == [("met", 1, "09:20", "20m"), ("breach", 2, "11:00", "1h")]


def test_explain_says_a_message_to_an_answered_ticket_begins_a_cycle():
    engine = run([fact("a", "ticket.opened", "09:00"), fact("b", "ticket.comment", "09:20", "agent"),
                  fact("c", "ticket.solved", "09:30")])
    running, stopped = engine.clock_keys()
    answer = explain(engine.ruleset, fact("x", "ticket.comment", "10:00", "customer"), running, stopped)
    affected = {item["target"]: item["effect"] for item in answer["affected"]}
    assert affected["reply"] == "starts the clock of T-1: a new cycle"
    update = explain(engine.ruleset, fact("y", "ticket.comment", "10:00", "agent"), running, stopped)
    reasons = {item["target"]: item["reason"] for item in update["not_affected"]}
    assert reasons["update"].startswith("the clock of T-1 has stopped already")


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old, new, message", [
    ("      cycles: reply\n", "      cycles: replies\n", "'replies' is not one of: once, reply, update"),
    ("      stop: {type: ticket.comment, where: {by: agent}}\n", "",
     "cycles: reply needs 'stop', the reply that ends each cycle"),
    ("      restart: {type: ticket.comment, where: {by: agent}}\n", "",
     "cycles: update needs 'restart', the update that restarts the clock"),
])
def test_check_refuses_a_bad_cycles_at_its_line(old, new, message):
    text = RULES.replace(old, new, 1)
    with pytest.raises(RuleSetError) as raised:
        load_texts({"rules.yaml": text})
    problems = raised.value.problems
    assert message in problems[0].message
    wanted = "cycles: replies" if "replies" in message else ("cycles: reply\n" if "reply needs" in message
                                                             else "cycles: update")
    assert problems[0].line == line_of(text, wanted.strip())
    assert problems[0].file == "rules.yaml"


def test_lint_warns_of_a_reply_target_whose_only_start_is_the_opening():
    text = RULES.replace("      start: [ticket.opened, {type: ticket.comment, where: {by: customer}}]\n", "", 1)
    warnings = [w for w in load_texts({"rules.yaml": text}).warnings if "cycles" in w.message]
    assert len(warnings) == 1
    assert warnings[0].line == line_of(text, "cycles: reply")
    assert "only 'ticket.opened' starts one" in warnings[0].message


def test_the_timeline_draws_the_latest_cycle_of_a_reply_and_an_update_target():
    from engine.service.timeline import _counting

    ruleset = load_texts({"rules.yaml": RULES})
    at = parse_instant
    history = [(at(f"{MONDAY}09:00:00Z"), "start", "a", None), (at(f"{MONDAY}09:20:00Z"), "stop", "b", None),
               (at(f"{MONDAY}10:00:00Z"), "start", "c", None), (at(f"{MONDAY}10:30:00Z"), "start", "d", None)]
    spans, running = _counting(ruleset.targets["reply"], history, at(f"{MONDAY}11:00:00Z"))
    assert (spans, running) == ([(at(f"{MONDAY}10:00:00Z"), at(f"{MONDAY}11:00:00Z"))], True)
    paused = [(at(f"{MONDAY}08:00:00Z"), "start", "a", None), (at(f"{MONDAY}09:00:00Z"), "pause", "b", None),
              (at(f"{MONDAY}10:00:00Z"), "restart", "c", None), (at(f"{MONDAY}11:00:00Z"), "resume", "d", None),
              (at(f"{MONDAY}12:00:00Z"), "stop", "e", None), (at(f"{MONDAY}12:30:00Z"), "restart", "f", None)]
    spans, running = _counting(ruleset.targets["update"], paused, at(f"{MONDAY}13:00:00Z"))
    assert (spans, running) == ([(at(f"{MONDAY}11:00:00Z"), at(f"{MONDAY}12:00:00Z"))], False)
