"""Restatements that keep the past, on SQLite and PostgreSQL through the real API: a
settled month evaluated again under the rules now in force is recorded as superseding
decisions that name what they replace; it counts in reports only once a token of another
name approves it, the recorded decisions and figures stay readable, revocation ends it, and
each step is chained in the audit."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import main
from tests.reports.conftest import CREDIT_RULES, outage, tickets


@pytest.fixture
def settled(reports):
    """November 2026 as recorded under a 10-minute OLA (INC-B breached it at 09:10) with a
    50-minute outage; then, on 5 December, a rule change that gives the OLA 15 minutes."""
    env = reports
    env.wall.set("2026-11-05T00:00:00Z")
    env.post(tickets())
    env.wall.set("2026-11-11T00:00:00Z")
    env.post(outage(1, "2026-11-10T10:00:00Z", "2026-11-10T10:50:00Z"))
    env.breach = next(d for d in env.get("/v1/decisions", target="ola-p1-response", kind="breach").json["items"])
    env.old_version = env.get("/v1/rules").json["version"]
    env.wall.set("2026-12-05T00:00:00Z")
    (env.rules / "rules.yaml").write_text(CREDIT_RULES.replace("goal: 10m", "goal: 15m"))
    reloaded = env.as_("owner", "/v1/rules/reload")
    assert reloaded.status_code == 200, reloaded.json
    return env


def ola(env) -> dict:
    report = env.get("/v1/reports/compliance", service="email", period="2026-11").json
    row = next(r for r in report["targets"] if r["target"] == "ola-p1-response")
    credit = next(c for c in report["credits"] if c["agreement"] == "ola-email")
    return {"met": row["met"], "breached": row["breached"], "compliance": row["compliance"],
            "credit": credit["credit"], "restated": row["trend"][0]["restated"],
            "original": row["trend"][0]["original"], "notes": [n["id"] for n in report["restatements"]]}


def test_a_restatement_supersedes_what_the_new_rules_decide_otherwise_once_another_token_approves(settled):
    env = settled
    recorded = {"met": 1, "breached": 1, "compliance": 50.0, "credit": 15.0, "restated": None, "original": None,
                "notes": []}
    assert ola(env) == recorded
    asked = env.as_("owner", "/v1/restatements", {"service": "email", "period": "2026-11",
                                                  "reason": "the OLA was signed at 15 minutes, not 10"})
    assert asked.status_code == 201, asked.json
    restatement = asked.json
    assert (restatement["status"], restatement["requested_by"]) == ("requested", "owner-token")
    assert restatement["rules"] == env.get("/v1/rules").json["version"] != env.old_version
    # INC-B's OLA cycle is met now: its met supersedes the breach and the breach's escalation;
    # INC-A's met stands, priced at the new budget, so it supersedes the recorded met
    (inc_a, inc_b) = restatement["decisions"]
    assert (inc_b["kind"], inc_b["subject"], inc_b["data"]["counted"], inc_b["data"]["budget"]) == (
        "met", "INC-B", "12m", "15m")
    escalation = next(d for d in env.get("/v1/decisions", target="ola-p1-response", kind="escalation").json["items"]
                      if d["subject"] == "INC-B")
    assert sorted(inc_b["supersedes"]) == sorted([env.breach["id"], escalation["id"]])
    recorded_met = next(d for d in env.get("/v1/decisions", target="ola-p1-response", kind="met").json["items"])
    assert (inc_a["kind"], inc_a["subject"], inc_a["supersedes"]) == ("met", "INC-A", [recorded_met["id"]])
    assert [d["id"] for d in restatement["decisions"]] == [f"{restatement['id']}-1", f"{restatement['id']}-2"]
    assert restatement["withdraws"] == []
    assert {d["target"] for d in restatement["decisions"]} == {"ola-p1-response"}     # the rest stands
    assert restatement["windows"]["email-availability"] == [50 * 60 * 10**6, 30 * 24 * 3600 * 10**6]
    assert ola(env) == recorded                                            # requested is not in effect

    same = env.as_("owner", f"/v1/restatements/{restatement['id']}/approve")
    assert same.status_code == 403 and "another token must approve it (four eyes)" in same.json["detail"]
    approved = env.as_("second-owner", f"/v1/restatements/{restatement['id']}/approve")
    assert approved.status_code == 200 and approved.json["approved_by"] == "second-owner"
    assert ola(env) == {"met": 2, "breached": 0, "compliance": 100.0, "credit": 0.0, "restated": restatement["id"],
                        "original": {"subjects": 2, "met": 1, "breached": 1, "waived": 0, "compliance": 50.0,
                                     "availability": None, "waived_time": None},
                        "notes": [restatement["id"]]}
    note = env.get("/v1/reports/compliance", service="email", period="2026-11").json["restatements"][0]
    assert note["reason"] == "the OLA was signed at 15 minutes, not 10" and note["approved_by"] == "second-owner"
    # nothing recorded changed: the breach is still there, not retracted
    breach = env.get(f"/v1/decisions/{env.breach['id']}").json
    assert breach["kind"] == "breach" and not breach.get("retracted_by")

    revoked = env.as_("owner", f"/v1/restatements/{restatement['id']}/revoke", {"reason": "signed at 10 after all"})
    assert revoked.status_code == 200 and revoked.json["status"] == "revoked"
    assert ola(env) == recorded
    assert env.as_("second-owner", f"/v1/restatements/{restatement['id']}/approve").status_code == 409
    assert env.get("/v1/restatements", status="revoked").json["items"] == [revoked.json]


def test_a_restated_month_takes_a_waived_period_out_of_the_down_time_it_recorded(settled):
    """The restatement records when the window counted down time (10:00-10:50 on the 10th);
    a waiver of 10:30-11:00 takes 20 of those 50 minutes and 30 of service time out of the
    restated figure and of the recorded one beside it alike."""
    env = settled
    restatement = env.as_("owner", "/v1/restatements", {"service": "email", "period": "2026-11",
                                                        "reason": "OLA at 15m"}).json
    assert restatement["down_spans"] == {"email-availability": [["2026-11-10T10:00:00Z", "2026-11-10T10:50:00Z"]]}
    env.as_("second-owner", f"/v1/restatements/{restatement['id']}/approve")
    waiver = env.as_("owner", "/v1/waivers", {"target": "email-availability", "since": "2026-11-10T10:30:00Z",
                                              "until": "2026-11-10T11:00:00Z", "reason": "failover drill"}).json
    env.as_("second-owner", f"/v1/waivers/{waiver['id']}/approve")
    report = env.get("/v1/reports/compliance", service="email", period="2026-11").json
    month = next(r for r in report["targets"] if r["target"] == "email-availability")["trend"][0]
    assert month["restated"] == restatement["id"]
    assert (month["waived_time"]["down_minutes"], month["waived_time"]["service_minutes"]) == (20.0, 30.0)
    assert month["availability"] == round((1 - 30 / (43200 - 30)) * 100, 4)
    assert month["original"]["waived_time"] == month["waived_time"]
    assert month["original"]["availability"] == month["availability"]          # the rules changed no window


def test_restating_under_the_version_that_decided_changes_nothing(settled):
    env = settled
    asked = env.as_("owner", "/v1/restatements", {"service": "email", "period": "2026-11", "reason": "check",
                                                  "rules": env.old_version[:20]})
    assert asked.status_code == 201, asked.json
    assert (asked.json["rules"], asked.json["decisions"], asked.json["withdraws"]) == (env.old_version, [], [])


@pytest.mark.parametrize("body, field, message, stated", [
    ({"service": "email", "period": "2026-12", "reason": "x"}, "json.period", "2026-12 is not settled", False),
    ({"service": "email", "period": "2026-11", "reason": "x", "rules": "sha256:nope"}, "json.rules",
     "names no version put in force", False),
    ({"service": "email", "period": "2026-11", "reason": "  "}, "json.reason", "give a reason", True),
    ({"service": "email", "period": "2026-11..2026-12", "reason": "x"}, "json.period", "expected YYYY-MM", True),
])
def test_a_wrong_request_is_a_422_naming_the_field_and_records_nothing(settled, body, field, message, stated):
    from tests.support.fuzz_hooks import unstatable
    response = settled.as_("owner", "/v1/restatements", body)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert any(message in text for text in response.json["errors"][field]), response.json
    # what the API document cannot state, the fuzzing hooks know; what it states, they do not excuse
    assert unstatable(response.json["errors"]) is not stated
    assert settled.store.restatements() == []
    assert settled.as_("auditor", "/v1/restatements", {"service": "email", "period": "2026-11",
                                                       "reason": "x"}).status_code == 403


def test_each_step_is_chained_and_slm_restate_keeps_the_four_eyes(settled):
    env = settled
    base = ["--db", env.url]

    def run(token, *args):
        return CliRunner(env={"SLM_TOKEN": env.tokens[token]}).invoke(main, [*args, *base])

    asked = run("owner", "restate", "--service", "email", "--period", "2026-11", "--reason", "OLA at 15m")
    assert asked.exit_code == 0, asked.output
    restatement = json.loads(asked.output)
    same = run("owner", "restatement", "approve", restatement["id"])
    assert same.exit_code == 1 and "refused (403)" in same.output and "four eyes" in same.output
    approved = run("second-owner", "restatement", "approve", restatement["id"])
    assert approved.exit_code == 0 and json.loads(approved.output)["approved_by"] == "second-owner"
    assert ola(env)["restated"] == restatement["id"]                     # the running service sees it
    listed = CliRunner().invoke(main, ["restatement", "list", "--status", "approved", *base])
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == [restatement["id"]]

    auditor = {"Authorization": f"Bearer {env.tokens['auditor']}"}
    chain = env.client.get("/v1/audit/verify", headers=auditor).json["chains"]["restatements"]
    assert chain["ok"] and chain["checked"] == 2
    env.store.db.execute_sql("UPDATE restatement_events SET body = REPLACE(body, 'OLA at 15m', 'OLA at 20m')")
    broken = env.client.get("/v1/audit/verify", headers=auditor).json["chains"]["restatements"]
    assert not broken["ok"] and broken["first_broken"]["id"] == restatement["id"]


def test_the_note_and_the_recorded_figures_show_where_reports_are_read(settled):
    """The console's service review and ``slm report``'s text give the restated month's
    note (reason, rules, requester, approver) and the recorded figure beside the restated
    one; the CSV names the restatement and keeps the recorded figures."""
    import csv
    import io
    import re
    env = settled
    restatement = env.as_("owner", "/v1/restatements", {"service": "email", "period": "2026-11",
                                                        "reason": "OLA signed at 15m"}).json
    env.as_("second-owner", f"/v1/restatements/{restatement['id']}/approve")
    client = env.client
    form = client.get("/ui/login").get_data(as_text=True)
    client.post("/ui/login", data={"token": env.tokens["auditor"],
                                   "csrf": re.search(r'name="csrf" value="([^"]+)"', form).group(1)})
    page = client.get("/ui/reports/email/2026-11").get_data(as_text=True)
    note = re.search(rf'<p class="restated" role="note" data-restatement="{restatement["id"]}">(.*?)</p>', page, re.S)
    assert note, page
    assert "“OLA signed at 15m”" in note.group(1) and "requested by owner-token and approved by second-owner" \
        in note.group(1)
    row = re.search(r'<tr data-target="ola-p1-response">(.*?)</tr>', page, re.S).group(1)
    assert '100 % <span class="recorded">(recorded 50 %)</span>' in row
    trend = re.search(r'<table class="trend" data-target="ola-p1-response">(.*?)</table>', page, re.S).group(1)
    month = re.search(r'<tr data-period="2026-11">(.*?)</tr>', trend, re.S).group(1)
    assert "100 % <span class=\"recorded\">(restated; recorded 50 %)</span>" in month
    october = client.get("/ui/reports/email/2026-10").get_data(as_text=True)
    assert 'class="restated"' not in october and "(recorded" not in october.split('<table class="trend"')[0]

    text = CliRunner().invoke(main, ["report", "--service", "email", "--period", "2026-11", "--db", env.url])
    assert text.exit_code == 0, text.output
    assert f"restated 2026-11 ({restatement['id']}): 'OLA signed at 15m', under rules {restatement['rules'][:19]}…, " \
           "requested by owner-token, approved by second-owner at " in text.output
    assert "  ola-p1-response: met 2, breached 0, waived 0, compliance 100 %, availability — restated; " \
           "met 1, breached 1, waived 0, compliance 50 %, availability — as recorded" in text.output
    table = client.get("/v1/reports/compliance", query_string={"service": "email", "period": "2026-11"},
                       headers={"Authorization": f"Bearer {env.tokens['auditor']}", "Accept": "text/csv"})
    line = next(r for r in csv.DictReader(io.StringIO(table.get_data(as_text=True)))
                if r["target"] == "ola-p1-response")
    assert (line["compliance"], line["restated"], line["recorded_compliance"]) == ("100", restatement["id"], "50")
