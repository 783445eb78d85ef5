"""Calling the HTTP API through Flask's test client, as the ``env`` fixture of
tests/api/conftest.py sets it up: tokens per role, and a P1 incident to post."""
from __future__ import annotations

import threading
import time

from tests.support import ROOT, fact

PROBLEM = "application/problem+json"
ALERTS = ROOT / "fixtures" / "alertmanager"


def auth(env, role="admin") -> dict:
    return {"Authorization": f"Bearer {env.tokens[role]}"}


def post(env, body, role="monitor", path="/v1/facts", **kwargs):
    return env.client.post(path, json=body, headers=auth(env, role), **kwargs)


def get(env, path, role="auditor", **query):
    return env.client.get(path, query_string=query, headers=auth(env, role))


def p1(id="f1", subject="INC-1", time="2026-11-05T03:00:00Z", **extra):
    return fact(id, subject=subject, time=time, priority="P1", **extra)


def group(env, bodies: list) -> list:
    """Post ``bodies`` from threads that queue up behind the write lock, so the first to get
    the lock writes all of them in one group commit; their responses, in order."""
    service = env.service
    results: list = [None] * len(bodies)
    client_app = env.client.application

    def run(index, body):
        with client_app.test_client() as client:
            results[index] = client.post("/v1/facts", json=body, headers=auth(env, "monitor"))

    threads = [threading.Thread(target=run, args=(n, b)) for n, b in enumerate(bodies)]
    with service.state.write_lock:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while service.facts.queued() < len(bodies) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert service.facts.queued() == len(bodies)
    for thread in threads:
        thread.join(timeout=60)
    return results
