"""Bearer tokens with roles (DESIGN §7): who may post facts, change rules, read, verify.

Tokens are looked up by their SHA-256 in the store; the plaintext is never kept. A valid
token is trusted for a few seconds without asking the store again (monitoring tools post
often), so a revocation takes effect within ``TOKEN_CACHE_SECONDS``.
"""
from __future__ import annotations

import functools
import time

from flask import current_app, g, request
from flask_smorest import abort

BEARER = [{"bearerAuth": []}]
SECURITY_SCHEME = {"type": "http", "scheme": "bearer",
                   "description": "a token from `slm token create --role ROLE`"}

MONITOR = ("monitor", "admin")              # post facts
OWNER = ("owner", "admin")                  # check and reload rules
READER = ("auditor", "owner", "admin")      # read decisions, facts, clocks, reports, rules
AUDITOR = ("auditor", "admin")              # verify the decision log


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
_known: dict[str, tuple[str, float]] = {}     # token -> (role, until when it is trusted)


def _role_of_request() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    now = time.monotonic()
    cached = _known.get(token)
    if cached and cached[1] > now:
        return cached[0]
    role = current_app.extensions["slm"].store.token_role(token)
    if role is not None:
        if len(_known) > 1000:
            _known.clear()
        _known[token] = (role, now + TOKEN_CACHE_SECONDS)
    return role
