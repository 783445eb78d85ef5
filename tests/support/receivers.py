"""Real receivers for delivery tests, on 127.0.0.1 only: an SMTP server (aiosmtpd), a
threaded HTTP server that verifies the X-SLM-Signature of what it is posted, and a stand-in
for a ticketing tool's REST API that records every request (write-back)."""
from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.support.serving import free_port

NOTE_ID = re.compile(r"notification (ntf_[0-9a-f]{24})")


class SmtpReceiver:
    """A mail server that keeps every message it accepts: (recipients, parsed message)."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.Message]] = []
        self.port = free_port()
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                receiver.messages.append((list(envelope.rcpt_tos),
                                          email.message_from_bytes(envelope.content, policy=email.policy.default)))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def mailbox(self, address: str) -> list[email.message.Message]:
        return [m for rcpt, m in self.messages if address in rcpt]

    def notification_ids(self, address: str) -> list[str]:
        """Every notification id the mails to ``address`` carry (repeats kept)."""
        return [i for m in self.mailbox(address) for i in NOTE_ID.findall(m.get_content())]


class HttpReceiver:
    """Records each POST; checks its signature with ``secret``; ``status`` to answer with;
    ``delay`` seconds before answering; stop()/start() to be down and back on one port."""

    def __init__(self, secret: str | None = None, port: int | None = None):
        self.secret, self.port = secret, port or free_port()
        self.posts: list[dict] = []
        self.bad_signatures = 0
        self.status, self.delay = 200, 0.0
        self.lock = threading.Lock()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.delay:
                    time.sleep(receiver.delay)
                signed = True
                if receiver.secret is not None:
                    expected = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                    signed = hmac.compare_digest(expected, self.headers.get("X-SLM-Signature", ""))
                with receiver.lock:
                    if not signed:
                        receiver.bad_signatures += 1
                    status = receiver.status if signed else 401
                    if status == 200:
                        receiver.posts.append({"path": self.path, "headers": dict(self.headers),
                                               "body": json.loads(body)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def notification_ids(self, path: str | None = None) -> list[str]:
        """Every notification id posted (repeats kept)."""
        with self.lock:
            return [n["id"] for p in self.posts if path is None or p["path"] == path
                    for n in p["body"]["notifications"]]

    def unique_ids(self) -> set[str]:
        """What the receiver acts on after dropping repeated message ids (Idempotency-Key)."""
        seen, ids = set(), set()
        with self.lock:
            for p in self.posts:
                key = p["headers"]["Idempotency-Key"]
                if key in seen:
                    continue
                seen.add(key)
                ids.update(n["id"] for n in p["body"]["notifications"])
        return ids


class ApiReceiver:
    """A stand-in for a tool's REST API (Jira, ServiceNow, PagerDuty): records every request
    (method, path with its query, headers, JSON body) and answers each with the first of
    ``answers`` whose method and path prefix match: ``(status, JSON or None)``; 200 and no
    body otherwise."""

    def __init__(self):
        self.port = free_port()
        self.requests: list[dict] = []
        self.answers: list[tuple[str, str, int, object]] = []       # (method, path prefix, status, body)
        self.lock = threading.Lock()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, method: str, prefix: str, status: int, body: object = None) -> None:
        self.answers.append((method, prefix, status, body))

    def start(self) -> ApiReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append({"method": self.command, "path": self.path,
                                              "headers": dict(self.headers),
                                              "body": json.loads(raw) if raw else None})
                    status, body = next(((s, b) for m, prefix, s, b in receiver.answers
                                         if m == self.command and self.path.startswith(prefix)), (200, None))
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = _any

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def wait_for(predicate, timeout: float = 30.0, every: float = 0.05):
    """Wait until ``predicate()`` is truthy; its value (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}")
