"""Verifying a webhook's signature the way its vendor signs it.

- ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`` (GitHub; Jira
  Cloud signs the same way under ``X-Hub-Signature``, named with ``header``).
- ``pagerduty``: ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]``, HMAC-SHA256 of the body;
  any one matching is enough (PagerDuty lists several while a secret is rotated).
- ``zendesk``: ``X-Zendesk-Webhook-Signature``, base64 of HMAC-SHA256 of the
  ``X-Zendesk-Webhook-Signature-Timestamp`` header followed by the body; the timestamp
  must be within ``tolerance`` of the server clock, so a captured request cannot be replayed
  later.
- ``shared``: the secret itself in the header the mapping names (ServiceNow's REST message,
  Opsgenie's custom headers).

The secret is read from the environment variable the mapping names when a request comes,
never from the rule files. Digests are compared in constant time.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping as Headers
from datetime import datetime

from engine.lang.mapping import Signature
from schemas.values import format_whole_duration

PAGERDUTY = "x-pagerduty-signature"
ZENDESK = "x-zendesk-webhook-signature"
ZENDESK_TIME = "x-zendesk-webhook-signature-timestamp"


class SignatureError(Exception):
    """The request is not signed as its mapping requires; the message says how (never the secret)."""


def verify(signature: Signature, headers: Headers[str, str], body: bytes, now: datetime,
           environ: Headers[str, str] = os.environ) -> None:
    """Raise SignatureError unless ``body`` carries a good signature. ``headers`` are keyed
    in lower case."""
    secret = environ.get(signature.secret_env)
    if not secret:
        raise SignatureError(f"the mapping's secret ({signature.secret_env}) is not set on the server, so no "
                             "request to it can be verified")
    key = secret.encode()
    if signature.scheme == "github":
        name = (signature.header or "X-Hub-Signature-256").lower()
        sent = _header(headers, name)
        good = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sent.encode(), good.encode()):
            raise SignatureError(f"{name}: not the HMAC-SHA256 of the body (sha256=<hex>) with the mapping's secret")
    elif signature.scheme == "pagerduty":
        sent = _header(headers, PAGERDUTY)
        expected = ("v1=" + hmac.new(key, body, hashlib.sha256).hexdigest()).encode()
        if not any(hmac.compare_digest(part.strip().encode(), expected) for part in sent.split(",")):
            raise SignatureError(f"{PAGERDUTY}: no v1= signature is the HMAC-SHA256 of the body with the "
                                 "mapping's secret")
    elif signature.scheme == "zendesk":
        sent, stamp = _header(headers, ZENDESK), _header(headers, ZENDESK_TIME)
        digest = base64.b64encode(hmac.new(key, stamp.encode() + body, hashlib.sha256).digest())
        if not hmac.compare_digest(sent.strip().encode(), digest):
            raise SignatureError(f"{ZENDESK}: not the base64 HMAC-SHA256 of the timestamp and the body with the "
                                 "mapping's secret")
        _recent(stamp, now, signature)
    else:
        name = (signature.header or "").lower()
        if not hmac.compare_digest(_header(headers, name).encode(), key):
            raise SignatureError(f"{name}: not the mapping's shared secret")


def _header(headers: Headers[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise SignatureError(f"{name}: missing; this mapping takes only signed requests")
    return value


def _recent(stamp: str, now: datetime, signature: Signature) -> None:
    try:
        at = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(f"{ZENDESK_TIME}: {stamp!r} is not a time") from None
    if at.tzinfo is None:
        raise SignatureError(f"{ZENDESK_TIME}: {stamp!r} has no UTC offset")
    off = abs(now - at)
    if off > signature.tolerance:
        raise SignatureError(f"{ZENDESK_TIME}: signed {format_whole_duration(off)} away from the server clock; "
                             f"at most {format_whole_duration(signature.tolerance)} (a replayed request?)")
