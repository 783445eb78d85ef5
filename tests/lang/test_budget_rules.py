"""What ``slm check``, the lint and ``slm explain`` say of error-budget rules (issue 22): an
escalation level ``at: 14.4x`` needs a burn-rate level of that factor on every target it
covers, is no share of a budget, and a ratio target is read as one (its ``sli.counts``
facts and its ``ratio.where``), never as a threshold or a duration target."""
from __future__ import annotations

import pytest

from engine.lang.errors import RuleSetError
from engine.lang.explain import explain
from engine.lang.loader import load_texts

RULES = """kind: Service
id: shop
roles: {service_level_manager: slm@example.org, on_call: oncall@example.org}
---
kind: Raci
id: raci
activities:
  page-oncall: {on_call: R, service_level_manager: A}
---
kind: Escalation
id: paging
applies_to: {targets: [payments, %s]}
levels:
  - {at: %s, activity: page-oncall}
---
kind: Agreement
id: sla
type: SLA
service: shop
targets:
  - id: payments
    ratio:
      name: payment
      where: {region: eu}
      window: rolling 28d
    goal: 99.9%%
    burn_rate: [{factor: 14.4, long: 1h, short: 5m}]
  - id: shop-up
    availability:
      down: {type: alert.firing, where: {alertname: ShopDown}}
      up: {type: alert.resolved, where: {alertname: ShopDown}}
    goal: 99.5%%
  - id: p1-response
    clock: {applies_to: {type: incident.opened}, stop: incident.resolved}
    goal: 15m
"""


def problems(text: str) -> str:
    with pytest.raises(RuleSetError) as caught:
        load_texts({"rules.yaml": text})
    return "\n".join(str(p) for p in caught.value.problems)


@pytest.mark.parametrize("other, at, words", [
    ("shop-up", "14.4x", "rules.yaml:14:10: at: 14.4x is never reached on target 'shop-up': it has no burn_rate "
                         "level of factor 14.4 (it has no burn_rate levels)"),
    ("p1-response", "14.4x", "target 'p1-response': it has no burn_rate level of factor 14.4 (a duration clock "
                             "keeps no error budget)"),
    ("shop-up", "6x", "at: 6x is never reached on target 'payments': it has no burn_rate level of factor 6 "
                      "(its levels are 14.4x)"),
])
def test_a_burn_level_no_covered_target_has_is_an_error_at_its_line(other, at, words):
    assert words in problems(RULES % (other, at))


def test_a_burn_level_every_covered_target_has_loads_without_a_warning():
    ruleset = load_texts({"rules.yaml": RULES.replace(", %s]", "]") % "14.4x"})
    assert not [w for w in ruleset.warnings if "fires the moment every clock starts" in str(w)], ruleset.warnings


def test_the_lint_places_a_ratio_where_at_its_own_line():
    text = RULES.replace(", %s]", "]").replace("where: {region: eu}", "where: {regoin: eu}") % "14.4x"
    for n in (1, 2):                # 'region' is written twice elsewhere: 'regoin' is the odd one
        text += (f"  - id: latency-{n}\n    metric: {{name: latency_ms, above: 800, where: {{region: eu}}}}\n"
                 "    goal: 99%\n")
    found = [str(w) for w in load_texts({"rules.yaml": text}).warnings if "regoin" in str(w)]
    assert found and found[0].startswith("rules.yaml:24:15:"), found


def counts(name: str = "payment", region: str = "eu") -> dict:
    return {"id": "c1", "source": "prometheus", "type": "sli.counts", "time": "2026-11-12T09:05:00Z",
            "service": "shop", "data": {"name": name, "region": region, "good": 995, "total": 1000,
                                        "start": "2026-11-12T09:00:00Z"}}


def test_explain_reads_a_ratio_target_by_its_counts():
    ruleset = load_texts({"rules.yaml": RULES.replace(", %s]", "]") % "14.4x"})
    answer = explain(ruleset, counts())
    assert answer["affected"] == [{"target": "payments",
                                   "effect": "counts good and total events in the rolling 28d window"}]
    reasons = {r["target"]: r["reason"] for r in explain(ruleset, counts(region="us"))["not_affected"]}
    assert reasons["payments"] == 'ratio: where region: "us" ≠ "eu"'
    assert reasons["p1-response"].startswith("type 'sli.counts' plays no part in this target")
    opened = {**counts(), "type": "incident.opened", "subject": "INC-1", "data": {}}
    reasons = {r["target"]: r["reason"] for r in explain(ruleset, opened)["not_affected"]}
    assert reasons["payments"] == "type 'incident.opened' plays no part in this target (it names sli.counts)"
