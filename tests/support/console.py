"""Signing in to the console through Flask's test client."""
from __future__ import annotations

import re


def csrf_of(client, path="/ui/login") -> str:
    """The CSRF token of the form on ``path``."""
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def signed_in(env, role):
    """A test client signed in with ``env``'s token of ``role``."""
    client = env.app.test_client()
    response = client.post("/ui/login", data={"token": env.tokens[role], "csrf": csrf_of(client)})
    assert response.status_code == 302
    return client
