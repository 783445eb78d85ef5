"""Strict inputs (issue 11, part 4): RFC 3339 times exactly, CloudEvents binary mode as the
SDK sends it, query parameters checked."""
from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest
from click.testing import CliRunner

from cli.main import main
from engine.lang.errors import FactError
from engine.service.live import SlmService
from engine.service.recovery import rebuild
from engine.store.base import every
from schemas.values import parse_rfc3339
from tests.support import PORTFOLIO, fact, fact_count
from tests.support.api import ALERTS, PROBLEM, auth, get, group, p1, post


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


def test_a_conflicting_repeat_inside_one_request_is_409_as_in_a_separate_one(env):
    other = post(env, [p1(), p1("f2", subject="INC-2"), p1(subject="INC-9")])
    assert other.status_code == 409 and other.mimetype == PROBLEM, other.json
    assert "earlier in this request with another body" in other.json["errors"]["[2].id"][0]
    assert fact_count(env.store) == 0
    same = post(env, [p1(), p1(time="2026-11-05T04:00:00+01:00")])       # the same body: a duplicate
    assert same.status_code == 200 and (same.json["accepted"], same.json["duplicates"]) == (1, 1)
    first, repeat = same.json["results"]
    assert repeat["status"] == "duplicate" and repeat["decisions"] == first["decisions"] != []


def test_a_conflicting_repeat_in_the_same_group_commit_is_409_as_in_a_separate_one(env):
    first, conflicting, same = group(env, [p1(), [p1("f2", subject="INC-2"), p1(subject="INC-9")], p1()])
    assert first.status_code == 200 and same.status_code == 200, (first.json, same.json)
    assert conflicting.status_code == 409, conflicting.json
    assert "just before, by another request" in conflicting.json["errors"]["[1].id"][0]
    assert same.json["results"][0]["status"] == "duplicate"
    assert {row["fact"]["id"] for row in env.store.list_facts(limit=10)[0]} == {"f1"}


# ---- the time as posted ----------------------------------------------------------------------

def test_the_posted_time_string_is_kept_beside_the_utc_instant(env):
    posted = [p1("f1", time="2026-11-05T04:00:00.5+01:00"), p1("f2", subject="INC-2", time="2016-12-31T23:59:60Z")]
    assert post(env, posted).status_code == 200
    items = {i["fact"]["id"]: i["fact"] for i in get(env, "/v1/facts").json["items"]}
    assert (items["f1"]["time"], items["f1"]["time_posted"]) == ("2026-11-05T03:00:00.5Z",
                                                                 "2026-11-05T04:00:00.5+01:00")
    assert (items["f2"]["time"], items["f2"]["time_posted"]) == ("2017-01-01T00:00:00Z", "2016-12-31T23:59:60Z")
    breach = get(env, "/v1/decisions", kind="breach", target="email-p1-response").json["items"][0]
    assert breach["at"] == "2026-11-05T03:15:00.5Z"                     # the engine works on the instant
    trace = get(env, f"/v1/decisions/{breach['id']}/trace").json
    leaves = {c["ref"]: c for c in trace["children"]}
    assert leaves["fact:itsm/prod#f1"]["fact"]["time_posted"] == "2026-11-05T04:00:00.5+01:00"
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
    rebuilt = rebuild(env.store, env.service.state.ruleset, history=True, retain=None, snapshots=False)
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


# ---- Alertmanager: a group placed alert by alert ---------------------------------------------

def _group(*alerts) -> dict:
    payload = json.loads((ALERTS / "email-down-firing.json").read_text())
    payload["alerts"] = list(alerts)
    return payload


def _alert(fingerprint: str, service: str = "email", starts: str = "2026-11-05T03:00:00.412345678Z", **extra) -> dict:
    alert = json.loads((ALERTS / "email-down-firing.json").read_text())["alerts"][0]
    return {**alert, "fingerprint": fingerprint, "labels": {**alert["labels"], "service": service},
            "startsAt": starts, **extra}


def test_a_group_stores_its_good_alerts_and_lists_the_others_with_why(env):
    response = post(env, _group(_alert("good1"), _alert("badsvc", service="emial"), "not an alert",
                                _alert("badtime", starts="soon"), _alert("good2", starts="2026-11-05T04:00:00+01:00")),
                    path="/v1/ingest/alertmanager")
    assert response.status_code == 200, response.json
    assert (response.json["accepted"] == 2
            and [r["id"].split("@")[0] for r in response.json["results"]] == ["good1", "good2"])
    rejected = {r["alert"]: r for r in response.json["rejected"]}
    assert sorted(rejected) == [1, 2, 3]
    assert rejected[1]["fingerprint"] == "badsvc"
    assert "unknown service 'emial'" in rejected[1]["errors"]["labels.service"][0]
    assert rejected[2] == {"alert": 2, "fingerprint": None, "errors": {"_alert": ["expected a JSON object"]}}
    assert "startsAt" in rejected[3]["errors"]
    stored = {i["fact"]["subject"]: i["fact"] for i in get(env, "/v1/facts").json["items"]}
    assert set(stored) == {"good1", "good2"}
    assert stored["good1"]["time_posted"] == "2026-11-05T03:00:00.412345678Z"
    assert stored["good2"]["time"] == "2026-11-05T03:00:00Z"


def test_a_group_of_only_bad_alerts_is_a_200_that_stores_nothing(env):
    response = post(env, _group(_alert("a", service="nope")), path="/v1/ingest/alertmanager")
    assert response.status_code == 200 and response.json["accepted"] == 0
    assert [r["fingerprint"] for r in response.json["rejected"]] == ["a"]
    assert fact_count(env.store) == 0


def test_an_alert_repeated_with_another_body_is_rejected_alone(env):
    assert post(env, _group(_alert("a1")), path="/v1/ingest/alertmanager").json["accepted"] == 1
    changed = _alert("a1", annotations={"summary": "changed"})
    response = post(env, _group(changed, _alert("a2")), path="/v1/ingest/alertmanager")
    assert response.status_code == 200 and response.json["accepted"] == 1
    assert "another body" in response.json["rejected"][0]["errors"]["fingerprint"][0]
    assert fact_count(env.store) == 2


def test_alerts_of_one_fingerprint_with_other_labels_in_one_group_are_rejected_alone(env):
    changed = _alert("a1")
    changed["labels"] = {**changed["labels"], "severity": "info"}
    response = post(env, _group(_alert("a1"), changed, _alert("a1"), _alert("a2")), path="/v1/ingest/alertmanager")
    assert response.status_code == 200, response.json
    assert (response.json["accepted"], response.json["duplicates"]) == (2, 1)
    (rejected,) = response.json["rejected"]
    assert rejected["alert"] == 1 and "another body" in rejected["errors"]["fingerprint"][0]
    stored = [i["fact"] for i in get(env, "/v1/facts").json["items"]]
    assert len(stored) == 2 and stored[0]["data"]["severity"] == _alert("a1")["labels"]["severity"]


# ---- --max-lateness ------------------------------------------------------------------------------

def test_a_fact_more_than_the_bound_behind_its_subject_is_422_and_changes_nothing(env):
    assert post(env, p1()).status_code == 200
    decisions = env.store.decision_count()
    late = post(env, fact("ack", type="incident.acknowledged", subject="INC-1", time="2026-10-28T02:59:59Z"))
    assert late.status_code == 422 and late.mimetype == PROBLEM, late.json
    message = late.json["errors"]["time"][0]
    assert ("7d" in message and "2026-11-05T03:00:00Z" in message and "'INC-1'" in message
            and "--max-lateness" in message)
    assert fact_count(env.store) == 1 and env.store.decision_count() == decisions
    within = post(env, fact("ack", type="incident.acknowledged", subject="INC-1", time="2026-10-29T03:00:00Z"))
    assert within.status_code == 200                        # exactly the bound behind: accepted
    other = post(env, fact("old", subject="INC-9", time="2026-10-01T00:00:00Z", priority="P3"))
    assert other.status_code == 200                         # another subject has its own newest time


def test_a_request_s_facts_are_judged_in_event_time_order_so_one_may_hold_a_ticket_s_history(env):
    """Opened and resolved 8 days apart in one request: neither is late (issue 23, item 9)."""
    history = [fact("done", type="incident.resolved", subject="INC-8", time="2026-11-05T03:00:00Z"),
               p1("open", subject="INC-8", time="2026-10-28T02:00:00Z")]
    response = post(env, history)
    assert response.status_code == 200, response.json
    assert response.json["accepted"] == 2 and fact_count(env.store) == 2


def test_a_fact_of_a_request_behind_what_is_stored_is_still_refused(env):
    env.service.facts.max_lateness = timedelta(hours=1)
    sample = dict(type="metric.sample", subject="web-1", service="hosting", name="latency_p95")
    assert post(env, fact("m1", time="2026-11-05T03:00:00Z", value=100, **sample)).status_code == 200
    batch = [fact("m3", time="2026-11-05T03:30:00Z", value=90, **sample),
             fact("m0", time="2026-11-04T22:00:00Z", value=900, **sample)]
    response = post(env, batch)
    assert response.status_code == 422 and "5h behind" in response.json["errors"]["[1].time"][0], response.json
    assert "2026-11-05T03:00:00Z" in response.json["errors"]["[1].time"][0]   # the stored time, not 03:30
    assert fact_count(env.store) == 1


def test_a_late_alert_is_rejected_from_its_group_alone(env):
    post(env, _group(_alert("a1", starts="2026-11-05T03:00:00Z")), path="/v1/ingest/alertmanager")
    resolved = {**_alert("a1", starts="2026-10-01T03:00:00Z"), "status": "resolved", "endsAt": "2026-10-01T04:00:00Z"}
    response = post(env, _group(resolved, _alert("a2")), path="/v1/ingest/alertmanager")
    assert response.status_code == 200 and response.json["accepted"] == 1
    assert "behind the newest event time" in response.json["rejected"][0]["errors"]["endsAt"][0]


def test_the_bound_holds_after_a_restart_and_repeats_stay_duplicates(env):
    assert post(env, p1("old", subject="INC-1", time="2026-10-20T03:00:00Z")).status_code == 200
    assert post(env, p1("new", subject="INC-1")).status_code == 200
    restarted = SlmService(env.store, PORTFOLIO, now=env.wall)
    restarted.start(background=False)
    try:
        with pytest.raises(FactError) as refused:
            restarted.facts.ingest([p1("older", subject="INC-1", time="2026-10-20T04:00:00Z")])
        assert "time" in refused.value.details
        repeat = restarted.facts.ingest([p1("old", subject="INC-1", time="2026-10-20T03:00:00Z")])
        assert repeat.results[0]["status"] == "duplicate"
        restarted.facts.max_lateness = None                   # no bound: any amount late
        assert restarted.facts.ingest([p1("older", subject="INC-1", time="2026-10-20T04:00:00Z")]).accepted == 1
    finally:
        restarted.stop()


def test_serve_refuses_a_bound_that_is_no_duration(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--max-lateness", "soon"])
    assert result.exit_code == 2 and "--max-lateness" in result.output and "not a duration" in result.output


def test_newest_times_read_each_subject_once_and_survive_more_subjects_than_remembered():
    from datetime import datetime

    from engine.service.lateness import NewestTimes
    t = datetime(2026, 11, 5, tzinfo=UTC)
    reads = []

    def read(subjects):
        reads.append(sorted(subjects))
        return {s: t for s in subjects if s != "new"}

    newest = NewestTimes(read, remembered=2)
    assert newest.of(["a", "b", "c", "new"]) == {"a": t, "b": t, "c": t}     # more than it remembers at once
    newest.note("new", t.replace(day=6))
    assert newest.of(["new", "c"]) == {"new": t.replace(day=6), "c": t}
    assert reads == [["a", "b", "c", "new"]]                                    # both remembered: no read


@pytest.mark.parametrize("count", [2.5, -1, "3"])
def test_a_webhook_whose_truncated_count_is_no_count_is_refused_whole(env, count):
    payload = {**_group(_alert("good1")), "truncatedAlerts": count}
    response = post(env, payload, path="/v1/ingest/alertmanager")
    assert response.status_code == 422 and "json.truncatedAlerts" in response.json["errors"], response.json
