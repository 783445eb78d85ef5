"""Sending a write-back: the request routing rendered (a notification's ``call``,
engine/lang/writeback.py) made into the tool's own REST calls, with the credentials read
from this process's environment at the moment it sends.

- Jira (REST API v2, Cloud and Data Center): ``POST /rest/api/2/issue/{issue}/comment``
  with ``{"body": comment}``, then ``PUT /rest/api/2/issue/{issue}`` with ``{"fields": …}``;
- ServiceNow (Table API): ``PATCH /api/now/table/{table}/{sys_id}`` with the fields, the
  sys_id found first by ``GET /api/now/table/{table}?sysparm_query=number=…`` unless given;
- PagerDuty (Events API v2): ``POST /v2/enqueue`` of a ``trigger`` with the routing key.

HTTP Basic from ``user_env`` and ``token_env``, or a Bearer token from ``token_env`` alone
(PagerDuty: the routing key, in the body). A missing variable fails the delivery at once,
naming the variable and where the rule is written.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from engine.notify.deliver import USER_AGENT, DeliveryError, redact

JSON = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}
RETRIED = (408, 425, 429)          # and every 5xx: the tool may take it later


def send_writeback(note: dict, timeout: float, environ: Mapping[str, str] | None = None) -> None:
    """Make the write-back ``note`` asks for; DeliveryError if it did not go through."""
    call = note.get("call")
    if not isinstance(call, dict) or call.get("kind") not in _SENDERS:
        raise DeliveryError(f"notification {note['id']} has no write-back request to send", retry=False)
    secrets = _credentials(call, os.environ if environ is None else environ)
    _SENDERS[call["kind"]](call, secrets, timeout)


def _credentials(call: dict, environ: Mapping[str, str]) -> dict[str, str]:
    found = {}
    for name, variable in call["credentials"].items():
        value = environ.get(variable)
        if not value:
            raise DeliveryError(f"{variable} is not set in slm's environment: the {call['kind']} write-back of "
                                f"{call['where']} needs it (credentials: {name})", retry=False)
        found[name] = value
    return found


def _auth(secrets: dict[str, str]) -> dict[str, Any]:
    """requests' auth for Basic (user and token), or a Bearer header (token alone)."""
    if "user_env" in secrets:
        return {"auth": (secrets["user_env"], secrets["token_env"])}
    return {"headers": {**JSON, "Authorization": f"Bearer {secrets['token_env']}"}}


def _jira(call: dict, secrets: dict[str, str], timeout: float) -> None:
    base = f"{call['url'].rstrip('/')}/rest/api/2/issue/{_segment(call['issue'], 'issue')}"
    if call.get("comment"):
        _request("POST", base + "/comment", {"body": call["comment"]}, secrets, timeout)
    if call.get("fields"):
        _request("PUT", base, {"fields": call["fields"]}, secrets, timeout)


def _servicenow(call: dict, secrets: dict[str, str], timeout: float) -> None:
    table = f"{call['url'].rstrip('/')}/api/now/table/{call['table']}"
    sys_id = call.get("sys_id")
    if not sys_id:
        number = str(call["number"])
        if not number or "^" in number or "=" in number:
            raise DeliveryError(f"{number!r} is no record number to look up in {call['table']}", retry=False)
        found = _request("GET", table, None, secrets, timeout,
                         params={"sysparm_query": f"number={number}", "sysparm_fields": "sys_id",
                                 "sysparm_limit": "1"})
        records = (found or {}).get("result") or []
        if not records or not records[0].get("sys_id"):
            raise DeliveryError(f"{redact(table)} has no record numbered {number!r}", retry=False)
        sys_id = records[0]["sys_id"]
    _request("PATCH", f"{table}/{_segment(sys_id, 'sys_id')}", call["fields"], secrets, timeout)


def _pagerduty(call: dict, secrets: dict[str, str], timeout: float) -> None:
    payload = {key: call[key] for key in ("summary", "source", "severity", "component", "group", "class",
                                          "custom_details") if call.get(key) not in (None, "", {})}
    payload["summary"] = str(payload.get("summary", ""))[:1024]       # the Events API's limit
    if payload.get("severity") not in ("critical", "error", "warning", "info"):
        raise DeliveryError(f"severity {payload.get('severity')!r} is not one of critical, error, warning, info "
                            f"({call['where']})", retry=False)
    body = {"routing_key": secrets["token_env"], "event_action": "trigger", "dedup_key": call["dedup_key"],
            "payload": payload, "client": "slm"}
    _request("POST", call["url"], body, {}, timeout)


_SENDERS = {"jira": _jira, "servicenow": _servicenow, "pagerduty": _pagerduty}


def _request(method: str, url: str, body: Any, secrets: dict[str, str], timeout: float,
             params: dict[str, str] | None = None) -> Any:
    """One call; its JSON answer (None if it has none); DeliveryError unless 2xx."""
    import requests
    options = _auth(secrets) if secrets else {"headers": JSON}
    options.setdefault("headers", JSON)
    try:
        response = requests.request(method, url, json=body, params=params, timeout=(min(3.0, timeout), timeout),
                                    allow_redirects=False, **options)
    except requests.RequestException as exc:
        raise DeliveryError(f"{type(exc).__name__} on {method} {redact(url)}") from None
    if not 200 <= response.status_code < 300:
        retry = response.status_code >= 500 or response.status_code in RETRIED
        raise DeliveryError(f"HTTP {response.status_code} from {method} {redact(url)}{_why(response)}", retry=retry)
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def _why(response: Any) -> str:
    """What a refusing tool said, shortly (Jira's errorMessages, ServiceNow's error.message, …)."""
    try:
        text = json.dumps(response.json(), separators=(",", ":"))
    except ValueError:
        text = response.text or ""
    text = " ".join(text.split())[:300]
    return f": {text}" if text else ""


def _segment(value: object, name: str) -> str:
    """A rendered path segment, refused if it could leave its place in the URL."""
    text = str(value).strip()
    if not text or any(c in text for c in "/?#\\ ") or text in (".", ".."):
        raise DeliveryError(f"{name} {text!r} is not one path segment", retry=False)
    return text
