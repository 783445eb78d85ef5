"""``POST /v1/ingest/{mapping}``: a tool's webhook through a ``kind: Mapping``, on the real
service, SQLite and PostgreSQL: signatures, the facts it stores, the reasons it gives."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, ROOT, fact_count

SECRET = "tickets-secret"
MAPPING = ROOT / "tests" / "rulesets" / "mappings" / "tickets.yaml"


@pytest.fixture
def env(url, wall, tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    shutil.copy(MAPPING, rules / "tickets.yaml")
    monkeypatch.setenv("SLM_TEST_TICKETS_SECRET", SECRET)
    store = Store.open(url)
    wall.set("2026-11-05T04:00:00Z")
    service = SlmService(store, rules, now=wall)
    service.start(background=False)
    client = create_app(service).test_client()
    tokens = {role: store.add_token(role) for role in ("monitor", "auditor")}
    yield type("Env", (), {"client": client, "service": service, "store": store, "tokens": tokens})
    service.stop()
    store.close()


def signed(body: dict, secret: str = SECRET) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    return raw, {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
                 "Content-Type": "application/json"}


def post(env, body, secret=SECRET, mapping="tickets", token="monitor", **headers):
    raw, signature = signed(body, secret)
    return env.client.post(f"/v1/ingest/{mapping}", data=raw,
                           headers={**signature, "Authorization": f"Bearer {env.tokens[token]}", **headers})


OPENED = {"event": "created", "ticket": {"key": "MAIL-7", "project": "MAIL", "priority": "Highest",
                                         "created": "2026-11-05T03:00:00Z"}}


def test_a_signed_webhook_is_stored_as_the_fact_it_maps_to_and_decides_as_one(env):
    answer = post(env, OPENED)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["mapping"] == "tickets" and body["accepted"] == 1
    assert body["results"][0]["id"] == "MAIL-7-created" and body["results"][0]["source"] == "tickets/test"
    assert body["reasons"] == ["facts[1]: when \"event == 'updated'\" is not true for this payload"]
    # the P1's 15-minute response target was breached an hour ago: decided at once
    assert {(d["kind"], d["target"]) for d in body["decisions"]} >= {("breach", "email-p1-response")}
    stored = env.client.get("/v1/facts?subject=MAIL-7", headers={"Authorization": f"Bearer {env.tokens['auditor']}"})
    item = stored.get_json()["items"][0]["fact"]
    assert (item["service"], item["type"], item["data"]) == ("email", "incident.opened", {"priority": "P1"})


def test_a_repeat_of_the_webhook_is_a_duplicate(env):
    post(env, OPENED)
    again = post(env, OPENED).get_json()
    assert again["accepted"] == 0 and again["duplicates"] == 1 and again["results"][0]["status"] == "duplicate"


@pytest.mark.parametrize("secret, headers", [("wrong", {}), (SECRET, {"X-Hub-Signature-256": ""})])
def test_a_bad_or_missing_signature_is_401_and_stores_nothing(env, secret, headers):
    before = fact_count(env.store)
    answer = post(env, OPENED, secret=secret, **headers)
    assert answer.status_code == 401
    assert "bad signature for mapping 'tickets'" in answer.get_json()["detail"]
    assert fact_count(env.store) == before


def test_a_signature_over_other_bytes_is_refused(env):
    raw, headers = signed(OPENED)
    answer = env.client.post("/v1/ingest/tickets", data=raw.replace(b"Highest", b"Low    "),
                             headers={**headers, "Authorization": f"Bearer {env.tokens['monitor']}"})
    assert answer.status_code == 401 and fact_count(env.store) == 0


def test_a_payload_that_maps_to_nothing_is_200_with_the_reasons(env):
    answer = post(env, {"event": "commented", "ticket": {"key": "MAIL-7"}})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["accepted"] == 0 and body["results"] == []
    assert [r.split(":")[0] for r in body["reasons"]] == ["facts[0]", "facts[1]"]
    assert fact_count(env.store) == 0


def test_a_mapped_fact_the_intake_refuses_is_422_naming_its_field_and_nothing_is_stored(env):
    ahead = {**OPENED, "ticket": {**OPENED["ticket"], "created": "2026-11-05T05:00:00Z"}}
    answer = post(env, ahead)
    assert answer.status_code == 422
    assert "ahead of the server clock" in answer.get_json()["errors"]["time"][0]
    assert fact_count(env.store) == 0


def test_an_unknown_mapping_is_404_and_the_monitor_role_is_required(env):
    assert post(env, OPENED, mapping="jria").status_code == 404
    assert post(env, OPENED, token="auditor").status_code == 403
    raw, headers = signed(OPENED)
    assert env.client.post("/v1/ingest/tickets", data=raw, headers=headers).status_code == 401


def test_the_token_may_come_as_the_password_of_basic_authentication(env):
    raw, headers = signed(OPENED)
    basic = base64.b64encode(f"slm:{env.tokens['monitor']}".encode()).decode()
    answer = env.client.post("/v1/ingest/tickets", data=raw, headers={**headers, "Authorization": f"Basic {basic}"})
    assert answer.status_code == 200 and answer.get_json()["accepted"] == 1


def test_a_token_limited_to_other_sources_is_403(env):
    limited = env.store.add_token("monitor", sources=["zabbix/*"])
    raw, headers = signed(OPENED)
    answer = env.client.post("/v1/ingest/tickets", data=raw, headers={**headers, "Authorization": f"Bearer {limited}"})
    assert answer.status_code == 403 and fact_count(env.store) == 0


@pytest.mark.postgres
def test_an_api_node_stores_a_mapped_webhook_for_the_owner_and_answers_202(wall, tmp_path, monkeypatch):
    from tests.support import postgres_schema_url

    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    shutil.copy(MAPPING, rules / "tickets.yaml")
    monkeypatch.setenv("SLM_TEST_TICKETS_SECRET", SECRET)
    wall.set("2026-11-05T04:00:00Z")
    with postgres_schema_url() as url, Store.open(url) as store:
        owner = SlmService(store, rules, now=wall)
        owner.start(background=False)
        owner.stop()                     # the rule set is in force; the API node follows it
        api_store = Store.open(url)
        node = SlmService(api_store, rules, now=wall, role="api")
        node.start(background=False)
        try:
            token = api_store.add_token("monitor")
            raw, headers = signed(OPENED)
            answer = create_app(node).test_client().post(
                "/v1/ingest/tickets", data=raw, headers={**headers, "Authorization": f"Bearer {token}"})
            assert answer.status_code == 202, answer.get_json()
            (result,) = answer.get_json()["results"]
            assert (result["status"], result["evaluated"]) == ("accepted", False)
        finally:
            node.stop()
            api_store.close()
