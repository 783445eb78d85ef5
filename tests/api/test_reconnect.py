"""The database goes away under a real service (docs/OPERATIONS.md, "When the database goes
away"): requests answer 200 or 503 naming the database, never 500, and 200 again once it
answers; what was acknowledged is stored once; ``/readyz`` says so meanwhile. Sessions are
ended with ``pg_terminate_backend``; a database that refuses connections is a port nothing
listens on. Nothing here asserts how fast anything is.
"""
from __future__ import annotations

import time

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, WallClock, free_port, named_sessions, postgres_schema_url, terminate_sessions
from tests.support.api import PROBLEM, p1, post

pytestmark = pytest.mark.postgres
PATIENCE = 60                  # seconds any wait here may take before the test gives up


@pytest.fixture
def pg_env():
    """tests/api/conftest.py's ``env``, on PostgreSQL, its sessions named."""
    with postgres_schema_url() as url:
        url, name = named_sessions(url)
        wall = WallClock("2026-11-05T04:00:00Z")
        store = Store.open(url)
        service = SlmService(store, PORTFOLIO, now=wall)
        service.start(background=False)
        tokens = {role: store.add_token(role) for role in ("monitor", "auditor")}
        yield type("Env", (), {"client": create_app(service).test_client(), "service": service,
                               "store": store, "tokens": tokens, "name": name})
        service.stop()
        store.close()


def until_accepted(env, body) -> list[int]:
    """Post ``body`` until it is answered 200 (each 503 names the database): the statuses."""
    statuses, deadline = [], time.monotonic() + PATIENCE
    while True:
        response = post(env, body)
        statuses.append(response.status_code)
        if response.status_code == 200:
            return statuses
        assert response.status_code == 503 and response.mimetype == PROBLEM, response.get_data(as_text=True)
        assert response.headers["Retry-After"] and "database" in response.json["detail"], response.json
        assert time.monotonic() < deadline, statuses
        time.sleep(0.1)


def stored_ids(store: Store) -> list[str]:
    store.close()                  # this thread's session may have been ended: read on a new one
    return sorted(stored["fact"]["id"] for stored in store.facts())


def test_requests_after_the_sessions_ended_get_200_or_503_and_each_fact_is_stored_once(pg_env):
    env, ids = pg_env, [f"f{n}" for n in range(6)]
    for n, fid in enumerate(ids):
        if n % 2:
            assert terminate_sessions(env.name) >= 1
        statuses = until_accepted(env, p1(fid, subject=f"INC-{n}"))
        assert set(statuses) <= {200, 503}
    assert stored_ids(env.store) == ids
    answer = post(env, [p1(fid, subject=f"INC-{n}") for n, fid in enumerate(ids)])
    assert answer.status_code == 200
    assert {entry["status"] for entry in answer.json["results"]} == {"duplicate"}


def test_a_write_that_lost_its_connection_is_503_and_the_engine_is_rebuilt_once_it_answers(pg_env):
    env = pg_env
    assert post(env, p1("f1")).status_code == 200
    store, insert = env.store, env.store._insert

    def insert_then_lose(*args, **kwargs):          # the session ends in the middle of the write
        store._insert = insert
        terminate_sessions(env.name)
        return insert(*args, **kwargs)

    store._insert = insert_then_lose
    lost = post(env, p1("f2", subject="INC-2"))
    assert lost.status_code == 503 and "connection to the database was lost" in lost.json["detail"], lost.json
    assert env.service.state.engine_ahead               # the engine moved; the store did not
    port = store.db.connect_params.get("port", 5432)
    store.db.connect_params["port"] = free_port()       # and the database refuses connections
    store.close()
    refused = post(env, p1("f2", subject="INC-2"))
    assert refused.status_code == 503 and "cannot connect to the database" in refused.json["detail"], refused.json
    store.db.connect_params["port"] = port
    until_accepted(env, p1("f2", subject="INC-2"))
    assert not env.service.state.engine_ahead           # rebuilt from the store, then written
    assert stored_ids(store) == ["f1", "f2"]


def test_readyz_names_the_database_while_it_refuses_connections(pg_env):
    env = pg_env
    assert env.client.get("/readyz").status_code == 200
    port = env.store.db.connect_params.get("port", 5432)
    env.store.db.connect_params["port"] = free_port()
    env.store.close()
    down = env.client.get("/readyz")
    assert down.status_code == 503, down.json
    assert down.json["status"] == "unavailable" and not down.json["ready"]
    assert "cannot connect to the database" in down.json["database"], down.json
    env.store.db.connect_params["port"] = port
    deadline = time.monotonic() + PATIENCE
    while (up := env.client.get("/readyz")).status_code != 200:
        assert up.json["status"] == "unavailable" and time.monotonic() < deadline, up.json
        time.sleep(0.1)
    assert up.json["status"] == "ready"


def test_readyz_after_its_session_ended_is_ready(pg_env):
    env = pg_env
    assert env.client.get("/readyz").status_code == 200
    assert terminate_sessions(env.name) >= 1
    assert env.client.get("/readyz").status_code == 200     # the probe asks once more, afresh
