"""Acknowledge from the message: an escalation's e-mail or webhook carries a signed,
expiring link (``/ack/<token>``, api/ack.py) that needs no token of the API.

The link names one notification (so who acknowledged is its recipient) and when it
expires, signed with HMAC-SHA256 under a key derived from the service's own secret: the
``--secret-key`` if given, else the audit key. Both outlive a restart and are the same on
every node, so a link stays good for its whole life; without either, messages carry no link.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_TTL = timedelta(days=3)
PATH = "/ack/"


class LinkError(ValueError):
    """A link that cannot be used; ``expired`` tells a stale one from a forged one."""

    def __init__(self, reason: str, expired: bool = False):
        super().__init__(reason)
        self.expired = expired


def link_key(secret_key: str | None, audit_key: bytes | None) -> bytes | None:
    """The links' key, derived (never the secret itself, so a link reveals nothing of it)."""
    root = secret_key.encode() if secret_key else audit_key
    return None if not root else hmac.new(root, b"slm acknowledgement links", hashlib.sha256).digest()


@dataclass(frozen=True)
class AckLinks:
    key: bytes
    ttl: timedelta = DEFAULT_TTL

    def token(self, notification: str, now: datetime) -> str:
        """A token naming ``notification``, good until ``now`` + ttl."""
        body = _b64(json.dumps({"n": notification, "e": int((now + self.ttl).timestamp())},
                               separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def url(self, base: str, notification: str, now: datetime) -> str:
        return f"{base.rstrip('/')}{PATH}{self.token(notification, now)}"

    def open(self, token: str, now: datetime) -> str:
        """The notification a token names; LinkError if forged, malformed or expired."""
        body, _, mac = token.partition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            raise LinkError("this link is not one slm made")
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            notification, expires = str(claims["n"]), int(claims["e"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise LinkError("this link is not one slm made") from None
        if now.timestamp() >= expires:
            raise LinkError("this link has expired: acknowledge in the console", expired=True)
        return notification

    def form_token(self, token: str) -> str:
        """What the confirmation page's form carries: proof that the POST came from a page
        slm served for this link (a site that only knows the link cannot make it)."""
        return self._mac("form|" + token)

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self.key, text.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
