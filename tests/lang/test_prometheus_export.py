"""``slm export prometheus-rules`` (issue 22, item 6): the rules it writes pass ``promtool
check rules``, and, run by ``promtool test rules`` over counters of the same events that
slm is given as ``sli.counts`` facts, the page and ticket alerts fire exactly while slm's
own burn-rate levels of those severities stand, at every 5 minutes of the morning."""
from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta

import pytest
import yaml
from click.testing import CliRunner

from cli.main import main
from engine.eval.engine import Engine
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from engine.lang.prometheus import decimal, prometheus_rules
from schemas.values import format_instant, parse_instant
from tests.support.budgets import counts
from tests.support.ruletexts import SHOP_AGREEMENT

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")

RULES = SHOP_AGREEMENT + """  - id: payments
    name: 99.9% of payments succeed
    ratio: {name: payment, window: rolling 28d}
    goal: 99.9%
    burn_rate:
      - {factor: 14.4, long: 1h, short: 5m}
      - {factor: 6, long: 6h, short: 30m}
      - {factor: 1, long: 3d, short: 6h}
    prometheus:
      errors: sum(rate(payments_total{outcome="failed"}[{{.window}}]))
      total: sum(rate(payments_total[{{.window}}]))
      labels: {team: shop}
  - id: payments-untold
    ratio: {name: payment}
    goal: 99%
  - id: shop-up
    availability:
      down: {type: alert.firing, where: {alertname: ShopDown}}
      up: {type: alert.resolved, where: {alertname: ShopDown}}
      window: month
    goal: 99.5%
    burn_rate: [{factor: 2, long: 1h, short: 5m}]
    prometheus:
      errors: 1 - avg_over_time(up{job="shop"}[{{.window}}])
      total: vector(1)
"""
BASE = parse_instant("2026-11-12T08:00:00Z")      # promtool's instant 0: the counters start at 0
STEP = timedelta(minutes=5)
STEPS = 48                                        # until 12:00
BAD = {25, 26, 27, 28}                            # the intervals ending 10:05 … 10:20: 50 of 1000 bad


@pytest.fixture(scope="module")
def ruleset():
    return load_texts({"rules.yaml": RULES})


@pytest.fixture(scope="module")
def written(ruleset, tmp_path_factory):
    path = tmp_path_factory.mktemp("prom") / "rules.yaml"
    path.write_text(prometheus_rules(ruleset, "shop").text("shop"))
    return path


def test_every_budget_target_with_promql_is_written_and_the_others_named(ruleset):
    exported = prometheus_rules(ruleset, "shop")
    names = [group["name"] for group in exported.groups]
    assert names == ["sloth-slo-sli-recordings-shop-payments", "sloth-slo-meta-recordings-shop-payments",
                     "sloth-slo-alerts-shop-payments", "sloth-slo-sli-recordings-shop-shop-up",
                     "sloth-slo-meta-recordings-shop-shop-up", "sloth-slo-alerts-shop-shop-up"]
    assert exported.skipped == [("payments-untold", "names no PromQL (prometheus: {errors, total})")]
    assert "shop-up: the calendar window 'month' is read as the last 30d, rolling" in exported.notes
    sli = exported.groups[0]["rules"]
    assert [r["record"] for r in sli] == [f"slo:sli_error:ratio_rate{w}"
                                          for w in ("5m", "30m", "1h", "6h", "3d", "28d")]
    assert sli[2]["expr"] == ('(sum(rate(payments_total{outcome="failed"}[1h])))\n/\n'
                              '(sum(rate(payments_total[1h])))\n')
    assert sli[2]["labels"] == {"team": "shop", "sloth_id": "shop-payments", "sloth_service": "shop",
                                "sloth_slo": "payments", "sloth_window": "1h"}
    page, ticket = exported.groups[2]["rules"]
    assert (page["labels"]["sloth_severity"], page["labels"]["slm_levels"]) == ("page", "14.4x,6x")
    assert (ticket["labels"]["sloth_severity"], ticket["labels"]["slm_levels"]) == ("ticket", "1x")
    assert "> (14.4 * 0.001)" in page["expr"] and "ratio_rate3d" in ticket["expr"]


@pytest.mark.parametrize("value, text", [((1, 1000), "0.001"), ((1, 200), "0.005"), ((1, 3), repr(1 / 3)),
                                         ((72, 5), "14.4")])
def test_a_share_is_written_as_the_decimal_it_is(value, text):
    from fractions import Fraction
    assert decimal(Fraction(*value)) == text


def test_a_query_without_its_window_is_refused_at_its_line():
    text = RULES.replace('errors: 1 - avg_over_time(up{job="shop"}[{{.window}}])', 'errors: 1 - up{job="shop"}')
    with pytest.raises(RuleSetError) as caught:
        load_texts({"rules.yaml": text})
    problems = "\n".join(str(p) for p in caught.value.problems)
    assert "rules.yaml:32:15:" in problems and "neither query has {{.window}}" in problems, problems


def test_the_command_writes_the_file_and_names_what_it_left_out(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(main, ["export", "prometheus-rules", "shop", "--rules", str(rules), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "left out payments-untold: names no PromQL" in result.output
    assert len(yaml.safe_load(out.read_text())["groups"]) == 6
    unknown = CliRunner().invoke(main, ["export", "prometheus-rules", "shoop", "--rules", str(rules)])
    assert unknown.exit_code == 2 and "unknown service 'shoop' (services: shop)" in unknown.output


@needs_promtool
def test_promtool_checks_the_rules(written):
    done = subprocess.run([PROMTOOL, "check", "rules", str(written)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 26 rules found" in done.stdout


def facts() -> list[dict]:
    out = []
    for k in range(1, STEPS + 1):
        start, end = format_instant(BASE + (k - 1) * STEP), format_instant(BASE + k * STEP)
        out.append(counts(f"p{k}", end, 950 if k in BAD else 1000, 1000, start))
    return out


def standing(ruleset) -> dict[str, list[tuple[int, int | None]]]:
    """Per burn-rate level, the spans (in steps from BASE) slm had it stand: fired to cleared."""
    engine = Engine(ruleset)
    for fact in facts():
        engine.apply(fact)
    engine.advance(BASE + STEPS * STEP + timedelta(hours=1))
    spans: dict[str, list[tuple[int, int | None]]] = {}
    for decision in sorted(engine.decisions, key=lambda d: d.at):
        if decision.target == "payments" and decision.kind == "burn_rate":
            spans.setdefault(decision.level, []).append(((decision.at - BASE) // STEP, None))
        elif decision.target == "payments" and decision.kind == "burn_rate_cleared":
            begun, _ = spans[decision.level].pop()
            spans[decision.level].append((begun, (decision.at - BASE) // STEP))
    return spans


@needs_promtool
@pytest.mark.slow
def test_the_alerts_fire_while_slms_burn_rate_levels_stand(ruleset, written):
    spans = standing(ruleset)
    # slm: 14.4x from 10:20 to 10:25, 6x from 10:20 to 10:50 (its 6h window holds 4 hours of
    # good payments only), the ticket (1x) from 10:05 on
    assert spans == {"1x": [(25, None)], "14.4x": [(28, 29)], "6x": [(28, 34)]}, spans
    failed, ok, series = 0, 0, {"failed": ["0"], "ok": ["0"]}
    for k in range(1, STEPS + 1):
        failed, ok = failed + (50 if k in BAD else 0), ok + (950 if k in BAD else 1000)
        series["failed"].append(str(failed))
        series["ok"].append(str(ok))
    labels = {"team": "shop", "sloth_id": "shop-payments", "sloth_service": "shop", "sloth_slo": "payments"}
    levels = {"page": [("14.4x", "5m"), ("6x", "30m")], "ticket": [("1x", "6h")]}     # highest factor first
    checks = []
    for step in range(12, STEPS + 1):                 # 09:00 … 12:00
        for severity, ordered in levels.items():
            standing_now = [short for level, short in ordered
                            if any(a <= step and (b is None or step < b) for a, b in spans.get(level, []))]
            # the alert carries the sloth_window of the first (highest) level whose condition holds
            checks.append({"eval_time": f"{step * 5}m", "alertname": "PaymentsErrorBudgetBurn",
                           "exp_alerts": [{"exp_labels": {**labels, "sloth_window": standing_now[0],
                                                          "sloth_severity": severity,
                                                          "slm_levels": ",".join(level for level, _ in ordered)},
                                           "exp_annotations": {
                                               "summary": "99.9% of payments succeed: the error budget burns too fast",
                                               "title": f"({severity}) shop payments SLO error budget burn rate "
                                                        "is too fast."}}] if standing_now else []})
    # both severities share the alert's name: promtool compares all alerts of the name at once
    merged: dict[str, dict] = {}
    for check in checks:
        merged.setdefault(check["eval_time"], {**check, "exp_alerts": []})["exp_alerts"] += check["exp_alerts"]
    groups = [group["name"] for group in yaml.safe_load(written.read_text())["groups"]]
    # recordings before the alerts that read them, at each instant (as Prometheus, whose
    # rule groups run apart, does only up to one evaluation later)
    test = {"rule_files": [written.name], "evaluation_interval": "1m", "group_eval_order": groups,
            "tests": [{"interval": "5m", "input_series": [
                {"series": f'payments_total{{outcome="{name}"}}', "values": " ".join(values)}
                for name, values in series.items()], "alert_rule_test": list(merged.values())}]}
    test_file = written.parent / "test.yaml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, check=False,
                          cwd=written.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
