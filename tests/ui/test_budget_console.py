"""Error budgets read now (issue 22, items 4 and 7): ``GET /v1/clocks`` and the console's
overview show each budget's figures and forecast beside it, a burn-down chart per budget
target, and ``/metrics`` the burn rate per window. The 14.4x page of
fixtures/scenarios/budget-burn-rate-page.yaml, read at 10:30 (five minutes after it
cleared: the last hour still burns at 16.7x, the last five minutes at 0)."""
from __future__ import annotations

import re

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import ROOT, WallClock
from tests.support.budgets import payments
from tests.support.console import signed_in

RULES = ROOT / "fixtures" / "rulesets" / "budgets"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('budgets') / 'slm.db'}")
    wall = WallClock("2026-11-12T10:30:00Z")
    service = SlmService(store, RULES, now=wall)
    service.start(background=False)
    app = create_app(service)
    tokens = {role: store.add_token(role) for role in ("admin", "auditor")}
    response = app.test_client().post("/v1/facts", json=payments(),
                                      headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert response.status_code == 200, response.json
    yield type("Env", (), {"app": app, "service": service, "store": store, "tokens": tokens, "wall": wall})
    service.stop()
    store.close()


def test_clocks_show_each_budget_with_its_forecast(env):
    response = env.app.test_client().get("/v1/clocks?service=shop",
                                         headers={"Authorization": f"Bearer {env.tokens['auditor']}"})
    assert response.status_code == 200
    (clock,) = response.json["items"]
    figures = clock["error_budget"]
    # 28 days of payments: 1,018,000 events, 200 bad; the budget is 0.1% of them
    assert clock["clock"] == "shop-checkout-burn/rolling"
    assert figures["window"] == "rolling 28d" and figures["unit"] == "events"
    assert figures["bad"] == 200 and figures["budget"] == pytest.approx(1018)
    assert figures["remaining"] == pytest.approx(1 - 200 / 1018)
    assert figures["window_start"] == "2026-10-15T10:30:00Z" and figures["window_end"] == "2026-11-12T10:30:00Z"
    rates = figures["burn_rates"]
    assert rates["1h"] == pytest.approx(200 / 12000 / 0.001) and rates["5m"] == 0
    assert rates["30m"] == pytest.approx(200 / 6000 / 0.001)
    assert set(rates) == {"28d", "1h", "5m", "6h", "30m"}
    # the last 6 h burn 200 of 1,000,000 × 6/9 + 18,000 events; 818 left at that rate
    assert figures["forecast_over"] == "6h" and figures["projected_exhaustion"] == "2026-11-13T11:02:24Z"
    assert figures["at_risk"] is True and figures["burning"] == [] and figures["exhausted"] is False


def test_a_later_instant_reads_the_window_ending_there(env):
    """Nothing posted after 10:30: at 10:45 (before the next deadline, 10:50) the last hour
    holds 9 intervals, the last half hour one bad of three."""
    env.wall.set("2026-11-12T10:45:00Z")
    try:
        (clock,) = env.service.engine_reads.clocks(service="shop")
    finally:
        env.wall.set("2026-11-12T10:30:00Z")
    rates = clock["error_budget"]["burn_rates"]
    assert rates["1h"] == pytest.approx(200 / 9000 / 0.001) and rates["30m"] == pytest.approx(50 / 3000 / 0.001)
    assert clock["error_budget"]["bad"] == 200 and clock["as_of"] == "2026-11-12T10:45:00Z"


def test_metrics_give_the_burn_rate_per_window(env):
    text = env.app.test_client().get("/metrics").get_data(as_text=True)
    found = dict(re.findall(r'slm_target_burn_rate\{service="shop",target="shop-checkout-burn",window="(\w+)"\} (\S+)',
                            text))
    assert set(found) == {"28d", "1h", "5m", "6h", "30m"}
    assert float(found["1h"]) == pytest.approx(16.6667, rel=1e-4) and float(found["5m"]) == 0


def test_the_overview_shows_the_forecast_and_a_burn_down_chart(env):
    html = signed_in(env, "auditor").get("/ui/").get_data(as_text=True)
    row = re.search(r'<tr class="warn" data-target="shop-checkout-burn">(.*?)</tr>', html, re.S)
    assert row, "the budget's row, coloured at risk"
    cells = row.group(1)
    assert "at risk" in cells and "rolling 28d" in cells and "80 %" in cells and "200 of 1018 bad events" in cells
    assert "1h 16.7×" in cells and "2026-11-13 11:02:24 UTC" in cells
    chart = re.search(r'<figure id="budget-shop-checkout-burn">(.*?)</figure>', html, re.S).group(1)
    assert chart.startswith('<svg class="chart"') and "<script" not in chart and "style=" not in chart
    assert 'class="burn"' in chart and 'class="forecast"' in chart and "runs out 13 Nov 11:02" in chart
    points = re.search(r'<polyline points="([^"]+)" class="burn"/>', chart).group(1).split()
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[0] == min(ys) and ys[-1] == max(ys), "the budget left falls (drawn lower) by now"
