"""Calling the HTTP API through Flask's test client, as the ``env`` fixture of
tests/api/conftest.py sets it up: tokens per role, and a P1 incident to post."""
from __future__ import annotations

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
