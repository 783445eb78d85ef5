"""Tokens end to end: ``slm token`` on a real database, ``slm serve`` as a real process,
plain HTTP: a token limited to sources, one revoked by name, one expired."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from engine.store.store import Store
from tests.support.serving import Server, slm

pytestmark = [pytest.mark.wallclock,    # reads this machine's clock: CI runs it again years ahead
              pytest.mark.slow]


def created(*args, url) -> str:
    made = slm("token", "create", *args, "--db", url)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


@pytest.fixture
def server(url, tmp_path):
    srv = Server(url, tmp_path / "serve.log")
    srv.tokens = {"admin": created("--role", "admin", url=url),
                  "zabbix": created("--role", "monitor", "--name", "zabbix", "--source", "zabbix/*", url=url),
                  "old": created("--role", "monitor", "--name", "old", url=url)}
    with Store.open(url) as store:      # an expiry already past: the CLI refuses to make one
        srv.tokens["expired"] = store.add_token("monitor", "expired",
                                                expires_at=datetime(2026, 1, 1, tzinfo=UTC))
    srv.start()
    yield srv
    srv.stop()


def post(server, who, body):
    return requests.post(server.base + "/v1/facts", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {server.tokens[who]}"})


def opened(id, source):
    at = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": id, "source": source, "type": "incident.opened", "time": at, "subject": f"INC-{id}",
            "service": "email", "data": {"priority": "P2"}}


def test_limited_revoked_and_expired_tokens_over_http(server, url):
    assert post(server, "zabbix", opened("z1", "zabbix/prod")).status_code == 200
    refused = post(server, "zabbix", [opened("z2", "zabbix/prod"), opened("i1", "itsm/prod")])
    assert refused.status_code == 403 and refused.headers["Content-Type"] == "application/problem+json"
    assert "'itsm/prod'" in refused.json()["detail"] and "zabbix/*" in refused.json()["detail"]
    stored = requests.get(server.base + "/v1/facts", timeout=30,
                          headers={"Authorization": f"Bearer {server.tokens['admin']}"}).json()["items"]
    assert [s["fact"]["id"] for s in stored] == ["z1"]

    revoked = slm("token", "revoke", "old", "--db", url)
    assert revoked.returncode == 0 and revoked.stdout.strip() == "revoked 'old'"
    assert post(server, "old", opened("o1", "itsm/prod")).status_code == 401    # never checked: no cache to outlive
    expired = post(server, "expired", opened("e1", "itsm/prod"))
    assert expired.status_code == 401
    assert expired.json()["detail"] == "the token 'expired' expired at 2026-01-01T00:00:00Z"
    listing = slm("token", "list", "--db", url).stdout
    statuses = {line.split()[0]: line.split()[-1] for line in listing.splitlines()[1:]}
    assert statuses == {"admin-1": "active", "zabbix": "active", "old": "revoked", "expired": "expired"}
    assert not any(token in listing for token in server.tokens.values())
