"""Waivers with four eyes, on SQLite and PostgreSQL through the real API: a request takes
effect only when a token of another name approves it, reports count waived cycles apart,
revocation ends it, and each step is chained in the audit with the token's name."""
from __future__ import annotations

import csv
import io
import json
import re

import pytest
from click.testing import CliRunner

from cli import main
from tests.reports.conftest import tickets


@pytest.fixture
def breached(reports):
    """INC-A met and INC-B breached the OLA's 10 minutes (its breach at 09:10)."""
    reports.wall.set("2026-11-05T00:00:00Z")
    reports.post(tickets())
    decisions = reports.get("/v1/decisions", target="ola-p1-response").json["items"]
    reports.breach = next(d for d in decisions if d["kind"] == "breach" and d["subject"] == "INC-B")
    reports.met = next(d for d in decisions if d["kind"] == "met" and d["subject"] == "INC-A")
    return reports


def ola(reports) -> dict:
    report = reports.get("/v1/reports/compliance", service="email", period="2026-11").json
    row = next(r for r in report["targets"] if r["target"] == "ola-p1-response")
    credit = next(c for c in report["credits"] if c["agreement"] == "ola-email")
    return {"met": row["met"], "breached": row["breached"], "waived": row["waived"],
            "compliance": row["compliance"], "credit": credit["credit"]}


def test_a_waiver_takes_effect_only_when_another_token_approves_it_and_ends_when_revoked(breached):
    env = breached
    before = {"met": 1, "breached": 1, "waived": 0, "compliance": 50.0, "credit": 15.0}
    assert ola(env) == before
    asked = env.as_("owner", "/v1/waivers", {"decision": env.breach["id"], "reason": "the customer's VPN was down"})
    assert asked.status_code == 201, asked.json
    waiver = asked.json
    assert (waiver["status"], waiver["requested_by"], waiver["decision"]) == ("requested", "owner-token",
                                                                             env.breach["id"])
    assert ola(env) == before                                             # requested is not in effect

    same = env.as_("owner", f"/v1/waivers/{waiver['id']}/approve")
    assert same.status_code == 403 and "another token must approve it (four eyes)" in same.json["detail"]
    assert env.store.waiver(waiver["id"])["status"] == "requested"        # the refusal recorded nothing

    approved = env.as_("second-owner", f"/v1/waivers/{waiver['id']}/approve")
    assert approved.status_code == 200
    assert (approved.json["status"], approved.json["approved_by"]) == ("approved", "second-owner")
    # the breached cycle is counted apart: 1 met of 1 judged, no credit below 95 %
    assert ola(env) == {"met": 1, "breached": 0, "waived": 1, "compliance": 100.0, "credit": 0.0}
    assert env.as_("second-owner", f"/v1/waivers/{waiver['id']}/approve").status_code == 409

    revoked = env.as_("owner", f"/v1/waivers/{waiver['id']}/revoke", {"reason": "the VPN log shows it was up"})
    assert revoked.status_code == 200 and revoked.json["revoked_by"] == "owner-token"
    assert ola(env) == before
    assert env.as_("owner", f"/v1/waivers/{waiver['id']}/revoke", {"reason": "again"}).status_code == 409
    assert env.as_("second-owner", f"/v1/waivers/{waiver['id']}/approve").status_code == 409
    assert env.get("/v1/waivers", status="revoked").json["items"] == [revoked.json]
    assert env.get(f"/v1/waivers/{waiver['id']}").json == revoked.json


def test_a_period_waiver_takes_out_every_cycle_of_its_target_settled_in_it(breached):
    env = breached                       # INC-A met at 09:05, INC-B breached at 09:10
    asked = env.as_("owner", "/v1/waivers", {"target": "ola-p1-response", "since": "2026-11-03T09:06:00+01:00",
                                             "until": "2026-11-03T08:10:00Z", "reason": "planned failover"})
    assert asked.status_code == 201 and asked.json["since"] == "2026-11-03T08:06:00Z"
    env.as_("second-owner", f"/v1/waivers/{asked.json['id']}/approve")
    assert ola(env)["waived"] == 0                        # 08:06..08:10 UTC holds neither
    wide = env.as_("owner", "/v1/waivers", {"target": "ola-p1-response", "since": "2026-11-03T09:05:00Z",
                                            "until": "2026-11-03T09:10:00.000001Z", "reason": "planned failover"})
    env.as_("second-owner", f"/v1/waivers/{wide.json['id']}/approve")
    assert ola(env) == {"met": 0, "breached": 0, "waived": 2, "compliance": None, "credit": 0.0}
    sla = next(r for r in env.get("/v1/reports/compliance", service="email", period="2026-11").json["targets"]
               if r["target"] == "email-p1-response")
    assert (sla["met"], sla["waived"]) == (2, 0)          # another target's cycles are not touched


@pytest.mark.parametrize("body, field, message", [
    ({"reason": "x"}, "json.target", "give a decision, or a target with since and until"),
    ({"decision": "dec_nope", "reason": "x"}, "json.decision", "no decision 'dec_nope'"),
    ({"decision": "dec_x", "target": "ola-p1-response", "reason": "x"}, "json.decision", "not both"),
    ({"target": "ola-p1-response", "since": "2026-11-03T10:00:00Z", "until": "2026-11-03T09:00:00Z",
      "reason": "x"}, "json.until", "until must come after since"),
    ({"target": "nope", "since": "2026-11-03T09:00:00Z", "until": "2026-11-03T10:00:00Z", "reason": "x"},
     "json.target", "unknown target 'nope'"),
    ({"decision": "dec_x", "reason": "   "}, "json.reason", "give a reason"),
])
def test_a_wrong_request_is_a_422_naming_the_field_and_records_nothing(breached, body, field, message):
    response = breached.as_("owner", "/v1/waivers", body)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert any(message in text for text in response.json["errors"][field]), response.json
    assert breached.store.waivers() == []


def test_only_a_met_or_breach_decision_can_be_waived_and_only_owners_ask(breached):
    escalation = breached.get("/v1/decisions", kind="escalation").json["items"][0]
    response = breached.as_("owner", "/v1/waivers", {"decision": escalation["id"], "reason": "x"})
    assert response.status_code == 422
    assert "is a escalation: only a met or breach decision" in response.json["errors"]["json.decision"][0]
    assert breached.as_("monitor", "/v1/waivers", {"decision": breached.breach["id"], "reason": "x"}).status_code == 403
    assert breached.as_("auditor", "/v1/waivers", {"decision": breached.breach["id"], "reason": "x"}).status_code == 403


def test_each_step_is_chained_with_its_token_name_and_an_edit_is_named(breached):
    env = breached
    waiver = env.as_("owner", "/v1/waivers", {"decision": env.breach["id"], "reason": "VPN"}).json
    env.as_("second-owner", f"/v1/waivers/{waiver['id']}/approve")
    env.as_("owner", f"/v1/waivers/{waiver['id']}/revoke", {"reason": "not so"})
    auditor = {"Authorization": f"Bearer {env.tokens['auditor']}"}
    chain = env.client.get("/v1/audit/verify", headers=auditor).json["chains"]["waivers"]
    assert chain["ok"] and chain["checked"] == 3
    rows = env.store.db.execute_sql("SELECT event, by FROM waiver_events ORDER BY seq").fetchall()
    assert [tuple(r) for r in rows] == [("requested", "owner-token"), ("approved", "second-owner"),
                                        ("revoked", "owner-token")]
    env.store.db.execute_sql("UPDATE waiver_events SET by = 'owner-token' WHERE event = 'approved'")
    broken = env.client.get("/v1/audit/verify", headers=auditor).json
    assert not broken["ok"] and broken["chains"]["waivers"]["first_broken"]["seq"] == 2
    assert broken["chains"]["waivers"]["first_broken"]["id"] == waiver["id"]
    cli = CliRunner().invoke(main, ["audit", "verify", "--db", env.url])
    assert cli.exit_code == 1 and f"BROKEN at waiver event seq 2 ({waiver['id']})" in cli.output


def test_the_trace_and_the_console_show_the_waiver(breached):
    env = breached
    waiver = env.as_("owner", "/v1/waivers", {"decision": env.breach["id"], "reason": "the customer's VPN"}).json
    env.as_("second-owner", f"/v1/waivers/{waiver['id']}/approve")
    trace = env.get(f"/v1/decisions/{env.breach['id']}/trace").json
    assert [(w["id"], w["status"], w["approved_by"]) for w in trace["waivers"]] == [
        (waiver["id"], "approved", "second-owner")]
    assert env.get(f"/v1/decisions/{env.met['id']}/trace").json["waivers"] == []

    client = env.client
    form = client.get("/ui/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    client.post("/ui/login", data={"token": env.tokens["auditor"], "csrf": csrf})
    page = client.get(f"/ui/decisions/{env.breach['id']}").get_data(as_text=True)
    note = re.search(rf'<p class="waiver approved" role="note" data-waiver="{waiver["id"]}">(.*?)</p>', page, re.S)
    assert note and "the customer&#39;s VPN" in note.group(1) and "Requested by owner-token" in note.group(1)
    assert "approved by second-owner" in note.group(1) and "count this cycle as waived" in note.group(1)
    review = client.get("/ui/reports/email/2026-11").get_data(as_text=True)
    row = re.search(r'<tr data-target="ola-p1-response">(.*?)</tr>', review, re.S).group(1)
    assert '<td class="waived">1</td>' in row


def test_slm_waiver_keeps_the_same_four_eyes(breached):
    env = breached
    base = ["--db", env.url]

    def run(token, *args):
        return CliRunner(env={"SLM_TOKEN": env.tokens[token]}).invoke(main, ["waiver", *args, *base])

    asked = run("owner", "request", "--decision", env.breach["id"], "--reason", "VPN", "--rules", str(env.rules))
    assert asked.exit_code == 0, asked.output
    waiver = json.loads(asked.output)
    same = run("owner", "approve", waiver["id"])
    assert same.exit_code == 1 and "refused (403)" in same.output and "four eyes" in same.output
    assert run("auditor", "approve", waiver["id"]).exit_code == 2            # not an owner token
    approved = run("second-owner", "approve", waiver["id"])
    assert approved.exit_code == 0 and json.loads(approved.output)["approved_by"] == "second-owner"
    assert ola(env)["waived"] == 1                                          # the running service sees it
    listed = CliRunner().invoke(main, ["waiver", "list", "--status", "approved", *base])
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == [waiver["id"]]
    period = run("owner", "request", "--target", "ola-p1-response", "--since", "2026-11-03T09:00:00Z",
                 "--reason", "x")
    assert period.exit_code == 2 and "give --decision, or --target with --since and --until" in period.output


def availability(reports, period="2026-11") -> dict:
    report = reports.get("/v1/reports/compliance", service="email", period=period).json
    row = next(r for r in report["targets"] if r["target"] == "email-availability")
    credit = next(c for c in report["credits"] if c["agreement"] == "sla-email")
    return {"availability": row["availability"], "waived_time": row["waived_time"], "credit": credit["credit"],
            "trend": row["trend"]}


def test_a_waived_period_takes_its_down_and_service_time_out_of_the_window(reports):
    """30 minutes down on the 10th, an hour on the 12th: 90 of November's 43,200 minutes,
    99.7917 % and a 10 % credit. Waiving 01:00-04:00 of the 12th takes out 180 minutes of
    service time and the 60 down in them: 30 of 43,020, 99.9303 %, no credit; the figure
    unwaived stays beside it with the waiver named."""
    from tests.reports.conftest import outage
    env = reports
    env.wall.set("2026-12-02T00:00:00Z")
    env.post(outage(1, "2026-11-10T10:00:00Z", "2026-11-10T10:30:00Z")
             + outage(2, "2026-11-12T02:00:00Z", "2026-11-12T03:00:00Z"))
    before = availability(env)
    assert (before["availability"], before["waived_time"], before["credit"]) == (99.7917, None, 10.0)
    with env.service.state.write_lock:
        engine = env.service.state.engine
        spans = engine.window_down_spans("email-availability", "2026-11")
        down, _ = engine.window_reading("email-availability", "2026-11")
    assert [(b - a).total_seconds() / 60 for a, b in spans] == [30, 60]
    assert sum((b - a for a, b in spans), type(down)(0)) == down          # the spans are what the clock counted

    asked = env.as_("owner", "/v1/waivers", {"target": "email-availability", "since": "2026-11-12T01:00:00Z",
                                             "until": "2026-11-12T04:00:00Z", "reason": "the DC's power test"}).json
    assert availability(env)["waived_time"] is None                       # requested only: nothing changes
    env.as_("second-owner", f"/v1/waivers/{asked['id']}/approve")
    after = availability(env)
    assert (after["availability"], after["credit"]) == (99.9303, 0.0)
    taken = after["waived_time"]
    assert (taken["down_minutes"], taken["service_minutes"], taken["availability_unwaived"]) == (60.0, 180.0, 99.7917)
    assert [(w["id"], w["reason"], w["approved_by"]) for w in taken["waivers"]] == [
        (asked["id"], "the DC's power test", "second-owner")]
    assert after["trend"][0]["waived_time"] == taken and after["trend"][0]["availability"] == 99.9303
    assert availability(env) == after                                     # deterministic: read again, the same
    shown_where_reports_are_read(env, asked["id"])

    # a second waiver overlapping the first and half of the other outage: overlaps count once
    half = env.as_("owner", "/v1/waivers", {"target": "email-availability", "since": "2026-11-12T03:30:00Z",
                                            "until": "2026-11-12T05:00:00Z", "reason": "UPS swap"}).json
    wide = env.as_("owner", "/v1/waivers", {"target": "email-availability", "since": "2026-11-10T10:15:00Z",
                                            "until": "2026-11-10T10:45:00Z", "reason": "UPS swap"}).json
    for waiver in (half, wide):
        env.as_("second-owner", f"/v1/waivers/{waiver['id']}/approve")
    taken = availability(env)["waived_time"]
    assert (taken["down_minutes"], taken["service_minutes"]) == (75.0, 180.0 + 60 + 30)
    assert [w["id"] for w in taken["waivers"]] == [wide["id"], asked["id"], half["id"]]   # by their since
    assert availability(env)["availability"] == round((1 - 15 / (43200 - 270)) * 100, 4)

    for waiver in (asked, half, wide):
        env.as_("owner", f"/v1/waivers/{waiver['id']}/revoke", {"reason": "not so"})
    assert availability(env)["availability"] == 99.7917 and availability(env)["waived_time"] is None


def test_a_period_waiver_of_a_month_nothing_went_down_in_takes_only_service_time(reports):
    env = reports
    env.wall.set("2026-12-02T00:00:00Z")
    env.post(outage_elsewhere())
    waiver = env.as_("owner", "/v1/waivers", {"target": "email-availability", "since": "2026-10-31T00:00:00Z",
                                              "until": "2026-11-01T12:00:00Z", "reason": "migration"}).json
    env.as_("second-owner", f"/v1/waivers/{waiver['id']}/approve")
    figures = availability(env)
    assert figures["availability"] == 100.0 and figures["waived_time"]["down_minutes"] == 0.0
    assert figures["waived_time"]["service_minutes"] == 720.0            # only the part inside November


def outage_elsewhere() -> list[dict]:
    """A December outage: November's window has no clock (quiet), yet the engine has seen facts."""
    from tests.reports.conftest import outage
    return outage(9, "2026-12-01T10:00:00Z", "2026-12-01T10:05:00Z")


def shown_where_reports_are_read(env, waiver_id: str) -> None:
    """The console's service review, ``slm report``'s text and the CSV name the waiver and
    keep the figure unwaived beside the waived one."""
    client = env.client
    form = client.get("/ui/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    client.post("/ui/login", data={"token": env.tokens["auditor"], "csrf": csrf})
    page = client.get("/ui/reports/email/2026-11").get_data(as_text=True)
    note = re.search(r'<p class="waived-time" role="note" data-target="email-availability">(.*?)</p>', page, re.S)
    assert note, page
    assert "60 min down in 180 min of service time" in note.group(1)
    assert "availability is 99.9303 % (unwaived 99.7917 %)" in note.group(1)
    assert waiver_id in note.group(1) and "the DC&#39;s power test" in note.group(1)
    text = CliRunner().invoke(main, ["report", "--service", "email", "--period", "2026-11", "--db", env.url])
    assert text.exit_code == 0, text.output
    assert "waived from email-availability: 60 min down in 180 min of service time (availability unwaived " \
           "99.7917 %)" in text.output
    assert waiver_id in text.output and "approved by second-owner" in text.output
    table = env.client.get("/v1/reports/compliance", query_string={"service": "email", "period": "2026-11"},
                           headers={"Authorization": f"Bearer {env.tokens['auditor']}", "Accept": "text/csv"})
    row = next(r for r in csv.DictReader(io.StringIO(table.get_data(as_text=True)))
               if r["target"] == "email-availability")
    assert (row["availability"], row["waived_minutes"], row["availability_unwaived"], row["waivers"]) == (
        "99.9303", "60", "99.7917", waiver_id)
