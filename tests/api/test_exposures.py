"""Small exposures (issue 11, part 6): no static route, no server paths in responses, and
every field the schemas know returned: a stored decision compared with each endpoint that
returns it."""
from __future__ import annotations

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import ROOT, fact

CHAIN = ROOT / "fixtures" / "rulesets" / "decision-chain"


@pytest.fixture
def chain_env(url, wall):
    store = Store.open(url)
    service = SlmService(store, CHAIN, now=wall)          # an absolute rules directory
    service.start(background=False)
    app = create_app(service)
    tokens = {role: store.add_token(role) for role in ("monitor", "auditor")}
    wall.set("2026-11-05T04:00:00Z")
    yield type("Env", (), {"client": app.test_client(), "store": store, "tokens": tokens})
    service.stop()
    store.close()


def test_a_stored_decision_is_returned_whole_by_every_endpoint(chain_env):
    env = chain_env
    posted = env.client.post("/v1/facts", json=fact("p1", service="payroll", time="2026-11-05T03:00:00Z",
                                                   priority="P1"),
                             headers={"Authorization": f"Bearer {env.tokens['monitor']}"})
    assert posted.status_code == 200, posted.json
    reader = {"Authorization": f"Bearer {env.tokens['auditor']}"}
    listed = {d["id"]: d for d in env.client.get("/v1/decisions", headers=reader).json["items"]}
    kinds = {d["kind"] for d in posted.json["decisions"]}
    assert {"breach", "service-credit-due", "credit-approval-requested"} <= kinds
    for returned in posted.json["decisions"]:
        stored = env.store.decision(returned["id"])
        one = env.client.get(f"/v1/decisions/{returned['id']}", headers=reader).json
        for name, seen in (("ingest", returned), ("list", listed[returned["id"]]), ("get", one)):
            assert seen == stored, (name, returned["kind"])
        if stored["kind"] == "service-credit-due":
            assert stored["severity"] == "minor" and stored["message"] == "service credit due for INC-1"
        assert not stored["rule"]["file"].startswith("/") and str(ROOT) not in stored["rule"]["file"]
        assert stored["rule"]["file"] == "rules.yaml"
    trace = env.client.get(f"/v1/decisions/{posted.json['decisions'][-1]['id']}/trace", headers=reader)
    assert trace.status_code == 200 and str(ROOT) not in trace.get_data(as_text=True)
    rules = env.client.get("/v1/rules", headers=reader)
    assert str(ROOT) not in rules.get_data(as_text=True)


def test_there_is_no_static_route(chain_env):
    assert chain_env.client.get("/static/x.txt").status_code == 404
    assert not [r for r in chain_env.client.application.url_map.iter_rules() if r.endpoint == "static"]
