"""``credits:`` in the rule language: what ``slm check`` refuses at file:line:column, the
words of ``slm docs``, and which tier a month's figure falls in."""
from __future__ import annotations

from fractions import Fraction

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cli.main import main
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from engine.lang.model import Credits, CreditTier, Origin
from tests.support import RULES

AGREEMENT = """\
kind: Service
id: email
---
kind: Agreement
id: sla-email
type: SLA
service: email
targets:
  - id: email-p1-response
    clock:
      applies_to: {type: incident.opened}
      stop: incident.acknowledged
    goal: 15m
  - id: email-availability
    availability:
      down: {type: alert.firing}
      up: {type: alert.resolved}
    goal: 99.9%
credits:
"""


def problems_of(credits: str) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_texts({"r.yaml": AGREEMENT + credits})
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("credits, expected", [
    ("  of: availability\n  targets: [email-p1-response]\n  tiers: [{below: 99%, credit: 5%}]\n",
     "r.yaml:21:13: credits of availability: 'email-p1-response' is a duration target, which has no "
     "availability (use of: compliance)"),
    ("  of: compliance\n  targets: [email-p1-respons]\n  tiers: [{below: 99%, credit: 5%}]\n",
     "r.yaml:21:13: credits: 'email-p1-respons' is not a target of agreement 'sla-email' (its targets: "
     "email-p1-response, email-availability)"),
    ("  of: uptime\n  tiers: [{below: 99%, credit: 5%}]\n",
     "r.yaml:20:7: of: 'uptime' is not one of: compliance, availability"),
    ("  of: compliance\n  tiers:\n    - {below: 99%, credit: 10%}\n    - {below: 95%, credit: 5%}\n",
     "r.yaml:23:28: credit: the tier below 95% credits 5%, less than the tier below 99% (10%): a worse month "
     "earns at least as much"),
    ("  of: compliance\n  tiers:\n    - {below: 99%, credit: 10%}\n    - {below: 99%, credit: 20%}\n",
     "r.yaml:23:15: below: a tier below 99% is written twice"),
    ("  of: compliance\n  tiers: [{below: 99%, credit: 0%}]\n",
     "r.yaml:21:32: credit: 0%: a share above 0% and at most 100% is expected"),
    ("  of: compliance\n  tiers: [{below: 101%, credit: 5%}]\n",
     "r.yaml:21:19: below: 101%: a share above 0% and at most 100% is expected"),
    ("  of: compliance\n  tiers: []\n", "r.yaml:21:10: tiers: shorter than minimum length 1."),
])
def test_a_wrong_credits_section_is_an_error_at_its_place(credits, expected):
    assert problems_of(credits) == [expected]


def test_without_targets_credits_read_the_targets_that_have_the_figure():
    ruleset = load_texts({"r.yaml": AGREEMENT + "  of: availability\n  tiers: [{below: 99%, credit: 5%}]\n"})
    credits = ruleset.agreements["sla-email"].credits
    assert credits is not None and credits.targets == ["email-availability"]
    ruleset = load_texts({"r.yaml": AGREEMENT + "  of: compliance\n  tiers: [{below: 99%, credit: 5%}]\n"})
    assert ruleset.agreements["sla-email"].credits.targets == ["email-p1-response"]


def test_slm_docs_says_the_tiers_in_plain_words():
    result = CliRunner().invoke(main, ["docs", "email", "--rules", str(RULES), "--agreement", "sla-email"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "### Service credits" in result.output
    assert ("Service credits are due for each calendar month in which the availability of Email available 99.9% "
            "of each month (email-availability) falls below a tier, as a share of that month's charge: below "
            "99.9%, 10%; below 99.5%, 25%; below 99%, 50%.") in result.output


shares = st.fractions(min_value=Fraction(1, 10**6), max_value=1, max_denominator=10**6)


@given(tiers=st.lists(st.tuples(shares, shares), min_size=1, max_size=6, unique_by=lambda t: t[0]),
       low=st.fractions(min_value=0, max_value=1), high=st.fractions(min_value=0, max_value=1))
def test_a_worse_month_never_earns_less_and_the_tier_is_the_lowest_reached(tiers, low, high):
    # the rule language requires a lower `below` to credit at least as much: order the credits so
    belows = sorted(b for b, _ in tiers)
    credits_ = sorted((c for _, c in tiers), reverse=True)
    made = [CreditTier(b, c) for b, c in zip(belows, credits_, strict=True)]
    credits = Credits("availability", ["t"], sorted(made, key=lambda t: t.below, reverse=True), Origin("r.yaml", 1))
    low, high = min(low, high), max(low, high)

    def credit(figure):
        tier = credits.due(figure)
        return Fraction(0) if tier is None else tier.credit

    assert credit(low) >= credit(high)
    tier = credits.due(low)
    reached = [t for t in made if low < t.below]
    assert (tier is None) == (not reached)
    if tier is not None:
        assert tier.below == min(t.below for t in reached) and tier.credit == max(t.credit for t in reached)
