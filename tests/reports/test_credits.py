"""Service credits (docs/RULES.md "Service credits"): the credit due each month, in the
compliance report of the API and of ``slm report``, and on the console's service review."""
from __future__ import annotations

import json
import re

from click.testing import CliRunner

from cli import main
from tests.reports.conftest import outage, tickets


def credits_of(report: dict) -> dict[str, dict]:
    return {c["agreement"]: c for c in report["credits"]}


def test_the_worst_tier_reached_gives_the_credit_of_each_agreement(reports):
    reports.wall.set("2026-11-05T00:00:00Z")
    reports.post(outage(1, "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z") + tickets())
    report = reports.get("/v1/reports/compliance", service="email", period="2026-11").json
    credits = credits_of(report)
    # one hour of 43,200 minutes down: 99.8611 %, below 99.9 % but not 99.5 %: 10 %
    assert credits["sla-email"] == {
        "period": "2026-11", "agreement": "sla-email", "customer": "Finance", "shadow": False, "of": "availability",
        "credit": 10.0,
        "decided_by": "email-availability", "unmeasured": [],
        "targets": [{"target": "email-availability", "figure": 99.8611, "below": 99.9, "credit": 10.0}]}
    # one ticket of two met: 50 %, below both 95 % and 60 %: the lower tier's 15 %, not 5 + 15
    assert credits["ola-email"]["credit"] == 15.0 and credits["ola-email"]["targets"] == [
        {"target": "ola-p1-response", "figure": 50.0, "below": 60.0, "credit": 15.0}]
    rows = {r["target"]: r for r in report["targets"]}
    assert rows["email-availability"]["customer"] == "Finance"
    assert rows["ola-p1-response"]["customer"] == "Platform team"

    reports.post(outage(2, "2026-11-04T10:00:00Z", "2026-11-04T14:00:00Z"))     # 5 hours in all: 99.3056 %
    later = credits_of(reports.get("/v1/reports/compliance", service="email", period="2026-11").json)
    assert later["sla-email"]["credit"] == 25.0 and later["sla-email"]["targets"][0]["below"] == 99.5


def test_a_month_exactly_at_a_tier_earns_nothing_and_one_second_more_does(reports):
    """Figures are compared exactly: 43m12s of 30 days is 99.9 %, not below it."""
    reports.wall.set("2026-11-05T00:00:00Z")
    reports.post(outage(1, "2026-11-03T10:00:00Z", "2026-11-03T10:43:12Z"))
    at = credits_of(reports.get("/v1/reports/compliance", service="email", period="2026-11").json)
    assert at["sla-email"]["credit"] == 0.0 and at["sla-email"]["decided_by"] is None
    assert at["sla-email"]["targets"] == [{"target": "email-availability", "figure": 99.9, "below": None,
                                           "credit": 0.0}]
    reports.post(outage(2, "2026-11-04T10:00:00Z", "2026-11-04T10:00:01Z"))
    past = credits_of(reports.get("/v1/reports/compliance", service="email", period="2026-11").json)
    assert past["sla-email"]["credit"] == 10.0


def test_a_target_with_nothing_settled_earns_nothing_and_says_so(reports):
    reports.wall.set("2026-11-05T00:00:00Z")
    reports.post(outage(1, "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z"))
    credits = credits_of(reports.get("/v1/reports/compliance", service="email", period="2026-11").json)
    assert credits["ola-email"] == {"period": "2026-11", "agreement": "ola-email", "customer": "Platform team",
                                    "shadow": False, "of": "compliance", "credit": 0.0, "decided_by": None,
                                    "targets": [], "unmeasured": ["ola-p1-response"]}


def test_slm_report_prints_the_credit_due_as_the_api_reports_it(reports):
    reports.wall.set("2026-11-05T00:00:00Z")
    reports.post(outage(1, "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z") + tickets())
    expected = reports.get("/v1/reports/compliance", service="email", period="2026-11").json
    args = ["report", "--service", "email", "--period", "2026-11", "--db", reports.url,
            "--rules", str(reports.rules)]
    as_json = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["credits"] == expected["credits"]
    text = CliRunner().invoke(main, args, catch_exceptions=False).output
    assert "service credit of sla-email (Finance): 10 % (availability of email-availability 99.8611 % < 99.9 %)" \
        in text.splitlines()
    assert "service credit of ola-email (Platform team): 15 % (compliance of ola-p1-response 50 % < 60 %)" \
        in text.splitlines()


def test_the_service_review_shows_the_credit_due(reports):
    reports.wall.set("2026-11-05T00:00:00Z")
    reports.post(outage(1, "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z") + tickets())
    client = _signed_in(reports, "auditor")
    page = client.get("/ui/reports/email/2026-11").get_data(as_text=True)
    assert "Service credits due for 2026-11" in page
    row = re.search(r'<tr data-agreement="sla-email">(.*?)</tr>', page, re.S).group(1)
    assert "Finance" in row and "email-availability: availability 99.8611 %" in row
    assert '<td class="credit">10 % of the month\'s charge</td>' in row
    october = client.get("/ui/reports/email/2026-10").get_data(as_text=True)
    assert "ola-p1-response: not measured" in october


def _signed_in(reports, role):
    from api.app import create_app
    client = create_app(reports.service).test_client()
    form = client.get("/ui/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    assert client.post("/ui/login", data={"token": reports.tokens[role], "csrf": csrf}).status_code == 302
    return client
