"""Reports over time and per customer: ``period=YYYY-MM..YYYY-MM`` with a trend per
target, ``customer=``, and the same table as CSV from the API and ``slm report``."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from cli import main
from tests.reports.conftest import outage, tickets


@pytest.fixture
def history(reports):
    """An hour down in September, nothing in October, five hours down and two tickets in
    November (the OLA's compliance 50 %)."""
    reports.wall.set("2026-09-05T00:00:00Z")
    reports.post(outage(1, "2026-09-03T10:00:00Z", "2026-09-03T11:00:00Z"))
    reports.wall.set("2026-11-05T00:00:00Z")
    reports.service.deadlines.tick()
    reports.post(outage(2, "2026-11-03T10:00:00Z", "2026-11-03T15:00:00Z") + tickets())
    return reports


def test_a_range_gives_each_target_over_the_months_and_its_trend(history):
    report = history.get("/v1/reports/compliance", service="email", period="2026-09..2026-11").json
    assert report["months"] == ["2026-09", "2026-10", "2026-11"] and report["period"] == "2026-09..2026-11"
    rows = {r["target"]: r for r in report["targets"]}
    availability = rows["email-availability"]
    # 360 minutes down of 30 + 31 + 30 days: over the months' service time, not a mean of months
    assert availability["availability"] == round(100 * (1 - 360 / (91 * 1440)), 4) == 99.7253
    assert [(m["period"], m["availability"], m["credit"]) for m in availability["trend"]] == [
        ("2026-09", 99.8611, 10.0), ("2026-10", 100.0, 0.0), ("2026-11", 99.3056, 25.0)]
    ola = rows["ola-p1-response"]
    assert (ola["met"], ola["breached"], ola["compliance"], ola["subjects"]) == (1, 1, 50.0, 2)
    assert [(m["period"], m["met"], m["breached"], m["compliance"]) for m in ola["trend"]] == [
        ("2026-09", 0, 0, None), ("2026-10", 0, 0, None), ("2026-11", 1, 1, 50.0)]
    assert [(c["period"], c["agreement"], c["credit"]) for c in report["credits"]] == [
        ("2026-09", "ola-email", 0.0), ("2026-09", "sla-email", 10.0), ("2026-10", "ola-email", 0.0),
        ("2026-10", "sla-email", 0.0), ("2026-11", "ola-email", 15.0), ("2026-11", "sla-email", 25.0)]
    one = history.get("/v1/reports/compliance", service="email", period="2026-11").json
    assert {r["target"]: r["trend"] for r in one["targets"]}["email-availability"] == [availability["trend"][2]]


def test_customer_keeps_the_agreements_naming_it(history):
    report = history.get("/v1/reports/compliance", service="email", period="2026-11", customer="Platform team").json
    assert report["customer"] == "Platform team"
    assert [r["target"] for r in report["targets"]] == ["ola-p1-response"]
    assert [c["agreement"] for c in report["credits"]] == ["ola-email"]
    unknown = history.get("/v1/reports/compliance", service="email", period="2026-11", customer="Platfrom team")
    assert unknown.status_code == 400
    assert unknown.json["errors"]["query.customer"] == [
        "unknown customer 'Platfrom team' (did you mean Platform team? known: Finance, Platform team)"]


@pytest.mark.parametrize("period, message", [
    ("2026-11..2026-09", "2026-11..2026-09: a range's last month comes before its first"),
    ("2020-01..2026-12", "2020-01..2026-12 spans 84 months; at most 60"),
    ("2026-11..", "expected a month as YYYY-MM"),
    ("2026-11...2026-12", "expected a month as YYYY-MM"),
])
def test_a_period_that_is_no_month_or_range_is_a_400_naming_it(reports, period, message):
    response = reports.get("/v1/reports/compliance", service="email", period=period)
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert response.json["errors"]["query.period"][0].startswith(message)


def test_csv_is_the_same_table_from_the_api_and_slm_report(history):
    auditor = {"Authorization": f"Bearer {history.tokens['auditor']}", "Accept": "text/csv"}
    response = history.client.get("/v1/reports/compliance?service=email&period=2026-09..2026-11&customer=Finance",
                                  headers=auditor)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["period"], r["target"]) for r in table] == [
        (p, t) for t in ("email-availability", "email-p1-response")
        for p in ("2026-09", "2026-10", "2026-11", "2026-09..2026-11")]
    september = table[0]
    assert september == {"period": "2026-09", "service": "email", "customer": "Finance", "agreement": "sla-email",
                         "target": "email-availability", "goal": "99.9%", "subjects": "1", "met": "0",
                         "breached": "1", "waived": "0", "compliance": "0", "availability": "99.8611", "credit": "10",
                         "waived_minutes": "", "availability_unwaived": "", "waivers": "", "restated": "",
                         "recorded_compliance": "", "recorded_availability": ""}
    assert table[3]["availability"] == "99.7253" and table[3]["credit"] == ""
    assert table[4]["compliance"] == "" and table[4]["credit"] == ""        # no ticket in September

    cli = CliRunner().invoke(main, ["report", "--service", "email", "--period", "2026-09..2026-11", "--customer",
                                    "Finance", "--db", history.url, "--rules", str(history.rules), "--format", "csv"],
                             catch_exceptions=False)
    assert cli.exit_code == 0, cli.output
    assert cli.stdout_bytes == response.get_data()                   # byte for byte, CRLF as RFC 4180
    as_json = history.get("/v1/reports/compliance", service="email", period="2026-09..2026-11").json
    assert history.client.get("/v1/reports/compliance?service=email&period=2026-09..2026-11", headers={
        "Authorization": auditor["Authorization"], "Accept": "application/json, text/csv;q=0.5"}).json == as_json


def test_slm_report_prints_the_trend_of_a_range(history):
    args = ["report", "--service", "email", "--period", "2026-09..2026-11", "--db", history.url,
            "--rules", str(history.rules)]
    lines = CliRunner().invoke(main, args, catch_exceptions=False).output.splitlines()
    assert lines[0].startswith("compliance of email in 2026-09..2026-11")
    start = lines.index("trend (compliance, availability per month):")
    assert lines[start + 1].split() == ["target", "2026-09", "2026-10", "2026-11"]
    assert lines[start + 2].split() == ["email-availability", "0", "%", "/", "99.8611", "%", "—", "/", "100", "%",
                                        "0", "%", "/", "99.3056", "%"]
    assert "service credit of sla-email (Finance) in 2026-11: 25 % (availability of email-availability " \
           "99.3056 % < 99.5 %)" in lines
    wrong = CliRunner().invoke(main, [*args[:4], "2026-11..2026-09", *args[5:]])
    assert wrong.exit_code == 2 and "a range's last month comes before its first" in wrong.output
    nobody = CliRunner().invoke(main, [*args, "--customer", "Nobody"])
    assert nobody.exit_code == 2 and "no agreement in force names the customer 'Nobody'" in nobody.output
    assert json.loads(CliRunner().invoke(main, [*args, "--json"]).output)["months"] == ["2026-09", "2026-10", "2026-11"]


def test_the_api_document_describes_the_period_the_customer_and_csv(reports):
    document = reports.client.get("/openapi.json").json
    operation = document["paths"]["/v1/reports/compliance"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["customer"]["schema"]["enum"] == ["Finance", "Platform team"]
    assert not parameters["customer"].get("required")
    pattern = parameters["period"]["schema"]["pattern"]
    import re
    assert all(re.search(pattern, ok) for ok in ("2026-11", "2026-09..2026-11", "1970-01..9998-12"))
    assert not any(re.search(pattern, bad) for bad in ("2026-13", "2026-11..", "2026-11..2026-1", "26-11"))
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv"} and content["text/csv"]["schema"] == {"type": "string"}
    schemas = document["components"]["schemas"]
    assert "trend" in schemas["TargetReport"]["properties"] and "credits" in schemas["ComplianceReport"]["properties"]
