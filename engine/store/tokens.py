"""API tokens: a role per token, kept only as a SHA-256 digest so the database never holds
a usable token; a name to list and revoke it by, the fact sources it may post (glob
patterns, README.md "Tokens") and when it expires.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

import peewee as pw

from engine.clock import utcnow
from engine.store.base import StoreBase
from engine.store.encoding import canonical_json, instant_text, now_text
from schemas.values import DURATION_EXAMPLES, format_instant, parse_duration, parse_instant, parse_rfc3339

ROLES = ("monitor", "owner", "auditor", "admin")
POSTERS = ("monitor",)        # the roles a token limited to sources may have
PREFIX = "slm_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@:/+-]{0,63}$")
NAME_RULE = "1 to 64 letters, digits, spaces and . _ @ : / + -, starting with a letter or digit"
MAX_PATTERN = 200


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Grant:
    """What a token allows: its role, the sources it may post facts as (empty: any) and
    until when (None: for ever)."""

    name: str
    role: str
    sources: tuple[str, ...] = ()
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def allows(self, source: str) -> bool:
        """Whether a fact from ``source`` may be posted with this token: ``*`` matches
        any characters (``/`` too), ``?`` one, ``[…]`` one of a set; case matters."""
        return not self.sources or any(fnmatchcase(source, p) for p in self.sources)


class TokenNameTaken(ValueError):
    """Another unrevoked token has the name."""


def parse_expiry(text: str, now: datetime) -> datetime:
    """``--expires``: a duration from ``now`` (``90d``, ``12h``) or an RFC 3339 instant
    (``2027-01-01T00:00:00Z``); it must lie ahead of ``now``."""
    raw = text.strip() if isinstance(text, str) else text
    try:
        at = (now + parse_duration(raw)).replace(microsecond=0)
    except ValueError:
        try:
            at = parse_rfc3339(raw)
        except ValueError:
            raise ValueError(f"{text!r} is neither a duration from now ({DURATION_EXAMPLES}) nor an "
                             "RFC 3339 time (example: 2027-01-01T00:00:00Z)") from None
    if at <= now:
        raise ValueError(f"{text!r} is not in the future (it is now {format_instant(now)})")
    return at


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"token name {name!r} is not usable: {NAME_RULE}")
    if name.startswith(PREFIX):
        raise ValueError(f"token name {name!r} starts with {PREFIX!r}, which tokens themselves do")
    return name


def check_sources(role: str, sources) -> tuple[str, ...]:
    patterns = tuple(sources or ())
    if patterns and role not in POSTERS:
        raise ValueError(f"{'an' if role[0] in 'aeiou' else 'a'} {role} token cannot be limited to sources: "
                         f"only {', '.join(POSTERS)} tokens post facts")
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > MAX_PATTERN \
                or not pattern.isprintable():
            raise ValueError(f"source pattern {pattern!r} is not usable: expected a glob of 1 to "
                             f"{MAX_PATTERN} printable characters, e.g. zabbix/*")
    return tuple(dict.fromkeys(patterns))


class Tokens(StoreBase):
    """Create, look up, list and revoke tokens."""

    def add_token(self, role: str, name: str | None = None, sources=(), expires_at: datetime | None = None) -> str:
        """Create a token; the plaintext is returned now and never stored. Without a name
        it is called ``ROLE-N``; a name another unrevoked token has is refused
        (:class:`TokenNameTaken`)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        patterns = check_sources(role, sources)
        if name is not None:
            check_name(name)
        expires = None if expires_at is None else instant_text(expires_at, "expires_at")
        token = PREFIX + secrets.token_urlsafe(32)
        T = self.m.Token
        try:
            with self.transaction():
                name = name if name is not None else self._default_name(role)
                if T.select().where((T.name == name) & ~T.revoked).exists():
                    raise TokenNameTaken(f"a token named {name!r} exists and is not revoked: revoke it "
                                         "first (slm token revoke NAME) or choose another name")
                T.insert(token_hash=token_digest(token), role=role, name=name, created_at=now_text(),
                         revoked=False, sources=canonical_json(list(patterns)) if patterns else None,
                         expires_at=expires).execute()
        except pw.IntegrityError:       # made at the same moment by another process
            raise TokenNameTaken(f"a token named {name!r} was just created: choose another name") from None
        return token

    def _default_name(self, role: str) -> str:
        T = self.m.Token
        taken = {n for (n,) in T.select(T.name).where(T.name.startswith(f"{role}-")).tuples()}
        n = 1
        while f"{role}-{n}" in taken:
            n += 1
        return f"{role}-{n}"

    def token_role(self, token) -> str | None:
        """The role of an unrevoked, unexpired token (now, by this machine's clock)."""
        if not isinstance(token, str) or not token:
            return None
        grant = self.digest_grant(token_digest(token))
        return None if grant is None or grant.expired(utcnow()) else grant.role

    def digest_grant(self, digest: str) -> Grant | None:
        """The grant of the unrevoked token with this SHA-256 digest, expired or not (the
        caller knows the time: api/auth.TokenCache). The console's session keeps the
        digest, never the token, so its cookie is no bearer token."""
        T = self.m.Token
        # E712: peewee turns == into SQL; `is False` would be Python's own comparison
        row = (T.select(T.name, T.role, T.sources, T.expires_at)
               .where((T.token_hash == digest) & (T.revoked == False))  # noqa: E712
               .tuples().first())
        if row is None:
            return None
        name, role, sources, expires = row
        return Grant(name, role, tuple(json.loads(sources)) if sources else (),
                     None if expires is None else parse_instant(expires))

    def tokens(self) -> list[dict]:
        """Every token, oldest first: name, role, sources, created, expires, revoked; never
        the token or its digest."""
        T = self.m.Token
        rows = T.select(T.name, T.role, T.sources, T.created_at, T.expires_at, T.revoked, T.revoked_at) \
            .order_by(T.seq).tuples()
        return [{"name": name, "role": role, "sources": json.loads(sources) if sources else [],
                 "created_at": _instant(created), "expires_at": _instant(expires),
                 "revoked": bool(revoked), "revoked_at": _instant(revoked_at)}
                for name, role, sources, created, expires, revoked, revoked_at in rows]

    def revoke_token(self, token_or_name: str) -> str | None:
        """Revoke the token given in plaintext (``slm_…``) or by its name (the unrevoked one
        of that name); the name of the token revoked, None if none was."""
        T = self.m.Token
        if not isinstance(token_or_name, str) or not token_or_name:
            return None
        which = T.token_hash == token_digest(token_or_name)
        if not token_or_name.startswith(PREFIX):
            which = which | (T.name == token_or_name)
        with self.transaction():
            row = T.select(T.seq, T.name).where(which & ~T.revoked).order_by(T.seq).tuples().first()
            if row is None:
                return None
            T.update(revoked=True, revoked_at=now_text()).where(T.seq == row[0]).execute()
            return row[1]


def _instant(text: str | None) -> str | None:
    return None if text is None else format_instant(parse_instant(text))
