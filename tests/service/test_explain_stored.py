"""Explaining stored facts (the service, the API and ``slm explain --db``) and the reasons
an ingestion answer gives for a fact that matched nothing. Real engine, real SQLite and
PostgreSQL."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from api.app import create_app
from cli import main
from engine.service.explain import AmbiguousFact, UnknownFact
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact


@pytest.fixture
def make_service(url, wall):
    opened = []

    def make(rules=PORTFOLIO, snapshot_every=0):
        store = Store.open(url)
        service = SlmService(store, rules, now=wall, snapshot_every=snapshot_every)
        service.start(background=False)
        opened.append(service)
        return service

    yield make
    for service in opened:
        service.stop()
        service.store.close()


def effects(answer) -> dict:
    return {item["target"]: item["effect"] for item in answer["affected"]}


def reasons(answer) -> dict:
    return {item["target"]: item["reason"] for item in answer["not_affected"]}


def opened(id, subject, priority="P1", time="2026-11-02T09:00:00Z", **kw):
    return fact(id, subject=subject, time=time, priority=priority, **kw)


def acked(id, subject, time="2026-11-02T09:05:00Z", **kw):
    return fact(id, type="incident.acknowledged", subject=subject, time=time, **kw)


def test_a_stored_stop_is_explained_with_the_clocks_running_before_it(make_service):
    service = make_service()
    service.facts.ingest([opened("o1", "INC-1"), acked("a1", "INC-1"), acked("a2", "INC-7")])
    answer = service.store_reads.explain_fact("a1")
    assert effects(answer)["email-p1-response"] == "stops the clock of INC-1"
    assert reasons(answer)["email-p2-response"] == "no running clock for INC-1 to stop"
    assert answer["seq"] == 2 and answer["replayed"] == 1
    assert answer["ruleset"] == service.state.ruleset.version
    changed = {c["clock"]: (c["before"], c["after"]) for c in answer["clocks"]}
    assert changed["email-p1-response/INC-1"] == ("running", "stopped")
    assert changed["email-p1-resolution/INC-1"] == ("running", "running")
    assert [(d["kind"], d["target"]) for d in answer["decisions"]] == [("met", "email-p1-response"),
                                                                      ("met", "ola-mx-p1-response")]
    stray = service.store_reads.explain_fact("a2")
    assert effects(stray) == {} and reasons(stray)["email-p1-response"] == "no running clock for INC-7 to stop"
    assert stray["decisions"] == [] and stray["clocks"] == []
    # a second stop finds the clock stopped by the first one
    service.facts.ingest([acked("a3", "INC-1", time="2026-11-02T09:06:00Z")])
    again = service.store_reads.explain_fact("a3")
    assert reasons(again)["email-p1-response"] == "the clock of INC-1 has stopped already (stop plays no part)"


def test_unknown_and_ambiguous_facts(make_service):
    service = make_service()
    service.facts.ingest([opened("o1", "INC-1"), opened("o1", "INC-1", source="other/prod")])
    with pytest.raises(UnknownFact):
        service.store_reads.explain_fact("nope")
    with pytest.raises(UnknownFact):
        service.store_reads.explain_fact("o1", source="third/prod")
    with pytest.raises(AmbiguousFact, match="itsm/prod, other/prod"):
        service.store_reads.explain_fact("o1")
    assert service.store_reads.explain_fact("o1", source="other/prod")["source"] == "other/prod"


def test_a_fact_before_a_rule_change_is_explained_under_the_rules_then_in_force(make_service, tmp_path, wall):
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    service = make_service(rules)
    before = service.state.ruleset.version
    service.facts.ingest([opened("o1", "INC-1")])
    email = rules / "services" / "email.yaml"
    email.write_text(email.read_text().replace("where: {priority: P1}", "where: {priority: P3}"))
    wall.forward(minutes=1)
    service.rules.reload()
    service.facts.ingest([opened("o2", "INC-2", time="2026-11-02T12:00:30Z")])
    old = service.store_reads.explain_fact("o1")
    assert old["ruleset"] == before
    assert effects(old)["email-p1-response"].startswith("starts the clock of INC-1")
    new = service.store_reads.explain_fact("o2")
    assert new["ruleset"] == service.state.ruleset.version != before
    assert reasons(new)["email-p1-response"] == 'applies_to: where priority: "P1" ≠ "P3"'


def test_a_snapshot_before_the_fact_is_used_and_one_after_it_is_not(make_service):
    service = make_service(snapshot_every=2)
    service.facts.ingest([opened("o1", "INC-1"), opened("o2", "INC-2")])    # snapshot after fact 2
    service.keeper.wait_for_snapshot()                                      # (made beside the writer)
    service.facts.ingest([acked("a1", "INC-1"), acked("a2", "INC-2")])      # and after fact 4
    service.keeper.wait_for_snapshot()
    from_snapshot = service.store_reads.explain_fact("a2")  # the newest snapshot (fact 4) is not before it
    assert from_snapshot["replayed"] == 3
    assert effects(from_snapshot)["email-p1-response"] == "stops the clock of INC-2"
    service.facts.ingest([acked("a3", "INC-2", time="2026-11-02T09:07:00Z")])
    late = service.store_reads.explain_fact("a3")
    assert late["replayed"] == 0                     # the snapshot at fact 4 stands just before it
    assert reasons(late)["email-p1-response"].startswith("the clock of INC-2 has stopped already")


def test_ingest_answers_matched_nothing_with_the_nearest_reasons(make_service):
    service = make_service()
    result = service.facts.ingest([opened("o1", "INC-1"), opened("o2", "INC-2", priority="P3"), acked("a1", "INC-9")])
    by_id = {r["id"]: r for r in result.results}
    assert "matched" not in by_id["o1"] and by_id["o1"]["decisions"]
    minor = by_id["o2"]
    assert minor["matched"] == [] and minor["decisions"] == []
    assert {"target": "email-p1-response", "reason": 'applies_to: where priority: "P3" ≠ "P1"'} in minor["reasons"]
    assert len(minor["reasons"]) == 5
    assert all("plays no part" not in r["reason"] for r in minor["reasons"])      # nearest misses first
    assert by_id["a1"]["reasons"][0]["reason"] == "no running clock for INC-9 to stop"
    duplicate = service.facts.ingest([opened("o2", "INC-2", priority="P3")]).results[0]
    assert duplicate["status"] == "duplicate" and "matched" not in duplicate


def test_without_a_fact_catalogue_a_misspelt_type_is_answered_with_did_you_mean(make_service, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    (rules / "org" / "facts.yaml").unlink()          # no catalogue: undeclared types are accepted
    service = make_service(rules)
    typo = service.facts.ingest([fact("x1", type="incident.openned", subject="INC-3")]).results[0]
    assert typo["matched"] == []
    assert "did you mean 'incident.opened'?" in typo["reasons"][0]["reason"]


def test_get_fact_explain_over_http(make_service, wall):
    service = make_service()
    app = create_app(service)
    token = service.store.add_token("auditor")
    monitor = service.store.add_token("monitor")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    posted = client.post("/v1/facts",
                         json=[opened("o1", "INC-1"), acked("a/1", "INC-1"), opened("o2", "INC-2", priority="P3")],
                         headers={"Authorization": f"Bearer {monitor}"})
    assert posted.status_code == 200
    assert posted.json["results"][2]["matched"] == [] and posted.json["results"][2]["reasons"]
    answer = client.get("/v1/facts/a/1/explain", headers=headers)
    assert answer.status_code == 200, answer.json
    assert effects(answer.json)["email-p1-response"] == "stops the clock of INC-1"
    assert answer.json["decisions"][0]["kind"] == "met"
    assert client.get("/v1/facts/a/1/explain", query_string={"source": "itsm/prod"},
                      headers=headers).status_code == 200
    missing = client.get("/v1/facts/zzz/explain", headers=headers)
    assert missing.status_code == 404 and "no stored fact 'zzz'" in missing.json["detail"]
    client.post("/v1/facts", json=opened("o1", "INC-1", source="other/prod"),
                headers={"Authorization": f"Bearer {monitor}"})
    ambiguous = client.get("/v1/facts/o1/explain", headers=headers)     # which facts share an id: what is stored
    assert ambiguous.status_code == 409 and "query.source" in ambiguous.json["errors"]
    assert client.get("/v1/facts/o1/explain", headers={"Authorization": f"Bearer {monitor}"}).status_code == 403
    spec = client.get("/openapi.json").json
    assert "/v1/facts/{fact_id}/explain" in spec["paths"]
    assert "FactExplanation" in spec["components"]["schemas"]
    assert "reasons" in spec["components"]["schemas"]["IngestResult"]["properties"]


def test_slm_explain_db_names_a_stored_fact(make_service, url):
    service = make_service()
    service.facts.ingest([opened("o1", "INC-1"), acked("a1", "INC-1")])
    result = CliRunner().invoke(main, ["explain", "--db", url, "itsm/prod", "a1"])
    assert result.exit_code == 0, result.output
    assert "email-p1-response: stops the clock of INC-1" in result.output
    assert "email-p1-response/INC-1: running -> stopped" in result.output
    assert "met email-p1-response INC-1" in result.output
    as_json = CliRunner().invoke(main, ["explain", "--db", url, "itsm/prod", "a1", "--json"])
    assert json.loads(as_json.output)["seq"] == 2
    unknown = CliRunner().invoke(main, ["explain", "--db", url, "itsm/prod", "nope"])
    assert unknown.exit_code == 1 and "no stored fact 'nope' from source 'itsm/prod'" in unknown.output
    wrong = CliRunner().invoke(main, ["explain", "--db", url, "a1"])
    assert wrong.exit_code == 2 and "SOURCE ID" in wrong.output


def test_a_replay_past_its_bound_stops_with_a_clear_error(make_service):
    from engine.service.explain import explain_stored
    from engine.service.whatif import Bounds, ReplayLimit

    service = make_service()
    service.facts.ingest([opened("o1", "INC-1"), opened("o2", "INC-2"), acked("a1", "INC-1")])
    with pytest.raises(ReplayLimit, match="more than 1 stored facts"):
        explain_stored(service.store, "a1", ruleset=service.state.ruleset, bounds=Bounds(max_facts=1))
    ruleset = service.state.ruleset
    assert explain_stored(service.store, "a1", ruleset=ruleset, bounds=Bounds(max_facts=2))["replayed"] == 2
