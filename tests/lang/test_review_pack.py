"""``review_pack:`` of an agreement: checked at file:line:column, said in plain words by
``slm docs``, and its instants those of the first business day of each month."""
from __future__ import annotations

import pytest

from engine.eval.packs import due, first_business_instant, next_due
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from tests.support import utc

RULES = """\
kind: Calendar
id: office
timezone: Europe/London
hours: {mon-fri: "09:00-17:00"}
holidays: {country: GB, subdivision: ENG}
---
kind: Service
id: registry
calendar: office
roles: {service_owner: owner@example.org, service_level_manager: slm@example.org}
---
kind: Raci
id: raci
activities:
  monthly-service-review: {service_level_manager: R, service_owner: A}
---
kind: Agreement
id: sla-registry
type: SLA
service: registry
valid: {from: 2026-11-01, to: 2027-01-31}
review_pack: {activity: monthly-service-review}
targets:
  - id: registry-response
    clock: {applies_to: {type: request.opened}, stop: request.acknowledged}
    goal: 4h
"""


def test_an_unknown_activity_is_an_error_at_its_place():
    with pytest.raises(RuleSetError) as raised:
        load_texts({"rules.yaml": RULES.replace("review_pack: {activity: monthly-service-review}",
                                                "review_pack: {activity: monthly-service-reveiw}")})
    problems = [str(p) for p in raised.value.problems]
    assert any(p.startswith("rules.yaml:22:25:") and "unknown activity 'monthly-service-reveiw'" in p
               and "monthly-service-review" in p for p in problems), problems


def test_an_unknown_field_of_the_review_pack_is_an_error_at_its_place():
    with pytest.raises(RuleSetError) as raised:
        load_texts({"rules.yaml": RULES.replace("{activity: monthly-service-review}",
                                                "{activity: monthly-service-review, to: someone}")})
    problems = [str(p) for p in raised.value.problems]
    assert problems == ["rules.yaml:22:49: unknown field 'to' (expected one of: activity)"]


def test_the_packs_fall_on_the_first_business_day_within_the_agreements_validity():
    ruleset = load_texts({"rules.yaml": RULES})
    office = ruleset.agreements["sla-registry"].review_pack.calendar
    assert first_business_instant(office, "2026-12") == utc("2026-12-01T09:00:00Z")      # a Tuesday
    assert first_business_instant(office, "2027-01") == utc("2027-01-04T09:00:00Z")      # 1st: New Year's Day
    assert first_business_instant(office, "2026-08") == utc("2026-08-03T08:00:00Z")      # BST; the 1st a Saturday
    fired = due(ruleset, utc("2026-11-15T00:00:00Z"), False, utc("2027-06-01T00:00:00Z"), True)
    # valid November to January: packs for those three months, none for February on
    assert [(at, period) for at, _, period in fired] == [
        (utc("2026-12-01T09:00:00Z"), "2026-11"), (utc("2027-01-04T09:00:00Z"), "2026-12"),
        (utc("2027-02-01T09:00:00Z"), "2027-01")]
    assert next_due(ruleset, utc("2026-12-01T09:00:00Z"), True) == utc("2027-01-04T09:00:00Z")
    assert next_due(ruleset, utc("2026-12-01T09:00:00Z"), False) == utc("2026-12-01T09:00:00Z")
    assert next_due(ruleset, utc("2027-02-01T09:00:00Z"), True) is None
    assert due(ruleset, None, False, utc("2027-06-01T00:00:00Z"), True) == []          # no fact yet: no pack


def test_slm_docs_says_it_in_plain_words():
    from engine.lang.document import agreement_document
    from engine.lang.document_render import render
    ruleset = load_texts({"rules.yaml": RULES})
    text = render(agreement_document(ruleset, "registry"), "md")
    assert "### Monthly review" in text
    assert ("On the first business day of each month (office service hours), a review pack of the month before "
            "is sent to the service owner (owner@example.org), accountable for monthly-service-review") in text


def test_only_the_partition_of_the_agreements_service_decides_its_pack():
    from engine.lang.partitions import PartitionMap
    from engine.lang.rulescope import RuleScope
    ruleset = load_texts({"rules.yaml": RULES})
    pmap = PartitionMap({"registry": "campus"}, default="rest")
    since, until = utc("2026-11-15T00:00:00Z"), utc("2026-12-02T00:00:00Z")
    assert [p for _, _, p in due(RuleScope(pmap, "campus")(ruleset), since, False, until, True)] == ["2026-11"]
    assert due(RuleScope(pmap, "rest")(ruleset), since, False, until, True) == []
    assert next_due(RuleScope(pmap, "rest")(ruleset), since, False) is None
