"""What an auditor reads is exactly what holds: a retracted decision says so everywhere
(API and console), a trace shows the fact of the source that caused it, and each rule
change names who made it, over real HTTP-shaped requests to the real service."""
from __future__ import annotations

from engine.lang.loader import version_of
from tests.support import fact
from tests.support.api import auth, get, p1, post


def breach_then_retracted(env) -> dict:
    """A P1 breached at 03:15; an acknowledgement of 03:10 arrives late and retracts it."""
    assert post(env, p1()).status_code == 200
    assert post(env, fact("f2", type="incident.acknowledged", time="2026-11-05T03:10:00Z",
                          subject="INC-1")).status_code == 200
    breach, = get(env, "/v1/decisions", kind="breach", target="email-p1-response").json["items"]
    return breach


def test_a_retracted_decision_carries_retracted_by_and_the_list_filters_by_it(env):
    breach = breach_then_retracted(env)
    retraction, = [d for d in get(env, "/v1/decisions", kind="retracted", target="email-p1-response").json["items"]
                   if d["data"]["retracts"] == breach["id"]]
    assert breach["retracted_by"] == {"id": retraction["id"], "at": retraction["at"],
                                      "reason": retraction["data"]["reason"]}
    assert breach["retracted_by"]["reason"]
    assert get(env, f"/v1/decisions/{breach['id']}").json["retracted_by"] == breach["retracted_by"]
    assert "retracted_by" not in get(env, f"/v1/decisions/{retraction['id']}").json
    retracted = get(env, "/v1/decisions", retracted="true").json["items"]
    standing = get(env, "/v1/decisions", retracted="false", subject="INC-1").json["items"]
    assert breach["id"] in {d["id"] for d in retracted} and all("retracted_by" in d for d in retracted)
    assert breach["id"] not in {d["id"] for d in standing} and all("retracted_by" not in d for d in standing)
    assert {d["kind"] for d in standing} >= {"retracted", "met"}
    trace = get(env, f"/v1/decisions/{breach['id']}/trace").json
    assert trace["retracted_by"] == breach["retracted_by"]
    bad = get(env, "/v1/decisions", retracted="maybe")
    assert bad.status_code == 400 and "retracted" in str(bad.json)


def test_a_trace_shows_the_fact_of_the_source_that_caused_it_not_another_with_its_id(env):
    """A token limited to evil/* posts TKT-5001 first; zabbix's TKT-5001 breaches. The
    breach's trace (API and console) and its because name zabbix's fact."""
    evil = env.store.add_token("monitor", "evil", sources=["evil/*"])
    forged = fact("TKT-5001", source="evil/x", subject="INC-666", time="2026-11-05T02:00:00Z", priority="P4")
    assert env.client.post("/v1/facts", json=forged, headers={"Authorization": f"Bearer {evil}"}).status_code == 200
    real = fact("TKT-5001", source="zabbix/prod", subject="INC-1", time="2026-11-05T03:00:00Z", priority="P1")
    assert env.client.post("/v1/facts", json=real, headers=auth(env, "monitor")).status_code == 200
    breach, = get(env, "/v1/decisions", kind="breach", target="email-p1-response").json["items"]
    assert "fact:zabbix/prod#TKT-5001" in breach["because"]
    trace = get(env, f"/v1/decisions/{breach['id']}/trace").json
    leaf, = [c for c in trace["children"] if c["ref"].startswith("fact:")]
    assert leaf["fact"]["source"] == "zabbix/prod" and leaf["fact"]["subject"] == "INC-1"
    explained = get(env, "/v1/facts/TKT-5001/explain", source="zabbix/prod").json
    assert explained["source"] == "zabbix/prod" and breach["id"] in {d["id"] for d in explained["decisions"]}


def test_a_reload_records_the_token_that_made_it_and_an_edited_version_is_caught(env, tmp_path):
    versions = get(env, "/v1/rules/versions").json["items"]
    assert [v["by"] for v in versions] == ["slm serve"]
    first = versions[0]["version"]
    env.service.rules.rules_dir = tmp_path / "rules"
    files = {**env.service.state.ruleset.files}
    for path, text in files.items():
        (tmp_path / "rules" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "rules" / path).write_text(text + ("\n# reviewed\n" if path == sorted(files)[0] else ""))
    owner = env.store.add_token("owner", "carol")
    reloaded = env.client.post("/v1/rules/reload", headers={"Authorization": f"Bearer {owner}"})
    assert reloaded.status_code == 200, reloaded.json
    versions = get(env, "/v1/rules/versions").json["items"]
    assert [(v["by"], v["in_force"]) for v in versions] == [("slm serve", False), ("carol", True)]
    assert get(env, "/v1/audit/verify").json["chains"]["cutovers"]["ok"]
    path = sorted(files)[0]
    edited = {**files, path: files[path] + "\n# slipped in\n"}
    assert version_of(edited) != first
    env.store.db.execute_sql(f"UPDATE rulesets SET files = {env.store.db.param} WHERE hash = {env.store.db.param}",
                             [__import__("json").dumps(edited), first])
    verified = get(env, "/v1/audit/verify").json
    assert not verified["ok"] and verified["chains"]["cutovers"]["first_broken"]["id"] == first
    assert get(env, f"/v1/rules/versions/{first}").status_code == 404
