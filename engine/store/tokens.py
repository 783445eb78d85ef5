"""API tokens: a role per token, kept only as a SHA-256 digest so the database never holds
a usable token.
"""
from __future__ import annotations

import hashlib
import secrets

from engine.store.base import StoreBase
from engine.store.encoding import now_text

ROLES = ("monitor", "owner", "auditor", "admin")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Tokens(StoreBase):
    """Create, look up and revoke tokens."""

    def add_token(self, role: str, name: str | None = None) -> str:
        """Create a token; the plaintext is returned now and never stored."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        token = "slm_" + secrets.token_urlsafe(32)
        with self.transaction():
            self.m.Token.insert(token_hash=token_digest(token), role=role, name=name,
                                created_at=now_text(), revoked=False).execute()
        return token

    def token_role(self, token) -> str | None:
        if not isinstance(token, str) or not token:
            return None
        return self.digest_role(token_digest(token))

    def digest_role(self, digest: str) -> str | None:
        """The role of the unrevoked token with this SHA-256 digest: the console's session
        keeps the digest, never the token, so its cookie is no bearer token."""
        T = self.m.Token
        row = (T.select(T.role)
               .where((T.token_hash == digest) & (T.revoked == False))  # noqa: E712
               .first())
        return None if row is None else row.role

    def revoke_token(self, token: str) -> bool:
        T = self.m.Token
        with self.transaction():
            return bool(T.update(revoked=True).where(T.token_hash == token_digest(token))
                        .execute())
