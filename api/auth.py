"""Bearer tokens with roles (README.md, "The API"): who may post facts, change rules, read, verify.

Tokens are looked up by their SHA-256 in the store; the plaintext is never kept. A valid
token is trusted for a few seconds without asking the store again (monitoring tools post
often), so a revocation takes effect within ``TOKEN_CACHE_SECONDS``; an unknown one is
remembered as unknown as briefly, so a flood of bad tokens costs no query each. Expiry is
checked on every request. A token limited to sources may post only facts whose ``source``
one of its patterns matches (:func:`refuse_foreign_sources`).
"""
from __future__ import annotations

import base64
import functools
import threading
import time

from flask import current_app, g, request
from flask_smorest import abort

from engine.clock import utcnow
from engine.store.store import token_digest
from engine.store.tokens import Grant
from schemas.values import format_instant

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
BEARER_OR_BASIC: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"basicAuth": []}]
SECURITY_SCHEME = {"type": "http", "scheme": "bearer",
                   "description": "a token from `slm token create --role ROLE`"}
BASIC_SCHEME = {"type": "http", "scheme": "basic",
                "description": "the token as the password (any user name), for tools that set no header but take "
                               "credentials in the URL: `https://slm:TOKEN@host/v1/ingest/github`; "
                               "POST /v1/ingest/{mapping} only"}

MONITOR = ("monitor", "admin")              # post facts
OWNER = ("owner", "admin")                  # check and reload rules
READER = ("auditor", "owner", "admin")      # read decisions, facts, clocks, reports, rules
AUDITOR = ("auditor", "admin")              # verify the decision log
ADMIN = ("admin",)                          # operate: re-queue notifications
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="slm"'}


def requires(blueprint, roles: tuple[str, ...], basic: bool = False):
    """Decorate a view: 401 without a valid token, 403 if its role is not in ``roles``.
    ``basic``: the token may also come as the password of HTTP Basic authentication, for
    tools whose webhooks can set no header but take credentials in the URL
    (``https://slm:TOKEN@host/…``: GitHub, Jira)."""

    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            grant = _grant_of_request(basic)
            if grant is None:
                abort(401, message="a valid bearer token is required (Authorization: Bearer slm_…)",
                      headers=CHALLENGE)
            cache = current_app.extensions["slm_tokens"]
            if grant.expired(cache.wall()):
                abort(401, message=f"the token {grant.name!r} expired at {format_instant(grant.expires_at)}",
                      headers=CHALLENGE)
            role = grant.role
            if role not in roles:
                abort(403, message=f"role {role!r} may not do this; allowed: {', '.join(roles)}")
            g.role, g.grant = role, grant
            return view(*args, **kwargs)

        doc = blueprint.doc(security=BEARER_OR_BASIC if basic else BEARER, description=f"Roles: {', '.join(roles)}.")
        return doc(guarded)

    return decorate


TOKEN_CACHE_SECONDS = 5.0     # a revoked token stops working within this long
MISS_CACHE_SECONDS = 5.0      # an unknown token is not asked of the store again for this long
MISS_CACHE_SIZE = 10_000      # unknown digests remembered at most (the oldest go first)


class TokenCache:
    """Grants of recently checked tokens, by the token's SHA-256, one cache per app: a
    known token is asked of the store again once ``seconds`` have passed, an unknown one
    (never issued, revoked) once ``miss_seconds`` have. Both maps are bounded, dropping
    their oldest entries. ``lookup`` takes a digest and gives a :class:`Grant` or None;
    the console's sessions hold the digest and ask the same cache (api/ui). A grant is
    returned expired or not: callers compare ``expires_at`` with :attr:`wall`."""

    def __init__(self, lookup, seconds: float = TOKEN_CACHE_SECONDS, clock=time.monotonic, size: int = 1000,
                 miss_seconds: float = MISS_CACHE_SECONDS, miss_size: int = MISS_CACHE_SIZE, wall=utcnow):
        self.lookup, self.seconds, self.clock, self.size = lookup, seconds, clock, size
        self.miss_seconds, self.miss_size, self.wall = miss_seconds, miss_size, wall
        self._grants: dict[str, tuple[Grant, float]] = {}   # digest -> (grant, trusted until)
        self._misses: dict[str, float] = {}                  # digest -> unknown until
        self._lock = threading.Lock()

    def grant(self, token: str) -> Grant | None:
        return self.grant_of_digest(token_digest(token))

    def grant_of_digest(self, key: str) -> Grant | None:
        now = self.clock()
        with self._lock:
            cached = self._grants.get(key)
            if cached and cached[1] > now:
                return cached[0]
            if self._misses.get(key, now) > now:
                return None
        grant = self.lookup(key)
        with self._lock:
            if grant is None:
                self._grants.pop(key, None)
                _remember(self._misses, key, now + self.miss_seconds, self.miss_size)
            else:
                self._misses.pop(key, None)
                _remember(self._grants, key, (grant, now + self.seconds), self.size)
        return grant

    def role(self, token: str) -> str | None:
        """The role of a valid token (known, unrevoked, unexpired), else None."""
        return self.role_of_digest(token_digest(token))

    def role_of_digest(self, key: str) -> str | None:
        grant = self.grant_of_digest(key)
        return None if grant is None or grant.expired(self.wall()) else grant.role


def _remember(entries: dict, key: str, value, size: int) -> None:
    """Put ``key`` last (dicts keep insertion order), dropping the oldest entries beyond ``size``."""
    entries.pop(key, None)
    while entries and len(entries) >= size:
        del entries[next(iter(entries))]
    entries[key] = value


MAX_SOURCE_ERRORS = 20        # facts named in a 403's errors; the detail says how many in all


def refuse_foreign_sources(facts: list) -> None:
    """403 if the request's token is limited to sources and a fact's ``source`` matches
    none of its patterns; called before the service sees the facts, so nothing of the
    request is stored. A fact without a string ``source`` is left to validation (422)."""
    grant = g.get("grant")
    if grant is None or not grant.sources:
        return
    refused = [(i, fact["source"]) for i, fact in enumerate(facts)
               if isinstance(fact, dict) and isinstance(fact.get("source"), str) and not grant.allows(fact["source"])]
    if not refused:
        return
    patterns = ", ".join(grant.sources)
    sources = list(dict.fromkeys(source for _, source in refused))
    shown = ", ".join(repr(s) for s in sources[:5]) + (f" and {len(sources) - 5} more" if len(sources) > 5 else "")
    abort(403, message=f"the token {grant.name!r} may post facts only from sources matching {patterns}; "
                       f"{len(refused)} fact(s) of this request come from {shown}: nothing from this request "
                       "was stored",
          errors={f"[{i}].source": [f"{source!r} matches none of the token's source patterns ({patterns})"]
                  for i, source in refused[:MAX_SOURCE_ERRORS]})


def token_name() -> str | None:
    """The name of the request's token (what a rule change records as who made it)."""
    grant = _grant_of_request()
    return None if grant is None else grant.name


def _grant_of_request(basic: bool = False) -> Grant | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if basic and scheme.lower() == "basic" and token:
        try:
            token = base64.b64decode(token, validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return None
        scheme = "bearer"
    if scheme.lower() != "bearer" or not token:
        return None
    return current_app.extensions["slm_tokens"].grant(token)
