"""The console in a real browser: headless Chromium driven by Selenium against a real
``slm serve``. Facts that breach are posted over HTTP, then a person's path is followed:
sign in, the overview, a breach's trace, the clock's timeline, the service review.

Checked as a person would see it (texts, chart elements), plus what a person would not:
no browser console errors (a CSP violation is one) and no request leaving 127.0.0.1 (the
browser's performance log). Screenshots go to tests/artifacts/ (git-ignored); with
``SLM_SCREENSHOTS=docs/screenshots`` they are written there instead, for the README.

Skipped when chromium or chromedriver is missing (.ci/run installs them).
"""
from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By

from tests.support import ROOT
from tests.support.browser import MISSING, go, shot
from tests.support.serving import Server, slm

pytestmark = [pytest.mark.skipif(MISSING, reason="chromium and chromedriver are not installed"),
              pytest.mark.wallclock,      # posts facts relative to this machine's clock
              pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def server(tmp_path):
    url = f"sqlite:///{tmp_path / 'slm.db'}"
    made = slm("token", "create", "--role", "admin", "--db", url)
    assert made.returncode == 0, made.stderr
    srv = Server(url, tmp_path / "serve.log")
    srv.token = made.stdout.strip().splitlines()[-1]
    srv.start()
    yield srv
    srv.stop()


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def post_breaching_facts(srv) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    facts = [
        {"id": "b-1", "source": "zabbix/prod", "type": "incident.opened", "time": stamp(now - timedelta(minutes=40)),
         "subject": "INC-4711", "service": "email", "data": {"priority": "P1"}},
        {"id": "b-2", "source": "itsm/prod", "type": "incident.acknowledged",
         "time": stamp(now - timedelta(minutes=10)), "subject": "INC-4711", "service": "email", "data": {}},
        {"id": "b-3", "source": "itsm/prod", "type": "incident.opened", "time": stamp(now - timedelta(minutes=30)),
         "subject": "INC-4712", "service": "email", "data": {"priority": "P1"}},
        {"id": "b-4", "source": "itsm/prod", "type": "incident.acknowledged",
         "time": stamp(now - timedelta(minutes=25)), "subject": "INC-4712", "service": "email", "data": {}},
        {"id": "b-5", "source": "alertmanager", "type": "alert.firing", "time": stamp(now - timedelta(minutes=20)),
         "subject": "fp-email", "service": "email", "data": {"alertname": "EmailDown"}},
    ]
    response = requests.post(srv.base + "/v1/facts", json=facts, timeout=30,
                             headers={"Authorization": f"Bearer {srv.token}"})
    assert response.status_code == 200, response.text


def tamper_a_delivery_status(srv) -> None:
    """Mark a notification that was not sent as sent, straight in the database."""
    db = sqlite3.connect(srv.db_url.removeprefix("sqlite:///"), timeout=30)
    with db:
        changed = db.execute("UPDATE notifications SET status = 'sent' WHERE seq = "
                             "(SELECT MIN(seq) FROM notifications WHERE status != 'sent')").rowcount
    db.close()
    assert changed == 1


def test_a_person_finds_a_breach_its_trace_its_clock_and_the_month(server, browser):
    post_breaching_facts(server)
    b = browser
    b.get(server.base + "/")
    assert b.current_url.startswith(server.base + "/ui/login")
    assert b.find_element(By.TAG_NAME, "h1").text == "Sign in"
    shot(b, "login")
    b.find_element(By.ID, "token").send_keys(server.token)
    go(b, lambda: b.find_element(By.CSS_SELECTOR, "form.login button"))

    assert b.find_element(By.TAG_NAME, "h1").text == "Overview"
    body = b.find_element(By.TAG_NAME, "main").text
    assert "Corporate email" in body and "Closest to breach" in body and "Compliance in" in body
    assert "breach" in body and "INC-4711" in body
    assert b.find_elements(By.CSS_SELECTOR, "table.clocks svg.bar rect")
    shot(b, "overview")

    go(b, lambda: next(a for a in b.find_elements(By.CSS_SELECTOR, "ul.recent li.breach a")
                       if "email-p1-response · INC-4711" in a.text))
    assert "breach" in b.find_element(By.TAG_NAME, "h1").text
    tree = b.find_element(By.CSS_SELECTOR, ".tree").text
    assert "incident.opened" in tree and "zabbix/prod" in tree and "b-1" in tree
    assert "services/email.yaml:" in tree
    b.find_element(By.CSS_SELECTOR, ".tree details summary").click()      # a reader opens a rule's text
    b.execute_script("document.querySelectorAll('.tree details').forEach(d => d.open = true)")
    assert "goal: 15m" in b.find_element(By.CSS_SELECTOR, ".tree").text
    assert "Notifications" in [h.text for h in b.find_elements(By.TAG_NAME, "h2")]
    shot(b, "trace")
    trace_url = b.current_url

    b.get(server.base + "/ui/decisions?kind=escalation")      # escalations notify, through the RACI matrix
    go(b, lambda: b.find_element(By.CSS_SELECTOR, "table.decisions tbody a"))
    assert "pending" in b.find_element(By.CSS_SELECTOR, "table.notifications").text
    b.get(trace_url)

    go(b, lambda: b.find_element(By.LINK_TEXT, "email-p1-response/INC-4711"))
    assert b.find_element(By.TAG_NAME, "h1").text == "Clock email-p1-response · INC-4711"
    assert b.find_elements(By.CSS_SELECTOR, "svg.timeline rect.counting")
    assert b.find_elements(By.CSS_SELECTOR, "svg.timeline g.event.breach")
    events = b.find_element(By.CSS_SELECTOR, "table.events").text
    assert "start" in events and "breach" in events and "stop" in events
    shot(b, "clock")

    go(b, lambda: b.find_element(By.LINK_TEXT, "Service review"))
    assert b.find_element(By.TAG_NAME, "h1").text.startswith("Service review: Corporate email")
    assert len(b.find_elements(By.CSS_SELECTOR, "section.target svg.chart")) >= 5
    assert b.find_elements(By.CSS_SELECTOR, "svg.chart rect.breach")
    assert b.find_elements(By.CSS_SELECTOR, "svg.chart polyline.burn")
    review = b.find_element(By.TAG_NAME, "main").text
    assert "email-p1-response" in review and "50 %" in review      # one met, one breached
    shot(b, "review")

    go(b, lambda: b.find_element(By.LINK_TEXT, "Rules"))
    assert b.find_element(By.TAG_NAME, "h1").text == "Rules in force"
    shot(b, "rules")
    go(b, lambda: b.find_element(By.LINK_TEXT, "Audit"))
    go(b, lambda: b.find_element(By.CSS_SELECTOR, "main form button"))
    assert "Intact." in b.find_element(By.TAG_NAME, "main").text
    rows = {row.get_attribute("data-chain"): row.text
            for row in b.find_elements(By.CSS_SELECTOR, "table.chains tbody tr")}
    assert list(rows) == ["decisions", "facts", "notifications", "deliveries", "cutovers", "silences", "waivers",
                          "restatements"]
    assert all("Intact" in text for text in rows.values()) and rows["deliveries"].startswith("Delivery outcomes")
    shot(b, "audit")
    tamper_a_delivery_status(server)                           # someone with database access
    b.refresh()
    assert "Broken." in b.find_element(By.CSS_SELECTOR, "main p[role=alert]").text
    broken = b.find_element(By.CSS_SELECTOR, "table.chains tr.broken")
    assert broken.get_attribute("data-chain") == "deliveries"
    assert "delivery outcome seq" in broken.text and "its status is 'sent'" in broken.text
    assert len(b.find_elements(By.CSS_SELECTOR, "table.chains tr.intact")) == len(rows) - 1        # every other chain
    shot(b, "audit-broken")

    go(b, lambda: b.find_element(By.CSS_SELECTOR, "form.signout button"))
    assert b.current_url.startswith(server.base + "/ui/login")

    errors = [entry for entry in b.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    hosts = set()
    for entry in b.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith("data:"):
                hosts.add(urlsplit(url).hostname)
    assert hosts == {"127.0.0.1"}


def test_a_retracted_breach_is_struck_through_and_drawn_apart(server, browser):
    """A late acknowledgement retracts a breach: the list strikes it through with the
    reason, and the clock's timeline draws it hollow, struck through, in a lane of its own."""
    now = datetime.now(UTC).replace(microsecond=0)
    headers = {"Authorization": f"Bearer {server.token}"}
    opened = {"id": "r-1", "source": "zabbix/prod", "type": "incident.opened",
              "time": stamp(now - timedelta(minutes=40)), "subject": "INC-4800", "service": "email",
              "data": {"priority": "P1"}}
    late = {"id": "r-2", "source": "itsm/prod", "type": "incident.acknowledged",
            "time": stamp(now - timedelta(minutes=31)), "subject": "INC-4800", "service": "email", "data": {}}
    for body in (opened, late):                # the acknowledgement arrives after the breach was decided
        assert requests.post(server.base + "/v1/facts", json=body, headers=headers, timeout=30).status_code == 200
    b = browser
    b.get(server.base + "/ui/login")
    b.find_element(By.ID, "token").send_keys(server.token)
    go(b, lambda: b.find_element(By.CSS_SELECTOR, "form.login button"))
    b.get(server.base + "/ui/decisions?subject=INC-4800&kind=breach")
    row = b.find_element(By.CSS_SELECTOR, "table.decisions tr.superseded")
    assert row.find_element(By.CSS_SELECTOR, "s.struck").text == "breach"
    assert "retracted" in row.find_element(By.CSS_SELECTOR, ".retraction").text
    assert b.find_element(By.CSS_SELECTOR, "s.struck").value_of_css_property("text-decoration-line") == "line-through"
    shot(b, "decisions-retracted")
    b.get(server.base + "/ui/clocks/email-p1-response/INC-4800")
    apart = b.find_elements(By.CSS_SELECTOR, "svg.timeline g.event.superseded")
    assert apart and all("(retracted)" in g.find_element(By.TAG_NAME, "text").text for g in apart)
    others = b.find_elements(By.CSS_SELECTOR, "svg.timeline g.event:not(.superseded) circle")
    lowest = max(float(c.get_attribute("cy")) for c in others)
    assert all(float(g.find_element(By.TAG_NAME, "circle").get_attribute("cy")) > lowest for g in apart)
    assert "retracted" in b.find_element(By.CSS_SELECTOR, "table.events tr.superseded").text
    shot(b, "clock-retracted")
    assert [e for e in b.get_log("browser") if e["level"] == "SEVERE"] == []


@pytest.fixture
def shipped_server(tmp_path):
    """``slm serve`` with the shipped rules, whose email SLA has service credits."""
    url = f"sqlite:///{tmp_path / 'slm.db'}"
    made = slm("token", "create", "--role", "admin", "--db", url)
    assert made.returncode == 0, made.stderr
    srv = Server(url, tmp_path / "serve.log", "--rules", str(ROOT / "rules"))
    srv.token = made.stdout.strip().splitlines()[-1]
    srv.start()
    yield srv
    srv.stop()


def test_the_service_review_shows_the_trend_and_the_credit_due(shipped_server, browser):
    """Two hours of email down in the month before this one: the review of this month draws
    that month below the goal in the trend, and its row says the 10 % credit it earned."""
    server = shipped_server
    now = datetime.now(UTC).replace(microsecond=0)
    last = (now.replace(day=1) - timedelta(days=1)).replace(day=10, hour=10, minute=0, second=0)
    outage = [{"id": f"t-{n}", "source": "alertmanager", "type": kind, "time": stamp(at), "subject": "fp-trend",
               "service": "email", "data": {"alertname": "EmailDown"}}
              for n, (kind, at) in enumerate((("alert.firing", last), ("alert.resolved", last + timedelta(hours=2))))]
    response = requests.post(server.base + "/v1/facts", json=outage, timeout=30,
                             headers={"Authorization": f"Bearer {server.token}"})
    assert response.status_code == 200, response.text
    b = browser
    b.get(server.base + "/ui/login")
    b.find_element(By.ID, "token").send_keys(server.token)
    go(b, lambda: b.find_element(By.CSS_SELECTOR, "form.login button"))
    b.get(server.base + f"/ui/reports/email/{now:%Y-%m}")
    section = b.find_element(By.ID, "t-email-availability")
    months = [row.get_attribute("data-period")
              for row in section.find_elements(By.CSS_SELECTOR, "table.trend tbody tr")]
    assert len(months) == 6 and months[-1] == f"{now:%Y-%m}" and months[-2] == f"{last:%Y-%m}"
    row = section.find_element(By.CSS_SELECTOR, f'table.trend tr[data-period="{last:%Y-%m}"]').text
    assert row.endswith("10 %")                                    # the credit: 2h is below 99.9 %, not 99.5 %
    below = section.find_elements(By.CSS_SELECTOR, "figure.trend svg.chart circle.breach")
    assert [c.find_element(By.TAG_NAME, "title").get_attribute("textContent").split(":")[0] for c in below] == \
        [f"{last:%Y-%m}"]
    assert section.find_elements(By.CSS_SELECTOR, "figure.trend svg.chart polyline.burn")
    credits = b.find_element(By.CSS_SELECTOR, 'table.credits tr[data-agreement="sla-email"]').text
    assert "University staff and students" in credits
    shot(b, "review-trend")
    go(b, lambda: section.find_element(By.LINK_TEXT, f"{last:%Y-%m}"))
    assert b.find_element(By.TAG_NAME, "h1").text.endswith(f"{last:%Y-%m}")
    credits = b.find_element(By.CSS_SELECTOR, 'table.credits tr[data-agreement="sla-email"]').text
    assert "10 % of the month's charge" in credits
