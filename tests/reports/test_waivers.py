"""Waivers with four eyes, on SQLite and PostgreSQL through the real API: a request takes
effect only when a token of another name approves it, reports count waived cycles apart,
revocation ends it, and each step is chained in the audit with the token's name."""
from __future__ import annotations

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
