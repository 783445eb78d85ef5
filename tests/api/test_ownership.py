"""Owner and standby over HTTP: what /readyz, /metrics and write requests answer on each
side of a database shared by lease (engine/service/ownership.py), and that a lost lease is
a 503 to retry, never a 500."""
from __future__ import annotations

from datetime import timedelta

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO
from tests.support.api import PROBLEM, p1
from tests.support.waiting import until

pytestmark = pytest.mark.wallclock     # leases run on the database's clock: the machine's

A, B, C = "host-a:101", "host-b:202", "host-c:303"
LONG = timedelta(minutes=10)


@pytest.fixture
def pair(url, wall):
    """An owner and a standby, each behind its own app, and an admin token for both."""
    wall.set("2026-11-05T04:00:00Z")                     # after the facts of tests.support.api.p1
    with Store.open(url) as admin:                       # `slm token create`, a process of its own
        token = admin.add_token("admin")
    services = []
    for name in (A, B):
        service = SlmService(Store.open(url), PORTFOLIO, now=wall, lease_ttl=LONG, lease_owner=name)
        service.start()
        services.append(service)
        if name == A:
            until(service.state.ready.is_set, "the first to own")
    until(lambda: services[1].state.holder is not None, "the second to stand by")
    headers = {"Authorization": f"Bearer {token}"}
    yield [(create_app(s).test_client(), s) for s in services], headers
    for service in services:
        service.stop()
        service.store.close()


def test_a_standby_says_so_and_refuses_writes_with_a_retry_after(pair):
    ((owner, _), (standby, _)), headers = pair
    ready = standby.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["status"] == "standby" and ready.json["role"] == "standby" and not ready.json["ready"]
    assert ready.json["lease"]["owner"] == A and ready.json["lease"]["partition"] == "default"
    assert ready.json["lease"]["expires_at"].endswith("Z")
    shown = owner.get("/readyz")
    assert shown.status_code == 200 and shown.json["status"] == "ready"
    assert (shown.json["role"], shown.json["lease"]["owner"], shown.json["lease"]["epoch"]) == ("owner", A, 1)

    for path, body in (("/v1/facts", p1()), ("/v1/rules/reload", None),
                       ("/v1/notifications/ntf_x/retry", None)):
        refused = standby.post(path, json=body, headers=headers)
        assert refused.status_code == 503 and refused.mimetype == PROBLEM, (path, refused.json)
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json["title"] == "Standby" and "standby" in refused.json["detail"]
        assert A in refused.json["detail"]
    assert standby.get("/v1/decisions", headers=headers).status_code == 200      # reads go on
    for path in ("/v1/clocks", "/v1/reports/compliance?service=email&period=2026-11"):
        assert standby.get(path, headers=headers).status_code == 503            # the owner has the clocks
    assert owner.post("/v1/facts", json=p1(), headers=headers).status_code == 200
    assert standby.get("/v1/facts", headers=headers).json["items"][0]["fact"]["id"] == "f1"

    owning, standing = owner.get("/metrics").text, standby.get("/metrics").text
    assert 'slm_lease_owner{partition="default"} 1.0' in owning
    assert 'slm_lease_takeovers_total{partition="default"} 1.0' in owning
    assert 'slm_lease_owner{partition="default"} 0.0' in standing
    assert 'slm_lease_takeovers_total{partition="default"} 0.0' in standing
    assert "slm_ready 0.0" in standing


def test_a_lease_lost_under_a_write_is_a_503_to_retry_never_a_500(pair, url):
    ((owner, service), (_, _)), headers = pair
    with Store.open(url) as thief:                        # another process took the database over
        thief.release_lease(service.state.lease)
        taken = thief.acquire_lease(C, ttl=LONG)
        refused = owner.post("/v1/facts", json=p1(), headers=headers)
        assert refused.status_code == 503 and refused.mimetype == PROBLEM, refused.json
        assert int(refused.headers["Retry-After"]) >= 1
        assert C in refused.json["detail"] and "nothing from this request was stored" in refused.json["detail"]
        until(lambda: (owner.get("/readyz").json["lease"] or {}).get("owner") == C, "the owner to stand by")
        assert owner.get("/readyz").status_code == 503
        assert 'slm_lease_owner{partition="default"} 0.0' in owner.get("/metrics").text
        assert owner.get("/v1/facts", headers=headers).json["items"] == []
        thief.release_lease(taken)


def test_the_single_writer_shows_no_lease(env):
    ready = env.client.get("/readyz")
    assert ready.status_code == 200 and "role" not in ready.json and "lease" not in ready.json
    assert "slm_lease_owner" not in env.client.get("/metrics").text
