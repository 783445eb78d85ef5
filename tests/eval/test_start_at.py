"""``start_at``: a clock's first cycle counts from an earlier fact of its subject
(docs/RULES.md, "What a clock counts"), over real durable_rules."""
from __future__ import annotations

import json
import zlib
from datetime import timedelta

import pytest

from engine.eval.engine import Engine
from engine.eval.state import SnapshotError
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules, load_texts
from schemas.values import parse_instant
from tests.support import ROOT

RULES = ROOT / "fixtures" / "rulesets" / "start-at"
TEXT = (RULES / "rules.yaml").read_text()


def fact(ident, kind, time, subject="INC-1", **data):
    return {"id": ident, "source": "test", "type": kind, "time": f"2026-11-16T{time}:00Z", "subject": subject,
            "service": "payroll", "data": data}


OPENED = fact("f1", "incident.opened", "09:00", priority="P2")
UPGRADED = fact("f2", "incident.updated", "10:00", priority="P1")
RESOLVED = fact("f3", "incident.resolved", "10:45")


def p1(engine) -> list[tuple]:
    """The standing P1 decisions: (kind, at, counted)."""
    retracted = {d.data.get("retracts") for d in engine.decisions if d.kind == "retracted"}
    return [(d.kind, d.at, d.data.get("counted")) for d in engine.decisions
            if d.target == "payroll-p1-resolution" and d.kind != "retracted" and d.id not in retracted]


def run(facts, until="2026-11-16T14:00:00Z") -> Engine:
    engine = Engine(load_rules(RULES))
    for f in facts:
        engine.apply(f)
    engine.advance(parse_instant(until))
    return engine


def at(text):
    return parse_instant(f"2026-11-16T{text}:00Z")


IN_ORDER = [("warning", at("09:30"), timedelta(minutes=30)), ("met", at("10:45"), timedelta(minutes=105))]
FROM_THE_UPGRADE = [("warning", at("10:30"), timedelta(minutes=30)), ("met", at("10:45"), timedelta(minutes=45))]


def test_the_clock_counts_from_the_earlier_fact_and_decides_passed_levels_at_their_instants():
    assert p1(run([OPENED, UPGRADED, RESOLVED])) == IN_ORDER


def test_an_earlier_fact_posted_after_the_start_rebuilds_the_clock():
    engine = run([UPGRADED, OPENED, RESOLVED])
    assert p1(engine) == IN_ORDER


def test_an_earlier_fact_posted_after_the_cycle_ended_retracts_what_it_changes():
    engine = run([UPGRADED, RESOLVED, OPENED])
    assert p1(engine) == IN_ORDER
    assert any(d.kind == "retracted" for d in engine.decisions)     # the met after 45m


def test_a_named_fact_after_the_start_does_not_move_it():
    late_open = fact("f1", "incident.opened", "10:30", priority="P2")
    assert p1(run([UPGRADED, late_open, RESOLVED])) == FROM_THE_UPGRADE


def test_without_the_earlier_fact_the_clock_starts_at_the_start_fact():
    assert p1(run([UPGRADED, RESOLVED])) == FROM_THE_UPGRADE


def test_only_the_same_subject_counts():
    other = fact("g1", "incident.opened", "08:00", subject="INC-2", priority="P2")
    assert p1(run([other, OPENED, UPGRADED, RESOLVED])) == IN_ORDER


def test_the_earliest_time_survives_a_snapshot():
    engine = Engine(load_rules(RULES), history=False)
    engine.apply(OPENED)
    restored = Engine.restore(engine.ruleset, engine.snapshot())
    assert restored.state.firsts == {"payroll-p1-resolution/INC-1": (at("09:00"), "fact:test#f1")}
    decisions = restored.apply(UPGRADED).decisions + restored.apply(RESOLVED).decisions
    assert [(d.kind, d.at) for d in decisions if d.target == "payroll-p1-resolution"] == \
        [("warning", at("09:30")), ("met", at("10:45"))]


def test_a_snapshot_of_the_previous_state_format_is_refused():
    engine = Engine(load_rules(RULES), history=False)
    engine.apply(OPENED)
    body = json.loads(zlib.decompress(engine.snapshot()))
    body["format"] = "state-v2"
    del body["firsts"]
    with pytest.raises(SnapshotError, match="another state format"):
        Engine.restore(engine.ruleset, zlib.compress(json.dumps(body).encode()))


def test_pruning_forgets_old_earlier_facts_no_clock_uses():
    engine = Engine(load_rules(RULES), history=False, retain=timedelta(days=1))
    engine.apply(OPENED)
    engine.apply(fact("g1", "incident.opened", "09:00", subject="INC-2", priority="P2"))
    engine.apply(fact("g2", "incident.updated", "09:10", subject="INC-2", priority="P1"))
    engine.advance(parse_instant("2026-11-18T12:00:00Z"))
    engine.prune()
    assert list(engine.state.firsts) == ["payroll-p1-resolution/INC-2"]    # its clock is kept


def with_start_at(value: str) -> dict[str, str]:
    text = TEXT.replace("start_at: first incident.opened", f"start_at: {value}")
    return {"rules.yaml": text}


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("value, message", [
    ("first incident.opend", "start_at: no rule names fact type 'incident.opend'"),
    ("'first {type: incident.updated, where: {priority: P1}}'", "expected 'first TYPE'"),
    ("{first: incident.updated, where: {priority: P1}}", "is the clock's own start condition"),
    ("opened", "expected 'first TYPE'"),
])
def test_check_rejects_a_bad_start_at_at_its_line(value, message):
    files = with_start_at(value)
    with pytest.raises(RuleSetError) as raised:
        load_texts(files)
    problems = raised.value.problems
    assert [p.line for p in problems] == [line_of(files["rules.yaml"], "start_at:")]
    assert message in problems[0].message


def test_a_start_at_with_a_where_loads_and_differs_from_the_start():
    ruleset = load_texts(with_start_at("{first: incident.updated, where: {priority: P2}}"))
    assert ruleset.targets["payroll-p1-resolution"].spec["start_at"] == {
        "type": "incident.updated", "where": {"priority": "P2"}}
