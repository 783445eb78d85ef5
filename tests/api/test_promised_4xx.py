"""Every input the trials found answered 500 gets a clear 4xx naming what is wrong (issue
20, item 11): extreme and non-ASCII times, months out of range, a kind that is no string,
a null alert, a body that is not JSON."""
from __future__ import annotations

import json

import pytest

from tests.support import fact_count
from tests.support.api import ALERTS, PROBLEM, auth, get, p1, post

EXTREME = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:60Z"]
NON_ASCII = ["٢٠٢٦-11-05T03:00:00Z", "２０２６-11-05T03:00:00Z"]


@pytest.mark.parametrize("text", EXTREME + NON_ASCII)
def test_a_fact_time_out_of_range_or_in_other_digits_is_422(env, text):
    response = post(env, p1(time=text))
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.json
    assert "time" in response.json["errors"], response.json
    assert fact_count(env.store) == 0


@pytest.mark.parametrize("text", EXTREME + NON_ASCII)
def test_a_cloudevents_time_header_out_of_range_is_422(env, text):
    headers = {**auth(env, "monitor"), "ce-id": "f1", "ce-source": "zabbix/prod", "ce-type": "incident.opened",
               "ce-specversion": "1.0", "ce-time": text, "ce-subject": "INC-1", "ce-service": "email"}
    response = env.client.post("/v1/facts", data=json.dumps({"priority": "P1"}), headers=headers,
                               content_type="application/json")
    assert response.status_code == 422 and "time" in response.json["errors"], response.json


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("text", EXTREME + NON_ASCII)
@pytest.mark.parametrize("path", ["/v1/decisions", "/v1/facts"])
def test_since_and_until_out_of_range_or_in_other_digits_are_400(env, path, name, text):
    response = get(env, path, **{name: text})
    assert response.status_code == 400 and response.mimetype == PROBLEM, response.json
    assert f"query.{name}" in response.json["errors"], response.json


@pytest.mark.parametrize("period", ["0000-01", "9999-12", "2026-13", "2026-00"])
def test_a_report_period_out_of_range_is_400(env, period):
    response = get(env, "/v1/reports/compliance", service="email", period=period)
    assert response.status_code == 400 and "query.period" in response.json["errors"], response.json


@pytest.mark.parametrize("in_force", ["false", "true"])
@pytest.mark.parametrize("kind", ["[a]", "{a: 1}", "5", "null", "[Service]"])
def test_a_rule_document_whose_kind_is_no_string_is_422_at_its_line(env, kind, in_force):
    text = f"kind: {kind}\nid: x\n"
    response = env.client.post(f"/v1/rules/check?in_force={in_force}", json={"files": {"bad.yaml": text}},
                               headers=auth(env, "owner"))
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.json
    (problem,) = response.json["problems"]
    assert (problem["file"], problem["line"]) == ("bad.yaml", 1) and "kind" in problem["message"]


def test_a_yaml_integer_of_5000_digits_is_422_at_its_line(env):
    text = "kind: Calendar\nid: c\ntimezone: UTC\nhours:\n  mon-fri: " + "9" * 5000 + "\n"
    response = post(env, {"files": {"big.yaml": text}}, role="owner", path="/v1/rules/check")
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.json
    (problem,) = response.json["problems"]
    assert (problem["file"], problem["line"]) == ("big.yaml", 5) and "5000 digits" in problem["message"]


def test_a_null_alert_is_set_aside_like_other_bad_alerts(env):
    payload = json.loads((ALERTS / "email-down-firing.json").read_text())
    payload["alerts"] = [None, *payload["alerts"]]
    response = post(env, payload, path="/v1/ingest/alertmanager")
    assert response.status_code == 200 and response.json["accepted"] == 1, response.json
    assert response.json["rejected"] == [{"alert": 0, "fingerprint": None,
                                          "errors": {"_alert": ["expected a JSON object"]}}]


@pytest.mark.parametrize("path", ["/v1/facts", "/v1/ingest/alertmanager", "/v1/rules/check", "/v1/rules/preview"])
def test_a_body_that_is_not_json_is_415(env, path):
    role = "owner" if "rules" in path else "monitor"
    response = env.client.post(path, data=json.dumps(p1()), content_type="text/plain", headers=auth(env, role))
    assert response.status_code == 415 and response.mimetype == PROBLEM, response.json
    assert "text/plain" in response.json["detail"]


@pytest.mark.parametrize("source", ["zabbix/%FF", "zabbix/%C3", "%ED%A0%80"])
def test_broken_percent_encoding_in_a_cloudevents_header_is_400(env, source):
    headers = {**auth(env, "monitor"), "ce-id": "f1", "ce-source": source, "ce-type": "incident.opened",
               "ce-specversion": "1.0", "ce-time": "2026-11-05T03:00:00Z", "ce-subject": "INC-1", "ce-service": "email"}
    response = env.client.post("/v1/facts", data=json.dumps({"priority": "P1"}), headers=headers,
                               content_type="application/json")
    assert response.status_code == 400 and response.mimetype == PROBLEM, response.json
    assert "header.ce-source" in response.json["errors"]
    assert fact_count(env.store) == 0
    headers["ce-source"] = "zabbix/%C3%A9"                  # well-formed: é
    assert env.client.post("/v1/facts", data=json.dumps({"priority": "P1"}), headers=headers,
                           content_type="application/json").status_code == 200
    assert env.store.list_facts(limit=1)[0][0]["fact"]["source"] == "zabbix/é"
