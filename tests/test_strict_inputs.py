"""Strict inputs (issue 11, part 4): RFC 3339 times exactly, CloudEvents binary mode as the
SDK sends it, query parameters checked."""
from __future__ import annotations

import json

import pytest

from conftest import fact, fact_count
from engine.service.recovery import rebuild
from engine.store.base import every
from schemas.values import parse_rfc3339
from test_api import PROBLEM, auth, env, get, p1, post  # noqa: F401  (env is a fixture)


@pytest.mark.parametrize("text", ["20261105T030000Z", "2026-W45-4T03:00:00Z", "2026-11-05T03Z",
                                  "2026-11-05 03:00:00Z", "2026-11-05T03:00Z", "2026-11-05T03:00:00+0100",
                                  "2026-11-05", "2026-11-05T03:00:00.Z"])
def test_times_are_rfc_3339_exactly(env, text):
    response = post(env, p1(time=text))
    assert response.status_code == 422 and "time" in response.json["errors"], (text, response.json)
    assert fact_count(env.store) == 0


def test_a_leap_second_is_normalised_and_offsets_are_kept_to_the_instant(env):
    assert parse_rfc3339("2016-12-31T23:59:60Z").isoformat() == "2017-01-01T00:00:00+00:00"
    assert parse_rfc3339("2026-11-05T04:00:00.123456789+01:00").isoformat() == "2026-11-05T03:00:00.123456+00:00"
    response = post(env, p1(time="2026-11-05t03:00:00z"))
    assert response.status_code == 200, response.json


def test_cloudevents_binary_mode_without_content_type_is_json(env):
    headers = {**auth(env, "monitor"), "ce-specversion": "1.0", "ce-id": "ce-b1", "ce-source": "itsm/prod",
               "ce-type": "incident.opened", "ce-time": "2026-11-05T03:00:00Z", "ce-subject": "INC-9",
               "ce-service": "email"}
    response = env.client.post("/v1/facts", data=json.dumps({"priority": "P1"}), headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["accepted"] == 1


@pytest.mark.parametrize("path, query, bad", [
    ("/v1/decisions", {"servise": "email"}, "query.servise"),
    ("/v1/facts", {"subjekt": "INC-1"}, "query.subjekt"),
    ("/v1/notifications", {"state": "pending"}, "query.state"),
    ("/v1/clocks", {"services": "email"}, "query.services"),
    ("/v1/decisions", {"subject": "INC-\x00"}, "query.subject"),
])
def test_unknown_query_parameters_are_400_listing_the_allowed_ones(env, path, query, bad):
    response = get(env, path, **query)
    assert response.status_code == 400 and response.mimetype == PROBLEM, response.json
    assert bad in response.json["errors"]
    if "unknown" in response.json["errors"][bad][0]:
        assert "allowed:" in response.json["errors"][bad][0]


def test_a_repeat_of_source_and_id_with_another_body_is_409_naming_the_first_outcome(env):
    first = post(env, p1())
    assert first.status_code == 200
    same = post(env, p1(time="2026-11-05T04:00:00+01:00"))            # the same instant: a duplicate
    assert same.status_code == 200 and same.json["duplicates"] == 1
    other = post(env, [p1("f2", subject="INC-2"), p1(subject="INC-9")])
    assert other.status_code == 409 and other.mimetype == PROBLEM, other.json
    message = other.json["errors"]["[1].id"][0]
    assert "another body" in message and first.json["results"][0]["decisions"][0] in message
    assert fact_count(env.store) == 1                                    # nothing of that request stored


# ---- the time as posted ----------------------------------------------------------------------

def test_the_posted_time_string_is_kept_beside_the_utc_instant(env):
    posted = [p1("f1", time="2026-11-05T04:00:00.5+01:00"), p1("f2", subject="INC-2", time="2016-12-31T23:59:60Z")]
    assert post(env, posted).status_code == 200
    items = {i["fact"]["id"]: i["fact"] for i in get(env, "/v1/facts").json["items"]}
    assert (items["f1"]["time"], items["f1"]["time_posted"]) == ("2026-11-05T03:00:00.5Z", "2026-11-05T04:00:00.5+01:00")
    assert (items["f2"]["time"], items["f2"]["time_posted"]) == ("2017-01-01T00:00:00Z", "2016-12-31T23:59:60Z")
    breach = get(env, "/v1/decisions", kind="breach", target="email-p1-response").json["items"][0]
    assert breach["at"] == "2026-11-05T03:15:00.5Z"                     # the engine works on the instant
    trace = get(env, f"/v1/decisions/{breach['id']}/trace").json
    assert {c["ref"]: c for c in trace["children"]}["fact:f1"]["fact"]["time_posted"] == "2026-11-05T04:00:00.5+01:00"
    assert get(env, "/v1/audit/verify").json["chains"]["facts"]["ok"]    # the posted string is chained


def test_the_posted_time_cannot_be_posted(env):
    response = post(env, {**p1(), "time_posted": "2026-11-05T03:00:00Z"})
    assert response.status_code == 422 and "time_posted" in response.json["errors"], response.json
    assert fact_count(env.store) == 0


def test_facts_posted_with_offsets_replay_to_what_was_recorded(env):
    env.wall.set("2026-11-05T06:00:00Z")
    post(env, [p1("f1", time="2026-11-05T04:00:00+01:00"),
               fact("a1", type="incident.acknowledged", subject="INC-1", time="2026-11-04T22:10:00-05:00")])
    recorded = {d["id"]: d for d in every(env.store.list_decisions)}
    rebuilt = rebuild(env.store, env.service.ruleset, history=True, retain=None, snapshots=False)
    assert rebuilt.replayed == 2
    replayed = {d.id: d.as_dict() for d in rebuilt.engine.state.history.decisions}
    assert replayed and set(replayed) <= set(recorded)
    assert all(replayed[i] == {k: recorded[i][k] for k in replayed[i]} for i in replayed)


# ---- filter values -------------------------------------------------------------------------

@pytest.mark.parametrize("path, query, bad, expected", [
    ("/v1/decisions", {"kind": "brech"}, "query.kind", "did you mean breach?"),
    ("/v1/decisions", {"service": "emial"}, "query.service", "did you mean email?"),
    ("/v1/decisions", {"target": "email-p1-respons"}, "query.target", "did you mean email-p1-response"),
    ("/v1/facts", {"service": "servise"}, "query.service", "known: email, hosting"),
    ("/v1/facts", {"type": "incident opened"}, "query.type", "not a dotted type name"),
    ("/v1/clocks", {"service": "bogus"}, "query.service", "known: email, hosting"),
    ("/v1/clocks", {"target": "nope"}, "query.target", "known: "),
    ("/v1/notifications", {"status": "bogus"}, "query.status", "(known: pending, retrying, sent, failed"),
    ("/v1/decisions", {"cursor": "garbage"}, "query.cursor", "the `next` of the previous page"),
    ("/v1/facts", {"next": "garbage"}, "query.next", "passed as `cursor`"),
    ("/v1/decisions", {"limit": "0"}, "query.limit", ""),
    ("/v1/reports/compliance", {"service": "emial", "period": "2026-11"}, "query.service", "did you mean email?"),
    ("/v1/reports/compliance", {"service": "email", "period": "2026-1"}, "query.period", "YYYY-MM"),
])
def test_unknown_filter_values_are_400_naming_the_known_ones(env, path, query, bad, expected):
    post(env, p1())
    response = get(env, path, **query)
    assert response.status_code == 400 and response.mimetype == PROBLEM, response.json
    assert expected in response.json["errors"][bad][0], response.json


def test_known_filter_values_still_answer(env):
    post(env, p1())
    assert get(env, "/v1/decisions", kind="breach", service="email", target="email-p1-response").json["items"]
    assert get(env, "/v1/decisions", kind="improvement-proposed").status_code == 200    # a kind a Rule decides
    assert get(env, "/v1/notifications", status="muted").json["items"] == []
    assert get(env, "/v1/clocks", service="hosting").json["total"] == 0
    assert get(env, "/v1/facts", service="email", type="incident.opened").json["items"]


def test_the_status_codes_of_query_strings_are_documented(env):
    spec = env.client.get("/openapi.json").json
    assert "400" in spec["paths"]["/v1/decisions"]["get"]["responses"]
    assert "422" not in spec["paths"]["/v1/decisions"]["get"]["responses"]
