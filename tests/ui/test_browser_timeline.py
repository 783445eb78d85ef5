"""What the console draws, looked at in headless Chromium (issue 20, item 19): a clock's
timeline whose last events fall together keeps every label apart and inside the chart,
its legend names the maintenance windows taken out of the calendar, and business-hour
durations read in hours. The service runs in this process on a fixed clock, behind a real
HTTP server; screenshots go to tests/artifacts/."""
from __future__ import annotations

import itertools
import shutil
import threading

import pytest
from selenium.webdriver.common.by import By
from werkzeug.serving import make_server

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, WallClock, fact
from tests.support.browser import MISSING, go, shot

pytestmark = [pytest.mark.skipif(MISSING, reason="chromium and chromedriver are not installed"),
              pytest.mark.browser, pytest.mark.slow]

MAINTENANCE = """\
kind: Maintenance
id: mx-patching
service: email
once:
  - {from: 2026-11-05T10:00:00Z, to: 2026-11-05T11:30:00Z}
"""


@pytest.fixture
def console(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    email = rules / "services" / "email.yaml"
    window = "      window: month\n"
    email.write_text(email.read_text().replace(window, window + "      exclude: maintenance\n", 1))
    (rules / "services" / "maintenance.yaml").write_text(MAINTENANCE)
    store = Store.open(f"sqlite:///{tmp_path / 'slm.db'}")
    wall = WallClock("2026-11-05T08:00:00Z")             # Thursday
    service = SlmService(store, rules, now=wall)
    service.start(background=False)
    token = store.add_token("admin")
    app = create_app(service)
    client = app.test_client()

    def post(at: str, *facts):
        wall.set(at)
        response = client.post("/v1/facts", json=list(facts), headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.json

    ids = (f"f{n}" for n in itertools.count())
    # a P2 on the office calendar: opened Thursday 17:00, pending at 17:30, resumed Friday
    # 09:00, resolved Friday 13:00: its last three events fall together at the chart's end
    for at, kind in (("2026-11-05T17:00:00Z", "incident.opened"), ("2026-11-05T17:30:00Z", "incident.pending"),
                     ("2026-11-06T09:00:00Z", "incident.resumed"), ("2026-11-06T13:00:00Z", "incident.resolved")):
        post(at, fact(next(ids), type=kind, subject="INC-P2", time=at, priority="P2"))
    # a P2 open since Monday 09:00 of the next week, still open on Thursday 13:00: 34 business hours
    post("2026-11-09T09:00:00Z", fact(next(ids), subject="INC-LONG", time="2026-11-09T09:00:00Z", priority="P2"))
    # an outage across the maintenance window of Thursday 10:00-11:30
    post("2026-11-12T09:00:00Z", fact(next(ids), type="alert.firing", subject="fp-1", time="2026-11-05T09:00:00Z",
                                      alertname="EmailDown"))
    post("2026-11-12T09:00:00Z", fact(next(ids), type="alert.resolved", subject="fp-1", time="2026-11-05T12:00:00Z",
                                      alertname="EmailDown"))
    wall.set("2026-11-12T13:00:00Z")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield type("Console", (), {"base": f"http://127.0.0.1:{server.server_port}", "token": token})
    server.shutdown()
    service.stop()
    store.close()


def sign_in(b, console) -> None:
    b.get(console.base + "/ui/login")
    b.find_element(By.ID, "token").send_keys(console.token)
    go(b, lambda: b.find_element(By.CSS_SELECTOR, "form.login button"))
    assert b.find_element(By.TAG_NAME, "h1").text == "Overview"


def boxes(b, selector: str) -> list[dict]:
    """The boxes of an SVG's elements, as the browser laid them out (user units)."""
    return b.execute_script("""
        return [...document.querySelectorAll(arguments[0])].map(e => {
            const r = e.getBBox(); return {x: r.x, y: r.y, w: r.width, h: r.height, text: e.textContent};
        });""", selector)


def apart(one: dict, other: dict) -> bool:
    return (one["x"] + one["w"] <= other["x"] or other["x"] + other["w"] <= one["x"]
            or one["y"] + one["h"] <= other["y"] or other["y"] + other["h"] <= one["y"])


def test_timeline_labels_never_overlap_and_stay_inside_the_chart(console, browser):
    b = browser
    sign_in(b, console)
    b.get(console.base + "/ui/clocks/email-p2-resolution/INC-P2")
    width = float(b.find_element(By.CSS_SELECTOR, "svg.timeline").get_attribute("width"))
    labels = boxes(b, "svg.timeline text.event-label")
    texts = [label["text"] for label in labels]
    assert {"resume Fri 09:00", "stop Fri 13:00", "met Fri 13:00"} <= set(texts), texts
    for one, other in itertools.combinations(labels, 2):
        assert apart(one, other), (one, other)
    for label, marker in itertools.product(labels, boxes(b, "svg.timeline g.event circle")):
        assert apart(label, marker), (label, marker)           # no label on any event's marker
    axis = boxes(b, "svg.timeline text.label")
    for one, other in itertools.combinations(axis, 2):
        assert apart(one, other), (one, other)
    assert all(0 <= box["x"] and box["x"] + box["w"] <= width for box in labels + axis), labels + axis
    assert "Counted 4h30m of a 8h goal (service hours)" in b.find_element(By.TAG_NAME, "main").text
    shot(b, "clock-labels")


def test_business_hours_read_in_hours_and_the_legend_names_maintenance(console, browser):
    """(The availability timeline's last event, at the chart's end, has its label left of it.)"""
    b = browser
    sign_in(b, console)
    b.get(console.base + "/ui/clocks/email-p2-resolution/INC-LONG")
    main = b.find_element(By.TAG_NAME, "main").text
    assert "Counted 34h of a 8h goal (service hours)" in main and "1d" not in main.split("Events")[0], main
    shot(b, "clock-business-hours")
    b.get(console.base + "/ui/clocks/email-availability/2026-11")
    caption = b.find_element(By.CSS_SELECTOR, "figure figcaption").text
    assert "maintenance window (not counted)" in caption and "outside service hours" in caption, caption
    assert b.find_elements(By.CSS_SELECTOR, "svg.timeline rect.maintenance")
    assert "mx-patching Thu 05 Nov 10:00–11:30" in b.find_element(By.TAG_NAME, "main").text
    shot(b, "clock-maintenance")
