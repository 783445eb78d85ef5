"""Budget clocks (docs/RULES.md, "Error budgets"): what a fact or a rule may say, and that
a snapshot or a late fact decides the same at the same instants."""
from __future__ import annotations

from pathlib import Path

import pytest
from marshmallow import ValidationError

from engine.eval.engine import Engine
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules, load_texts
from schemas.facts import FactSchema
from schemas.values import format_instant, parse_instant
from tests.support.budgets import counts, payments

RULES = Path(__file__).resolve().parents[2] / "fixtures" / "rulesets" / "budgets"


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(RULES)


@pytest.mark.parametrize("good, total, start, field, words", [
    (5, 3, "2026-11-12T09:00:00Z", "good", "good (5) is more than total (3)"),
    (-1, 3, "2026-11-12T09:00:00Z", "good", "a count is not negative"),
    (1, "3", "2026-11-12T09:00:00Z", "total", "is not a number"),
    (1, 3, "2026-11-12T09:05:00Z", "start", "starts before it"),
    (1, 3, "yesterday", "start", "is not an RFC 3339 instant"),
])
def test_bad_counts_are_refused_naming_the_field(good, total, start, field, words):
    with pytest.raises(ValidationError) as caught:
        FactSchema().load(counts("c", "2026-11-12T09:05:00Z", good, total, start))
    assert words in caught.value.messages["data"][field][0]


TARGET = """kind: Service
id: shop
---
kind: Agreement
id: sla
type: SLA
service: shop
targets:
  - id: t
    ratio: {name: checkout, window: %s}
    goal: 99%%
%s"""


@pytest.mark.parametrize("window, more, where, words", [
    ("rolling 28x", "", "rules.yaml:10:", "is not a window"),
    ("rolling 1d", "    burn_rate: [{factor: 14.4, long: 5m, short: 1h}]\n", "rules.yaml:12:",
     "the short window (1h) is shorter than the long one (5m)"),
    ("rolling 1d", "    burn_rate: [{factor: 0, long: 1h, short: 5m}]\n", "rules.yaml:12:", "above 0"),
    ("rolling 1d", "    forecast: {over: 30s}\n", "rules.yaml:12:", "whole minutes"),
])
def test_check_places_a_wrong_budget_field_at_its_line(window, more, where, words):
    with pytest.raises(RuleSetError) as caught:
        load_texts({"rules.yaml": TARGET % (window, more)})
    text = "\n".join(str(p) for p in caught.value.problems)
    assert where in text and words in text, text


def test_a_burn_rate_on_a_duration_clock_is_an_error():
    text = TARGET.replace("ratio: {name: checkout, window: %s}",
                          "clock: {applies_to: {type: incident.opened}, stop: incident.resolved}%s")
    with pytest.raises(RuleSetError) as caught:
        load_texts({"rules.yaml": text % ("", "    burn_rate: [{factor: 2, long: 1h, short: 5m}]\n")})
    assert "belongs to a target with an error budget" in str(caught.value.problems[0])


def decided(engine: Engine) -> list[tuple[str, str, str | None]]:
    return [(d.kind, format_instant(d.at), d.level) for d in engine.decisions
            if d.target == "shop-checkout-burn"]


def test_a_snapshot_between_facts_decides_the_same_at_the_same_instants(ruleset):
    whole = Engine(ruleset)
    for fact in payments():
        whole.apply(fact)
    whole.advance(parse_instant("2026-11-12T12:00:00Z"))
    first = Engine(ruleset, history=False)
    for fact in payments()[:16]:
        first.apply(fact)
    resumed = Engine.restore(ruleset, first.snapshot())
    seen = []
    for fact in payments()[16:]:
        seen += resumed.apply(fact).decisions
    seen += resumed.advance(parse_instant("2026-11-12T12:00:00Z")).decisions
    expected = [d for d in decided(whole) if d[1] > "2026-11-12T10:15:00Z"]
    assert [(d.kind, format_instant(d.at), d.level) for d in seen if d.target == "shop-checkout-burn"] == expected
    assert ("burn_rate_cleared", "2026-11-12T10:25:00Z", "14.4x") in expected


def test_a_late_count_rebuilds_the_budget_and_retracts_what_it_changes(ruleset):
    facts = payments()
    late = facts.pop(13)                   # the bad 10:00-10:05 interval, posted last
    engine = Engine(ruleset)
    for fact in facts:
        engine.apply(fact)
    before = decided(engine)
    engine.apply(late)
    engine.advance(parse_instant("2026-11-12T12:00:00Z"))
    in_order = Engine(ruleset)
    for fact in payments():
        in_order.apply(fact)
    in_order.advance(parse_instant("2026-11-12T12:00:00Z"))
    # without it the long window never holds more than 150 bad of 12000 (1.25%): no page,
    # and the forecast is at risk from 10:10
    assert [d for d in before if d[0] == "burn_rate"] == []
    assert ("at_risk", "2026-11-12T10:10:00Z", None) in before
    after = decided(engine)
    standing = [d for d in after if d[0] != "retracted"]
    # rebuilt: as in order, each at its own instant, and the superseded at_risk retracted
    for expected in [("burn_rate", "2026-11-12T10:20:00Z", "14.4x"),
                     ("burn_rate_cleared", "2026-11-12T10:25:00Z", "14.4x"),
                     ("at_risk", "2026-11-12T10:05:00Z", None)]:
        assert expected in standing and expected in decided(in_order)
    assert sum(d[0] == "retracted" for d in after) == 1


def test_slm_docs_says_each_budget_field_in_words():
    from click.testing import CliRunner

    from cli.main import main
    result = CliRunner().invoke(main, ["docs", "--rules", str(RULES), "shop"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Available 99% of the time over any 7 days, the window ending at each instant" in text
    assert "99% of checkout events are good over any 1 day" in text
    assert ("An alert fires when the budget burns 14.4 times as fast as the window allows over both the last "
            "1 hour and the last 5 minutes") in text
    assert "at the burn rate of the last 1 hour, the budget left would run out before the window ends" in text
