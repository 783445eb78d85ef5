"""The error budgets on the console's overview, looked at in headless Chromium (issue 22,
item 7): the forecast beside each budget and its burn-down chart, drawn under the
console's Content-Security-Policy with nothing refused, its labels apart and inside the
chart. The service runs in this process on a fixed clock, behind a real HTTP server; the
screenshot goes to tests/artifacts/budgets.png."""
from __future__ import annotations

import itertools
import threading

import pytest
from selenium.webdriver.common.by import By
from werkzeug.serving import make_server

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import ROOT, WallClock
from tests.support.browser import MISSING, go, shot
from tests.support.budgets import payments

pytestmark = [pytest.mark.skipif(MISSING, reason="chromium and chromedriver are not installed"),
              pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def console(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'slm.db'}")
    wall = WallClock("2026-11-12T10:30:00Z")
    service = SlmService(store, ROOT / "fixtures" / "rulesets" / "budgets", now=wall)
    service.start(background=False)
    token = store.add_token("admin")
    app = create_app(service)
    response = app.test_client().post("/v1/facts", json=payments(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.json
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield type("Console", (), {"base": f"http://127.0.0.1:{server.server_port}", "token": token})
    server.shutdown()
    service.stop()
    store.close()


def test_the_overview_draws_each_budget_with_its_forecast(console, browser):
    b = browser
    b.get(console.base + "/ui/login")
    b.find_element(By.ID, "token").send_keys(console.token)
    go(b, lambda: b.find_element(By.CSS_SELECTOR, "form.login button"))
    row = b.find_element(By.CSS_SELECTOR, 'table.budgets tr[data-target="shop-checkout-burn"]').text
    assert "at risk" in row and "80 %" in row and "2026-11-13 11:02:24 UTC" in row, row
    chart = b.find_element(By.CSS_SELECTOR, "#budget-shop-checkout-burn svg")
    width = float(chart.get_attribute("width"))
    labels = b.execute_script("""
        return [...arguments[0].querySelectorAll('text')].map(e => {
            const r = e.getBBox(); return {x: r.x, y: r.y, w: r.width, h: r.height, text: e.textContent};
        });""", chart)
    assert {"100 %", "0 %", "now", "runs out 13 Nov 11:02"} <= {label["text"] for label in labels}, labels
    for one, other in itertools.combinations(labels, 2):
        assert (one["x"] + one["w"] <= other["x"] or other["x"] + other["w"] <= one["x"]
                or one["y"] + one["h"] <= other["y"] or other["y"] + other["h"] <= one["y"]), (one, other)
    assert all(0 <= label["x"] and label["x"] + label["w"] <= width for label in labels), labels
    forecast = b.find_element(By.CSS_SELECTOR, "#budget-shop-checkout-burn line.forecast")
    assert forecast.value_of_css_property("stroke-dasharray") not in ("", "none")     # the stylesheet applied
    assert [e for e in b.get_log("browser") if e["level"] == "SEVERE"] == []
    b.execute_script("document.querySelector('table.budgets').scrollIntoView()")
    shot(b, "budgets")
