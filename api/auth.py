"""Bearer tokens with roles (README.md, "The API"): who may post facts, change rules, read, verify.

Tokens are looked up by their SHA-256 in the store; the plaintext is never kept. A valid
token is trusted for a few seconds without asking the store again (monitoring tools post
often), so a revocation takes effect within ``TOKEN_CACHE_SECONDS``.
"""
from __future__ import annotations

import functools
import time

from flask import current_app, g, request
from flask_smorest import abort

from engine.store.store import token_digest

BEARER = [{"bearerAuth": []}]
SECURITY_SCHEME = {"type": "http", "scheme": "bearer",
                   "description": "a token from `slm token create --role ROLE`"}

MONITOR = ("monitor", "admin")              # post facts
OWNER = ("owner", "admin")                  # check and reload rules
READER = ("auditor", "owner", "admin")      # read decisions, facts, clocks, reports, rules
AUDITOR = ("auditor", "admin")              # verify the decision log
ADMIN = ("admin",)                          # operate: re-queue notifications


def requires(blueprint, roles: tuple[str, ...]):
    """Decorate a view: 401 without a valid token, 403 if its role is not in ``roles``."""

    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            role = _role_of_request()
            if role is None:
                abort(401, message="a valid bearer token is required (Authorization: Bearer slm_…)",
                      headers={"WWW-Authenticate": 'Bearer realm="slm"'})
            if role not in roles:
                abort(403, message=f"role {role!r} may not do this; allowed: {', '.join(roles)}")
            g.role = role
            return view(*args, **kwargs)

        doc = blueprint.doc(security=BEARER, description=f"Roles: {', '.join(roles)}.")
        return doc(guarded)

    return decorate


TOKEN_CACHE_SECONDS = 5.0     # a revoked token stops working within this long


class TokenCache:
    """Roles of recently checked tokens, by the token's SHA-256, one cache per app; a
    token is asked of the store again once ``seconds`` have passed. ``lookup`` takes a
    digest; the console's sessions hold the digest and ask the same cache (api/ui)."""

    def __init__(self, lookup, seconds: float = TOKEN_CACHE_SECONDS, clock=time.monotonic, size: int = 1000):
        self.lookup, self.seconds, self.clock, self.size = lookup, seconds, clock, size
        self._roles: dict[str, tuple[str, float]] = {}     # digest -> (role, trusted until)

    def role(self, token: str) -> str | None:
        return self.role_of_digest(token_digest(token))

    def role_of_digest(self, key: str) -> str | None:
        now = self.clock()
        cached = self._roles.get(key)
        if cached and cached[1] > now:
            return cached[0]
        role = self.lookup(key)
        if role is None:
            self._roles.pop(key, None)
        else:
            if len(self._roles) >= self.size:
                self._roles.clear()
            self._roles[key] = (role, now + self.seconds)
        return role


def _role_of_request() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return current_app.extensions["slm_tokens"].role(token)
