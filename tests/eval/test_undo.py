"""A write rolled back leaves the engine exactly as it was (engine.eval.undo): its state,
as a snapshot writes it, and the facts durable_rules holds, whether the write went through
or durable_rules refused one of its facts part-way (issue 20, item 9).

Every fact, deadline and clock sweep of the shipped scenarios is applied, rolled back and
compared; then applied again failing at each of its calls into durable_rules in turn, rolled
back and compared; then applied for good. At the end the engine must have decided exactly
what one that never rolled back decides. durable_rules itself is the one stand-in: its
``assert_fact`` refuses a fact's text when told to, as it refuses a number it cannot read
(error code 203), which changes nothing in its memory.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import durable_rules_engine
import pytest

from engine.eval.engine import Engine
from engine.eval.undo import Irreversible
from engine.lang.loader import load_rules
from engine.lang.yamlsource import load_documents
from schemas.scenario import ScenarioSchema
from schemas.values import parse_instant
from tests.support import PORTFOLIO, ROOT, fact
from tests.support.engine_state import state_of

SCENARIOS = sorted((ROOT / "fixtures" / "scenarios").glob("*.yaml"))
PARSE_NUMBER = 203              # durable_rules' ERR_PARSE_NUMBER: refused before its memory is touched
MAX_MESSAGES_IN_FRAME = 304     # a failure inside its memory


class Choke:
    """durable_rules' ``assert_fact``, refusing the ``at``-th call from when it is armed."""

    def __init__(self, monkeypatch):
        self.real = durable_rules_engine.assert_fact
        self.calls, self.at, self.code = 0, None, PARSE_NUMBER
        monkeypatch.setattr(durable_rules_engine, "assert_fact", self)

    def __call__(self, handle, text):
        self.calls += 1
        if self.at is not None and self.calls == self.at:
            raise durable_rules_engine.error(f"Could not assert fact, error code: {self.code}")
        return self.real(handle, text)

    def arm(self, at: int | None) -> None:
        self.calls, self.at = 0, at


def steps_of(path: Path):
    """(rule set, [step]) of a scenario file's first document: a step is ("fact", fact),
    ("change", (ruleset, at)) or ("until", instant)."""
    docs, problems = load_documents(path.read_text(encoding="utf-8"), str(path))
    assert not problems
    scenario = ScenarioSchema().load(docs[0].data)
    ruleset = load_rules(path.parent / scenario["rules"]) if scenario.get("rules") else load_rules(PORTFOLIO)
    steps = []
    for raw in scenario["facts"]:
        if "rules" in raw:
            steps.append(("change", (load_rules(path.parent / raw["rules"]), parse_instant(raw["at"]))))
        else:
            steps.append(("fact", {"source": "scenario", **raw}))
    if scenario.get("until"):
        steps.append(("until", scenario["until"]))
    return ruleset, steps


def run(engine: Engine, kind: str, value) -> None:
    if kind == "fact":
        engine.apply(value)
    elif kind == "until":
        engine.advance(value)
    else:
        engine.cut_over(*value)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_step_rolled_back_whole_or_part_way_leaves_the_engine_as_it_was(path, monkeypatch):
    ruleset, steps = steps_of(path)
    choke = Choke(monkeypatch)
    plain, engine = Engine(ruleset), Engine(ruleset)
    rolled_back = 0
    for kind, value in steps:
        run(plain, kind, value)
        if kind == "change":                    # rule changes are not recorded: a rebuild undoes them
            run(engine, kind, value)
            continue
        before = state_of(engine)
        choke.arm(None)
        mark = engine.begin()
        run(engine, kind, value)
        calls = choke.calls
        engine.rollback(mark)
        engine.end()
        assert state_of(engine) == before, f"{kind} {value} applied and rolled back"
        for at in range(1, calls + 1):
            choke.arm(at)
            mark = engine.begin()
            with pytest.raises(durable_rules_engine.error):
                run(engine, kind, value)
            choke.arm(None)
            engine.rollback(mark)
            engine.end()
            assert state_of(engine) == before, f"{kind} {value} refused at durable_rules call {at} of {calls}"
            rolled_back += 1
        engine.begin()
        run(engine, kind, value)
        engine.end()
    assert rolled_back > 0
    assert [d.as_dict() for d in engine.decisions] == [d.as_dict() for d in plain.decisions]
    assert state_of(engine) == state_of(plain)


def test_forgetting_finished_clocks_is_rolled_back_too():
    ruleset, steps = steps_of(ROOT / "fixtures" / "scenarios" / "p1-resolution-reopened-new-cycle.yaml")
    engine = Engine(ruleset, retain=timedelta(0))
    for kind, value in steps:
        run(engine, kind, value)
    engine.advance(engine.now + timedelta(days=40))
    before = state_of(engine)
    mark = engine.begin()
    assert engine.prune() > 0                  # something to forget, and to put back
    assert state_of(engine) != before
    engine.rollback(mark)
    engine.end()
    assert state_of(engine) == before


def test_a_failure_inside_durable_rules_memory_cannot_be_rolled_back(monkeypatch):
    choke = Choke(monkeypatch)
    engine = Engine(load_rules(PORTFOLIO))
    engine.apply(fact("f1", time="2026-11-02T09:00:00Z", priority="P1"))
    choke.code = MAX_MESSAGES_IN_FRAME
    choke.arm(1)
    mark = engine.begin()
    with pytest.raises(durable_rules_engine.error):
        engine.apply(fact("f2", subject="INC-2", time="2026-11-02T09:05:00Z", priority="P1"))
    with pytest.raises(Irreversible, match="inside its memory"):
        engine.rollback(mark)


BATCH = [fact("o1", subject="INC-1", priority="P1", time="2026-11-02T09:00:00Z"),
         fact("a1", type="incident.acknowledged", subject="INC-1", time="2026-11-02T09:05:00Z"),
         fact("o2", subject="INC-2", priority="P2", time="2026-11-02T09:06:00Z"),
         fact("a2", type="incident.acknowledged", subject="INC-2", time="2026-11-02T09:40:00Z"),
         fact("r1", type="incident.resolved", subject="INC-1", time="2026-11-02T10:00:00Z"),
         fact("o3", subject="INC-3", priority="P1", time="2026-11-02T10:01:00Z"),
         fact("p3", type="incident.pending", subject="INC-3", time="2026-11-02T10:02:00Z")]


@pytest.mark.parametrize("split", range(len(BATCH) + 1))
def test_clocks_made_and_changed_in_one_write_are_rolled_back_to_any_mark(split):
    """Clocks a write makes are never copied before its next mark (engine.eval.book.ClockBook.add):
    a batch that opens incidents and acknowledges them, rolled back to a mark taken after any
    of its facts, or whole, leaves the engine as it stood there."""
    engine, reference = Engine(load_rules(PORTFOLIO)), Engine(load_rules(PORTFOLIO))
    engine.apply(fact("o0", subject="INC-0", priority="P1", time="2026-11-02T08:00:00Z"))
    reference.apply(fact("o0", subject="INC-0", priority="P1", time="2026-11-02T08:00:00Z"))
    before = state_of(engine)
    start = engine.begin()
    for raw in BATCH[:split]:
        engine.apply(raw)
    middle = engine.mark()
    for raw in BATCH[split:]:
        engine.apply(raw)
    engine.rollback(middle)
    for raw in BATCH[:split]:
        reference.apply(raw)
    assert state_of(engine) == state_of(reference), f"rolled back to after {split} facts"
    engine.rollback(start)
    engine.end()
    assert state_of(engine) == before
    for raw in BATCH:                                   # and it goes on as one never rolled back
        engine.apply(raw)
    for raw in BATCH[split:]:
        reference.apply(raw)
    assert state_of(engine) == state_of(reference)
    assert [d.as_dict() for d in engine.decisions] == [d.as_dict() for d in reference.decisions]
