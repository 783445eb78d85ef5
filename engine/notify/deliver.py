"""Delivery: one message to one recipient, through its channel, or an exception saying
whether trying again may help.

- e-mail through an SMTP relay (``smtp://[user:pass@]host:port``, STARTTLS when the relay
  offers it; ``smtps://`` for TLS from the start), ``Message-ID`` the message's id;
- webhooks: ``POST`` of JSON (``webhook_body``), signed ``X-SLM-Signature: sha256=<hex
  HMAC-SHA256 of the body>`` with the webhook secret, ``Idempotency-Key`` the message id;
- chat and paging URLs (``slack://``, ``msteams://``, ``mmost://``, ``tgram://``, …) through
  Apprise;
- write-backs (an escalation level's ``call`` to Jira, ServiceNow or PagerDuty) as those
  tools' REST calls (engine/notify/writeback.py).

Every call has a timeout, so a slow receiver holds only its own delivery (the worker runs
one destination at a time per thread). Secrets never leave this module in clear:
:func:`redact` is applied to every URL and error text that is logged, stored or returned.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit, urlunsplit

from engine.clock import utcnow
from engine.notify.acklink import AckLinks
from engine.notify.group import Message

USER_AGENT = "slm-notify/1"


class DeliveryError(Exception):
    """An attempt failed; ``retry``: whether a later attempt may succeed."""

    def __init__(self, reason: str, retry: bool = True):
        super().__init__(reason)
        self.reason, self.retry = reason, retry


class Undeliverable(DeliveryError):
    """No channel can carry it (e-mail without a relay, a recipient that is no address)."""

    def __init__(self, reason: str):
        super().__init__(reason, retry=False)


@dataclass(frozen=True)
class Channels:
    """How to reach people: the relay, the sender, the webhook secret, the links' base."""

    smtp_url: str | None = None
    mail_from: str | None = None
    webhook_secret: str | None = None
    public_url: str = "http://127.0.0.1:8080"
    timeout: float = 10.0
    ack_links: AckLinks | None = None      # signs an escalation's acknowledgement link (None: no link)

    def secrets(self) -> list[str]:
        """Texts never to show: the relay's password, the webhook secret."""
        out = [self.webhook_secret] if self.webhook_secret else []
        password = urlsplit(self.smtp_url).password if self.smtp_url else None
        if password:
            out += [password, unquote(password)]
        return out


def send(message: Message, decisions: dict[str, dict], channels: Channels) -> None:
    """Deliver ``message`` (``decisions``: the records its notifications are about)."""
    if message.channel == "webhook":
        return _webhook(message, decisions, channels)
    if message.channel == "email":
        return _email(message, decisions, channels)
    if message.channel == "chat":
        return _chat(message, decisions, channels)
    if message.channel == "writeback":           # a message of one (engine/notify/group.py)
        from engine.notify.writeback import send_writeback
        return send_writeback(message.notifications[0], channels.timeout)
    raise Undeliverable(f"no channel for recipient {redact(message.recipient)!r} "
                        "(an e-mail address, an http(s) URL or an Apprise URL)")


# ---- the message's content ---------------------------------------------------------------

def ack_url(note: dict, record: dict, public_url: str, ack: AckLinks | None) -> str | None:
    """The signed link that acknowledges ``note``'s escalation (engine/notify/acklink.py), if
    it is one and links are signed."""
    if ack is None or record.get("kind") != "escalation" or record.get("shadow"):
        return None
    return ack.url(public_url, note["id"], utcnow())


def webhook_body(message: Message, decisions: dict[str, dict], public_url: str, ack: AckLinks | None = None) -> bytes:
    """The JSON a webhook receives: the message id, and each notification with its
    decision and links to the decision and its trace (and, for an escalation, the link
    that acknowledges it)."""
    base = public_url.rstrip("/")
    items = []
    for note in message.notifications:
        record = decisions.get(note["decision"]) or {"id": note["decision"]}
        acknowledge = ack_url(note, record, public_url, ack)
        items.append({
            "id": note["id"], "activity": note.get("activity"), "letters": note.get("raci"),
            "recipient": redact(note["recipient"]), "message": note.get("message"),
            "decision": {key: record.get(key) for key in
                         ("id", "kind", "target", "subject", "service", "at", "severity", "level", "shadow")}
                        | ({"retracts": record["data"]["retracts"]} if record.get("kind") == "retracted" else {}),
            "links": {"decision": f"{base}/v1/decisions/{note['decision']}",
                      "trace": f"{base}/v1/decisions/{note['decision']}/trace"}
                     | ({"acknowledge": acknowledge} if acknowledge else {})})
    body = {"id": message.id, "type": "slm.notification", "activity": message.activity,
            "sent_at": utcnow().isoformat().replace("+00:00", "Z"), "notifications": items}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def subject_line(message: Message) -> str:
    if len(message.notifications) == 1:
        return _one_line(message.notifications[0].get("message") or message.activity)
    return f"[slm] {message.activity}: {len(message.notifications)} notifications"


def text_body(message: Message, decisions: dict[str, dict], public_url: str, ack: AckLinks | None = None) -> str:
    """Plain text listing every notification (and its id) the message carries, with the
    link that acknowledges an escalation when ``ack`` signs them."""
    base = public_url.rstrip("/")
    lines = []
    for note in message.notifications:
        record = decisions.get(note["decision"], {})
        lines.append(f"- {note.get('message')}")
        lines.append(f"  as {note.get('raci') or 'caller'} ({', '.join(note.get('roles') or [])}); "
                     f"decision {record.get('kind', '')} at {record.get('at', '')}")
        lines.append(f"  trace: {base}/v1/decisions/{note['decision']}/trace")
        acknowledge = ack_url(note, record, public_url, ack)
        if acknowledge:
            lines.append(f"  acknowledge (stops this level's repeats): {acknowledge}")
        lines.append(f"  notification {note['id']}")
    lines += ["", f"message {message.id}"]
    return "\n".join(lines) + "\n"


def sign(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``: the X-SLM-Signature header's value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ---- channels ------------------------------------------------------------------------------

def _webhook(message: Message, decisions: dict[str, dict], channels: Channels) -> None:
    import requests
    body = webhook_body(message, decisions, channels.public_url, channels.ack_links)
    headers = {"Content-Type": "application/json", "Idempotency-Key": message.id, "User-Agent": USER_AGENT,
               "X-SLM-Message-Id": message.id}
    if channels.webhook_secret:
        headers["X-SLM-Signature"] = sign(body, channels.webhook_secret)
    try:
        response = requests.post(message.recipient, data=body, headers=headers,
                                 timeout=(min(3.0, channels.timeout), channels.timeout), allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryError(f"{type(exc).__name__} posting to {redact(message.recipient)}") from None
    if 200 <= response.status_code < 300:
        return
    retry = response.status_code >= 500 or response.status_code in (408, 425, 429)
    raise DeliveryError(f"HTTP {response.status_code} from {redact(message.recipient)}", retry=retry)


def _email(message: Message, decisions: dict[str, dict], channels: Channels) -> None:
    if not channels.smtp_url:
        raise Undeliverable("no SMTP relay configured (slm serve --smtp URL or SLM_SMTP_URL)")
    mail = EmailMessage()
    mail["From"] = channels.mail_from or f"slm@{socket.getfqdn()}"
    mail["To"] = message.recipient
    mail["Subject"] = subject_line(message)
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = f"<{message.id}@slm>"
    mail["X-SLM-Notifications"] = " ".join(message.ids) if len(message.ids) <= 20 else f"{len(message.ids)} ids"
    mail.set_content(text_body(message, decisions, channels.public_url, channels.ack_links))
    url = urlsplit(channels.smtp_url)
    where = redact(channels.smtp_url)
    host = url.hostname or ""       # none in the URL: as smtplib's default, nothing is connected
    try:
        client: smtplib.SMTP
        if url.scheme == "smtps":
            client = smtplib.SMTP_SSL(host, url.port or 465, timeout=channels.timeout,
                                      context=ssl.create_default_context())
        elif url.scheme == "smtp":
            client = smtplib.SMTP(host, url.port or 25, timeout=channels.timeout)
        else:
            raise Undeliverable(f"the SMTP URL must be smtp:// or smtps://, not {url.scheme}://")
        with client:
            client.ehlo()
            if url.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if url.username:
                client.login(unquote(url.username), unquote(url.password or ""))
            client.send_message(mail)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"the relay {where} refused {message.recipient}: "
                            f"{_smtp_reason(exc.recipients)}", retry=False) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"the relay {where} refused the login ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"the relay {where} answered {exc.smtp_code}", retry=exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__} talking to the relay {where}: "
                            f"{_scrub(str(exc), channels)}") from None


def _chat(message: Message, decisions: dict[str, dict], channels: Channels) -> None:
    import apprise
    sender = apprise.Apprise()
    if not sender.add(message.recipient):
        raise DeliveryError(f"Apprise does not know the URL {redact(message.recipient)}", retry=False)
    body = text_body(message, decisions, channels.public_url)
    if not sender.notify(title=subject_line(message), body=body):
        raise DeliveryError(f"Apprise could not deliver to {redact(message.recipient)}")


# ---- secrets -------------------------------------------------------------------------------

def redact(url: str) -> str:
    """A URL fit to show: no password, no query string; for chat URLs (whose path holds
    the tokens) nothing after the host. E-mail addresses are shown as they are."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("://")[0] + "://***"
    user = f"{parts.username}:***@" if parts.password else (f"{parts.username}@" if parts.username else "")
    if parts.scheme in ("http", "https", "smtp", "smtps"):
        return urlunsplit((parts.scheme, user + host + port, parts.path, "***" if parts.query else "", ""))
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2][:4]}***"


def _scrub(text: str, channels: Channels) -> str:
    for secret in channels.secrets():
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"://[^/\s:@]+:[^@\s]+@", "://***:***@", text)


def _smtp_reason(recipients: dict) -> str:
    return "; ".join(f"{code} {reason.decode(errors='replace') if isinstance(reason, bytes) else reason}"
                     for code, reason in recipients.values())


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:200]
