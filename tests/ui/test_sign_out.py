"""Signing out ends the session on every node that serves the console, and after a restart
(issue 20, item 14): two apps, each over its own store and service, on one database
(SQLite and PostgreSQL), sharing the secret key as OPERATIONS.md says nodes must."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.app import create_app
from api.ui.session import ENDED_MARGIN
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO
from tests.support.console import csrf_of

SECRET = "the same key on every node"
COOKIE = "slm_session"


class Node:
    """One process's worth of the service: its own store (connections), service and app."""

    def __init__(self, url: str, wall, role: str):
        self.store = Store.open(url)
        self.service = SlmService(self.store, PORTFOLIO, now=wall, role=role)
        self.service.start(background=False)
        self.app = create_app(self.service, secret_key=SECRET)

    def client(self, cookie: str | None = None):
        client = self.app.test_client()
        if cookie is not None:
            client.set_cookie(COOKIE, cookie, path="/ui")
        return client

    def stop(self) -> None:
        self.service.stop()
        self.store.close()


@pytest.fixture
def nodes(url, wall):
    """``nodes(role)`` starts a node on the test's database; all are stopped at the end."""
    started: list[Node] = []

    def start(role: str = "all") -> Node:
        started.append(Node(url, wall, role))
        return started[-1]

    yield start
    for node in started:
        node.stop()


def sign_in(node: Node, token: str):
    client = node.client()
    assert client.post("/ui/login", data={"token": token, "csrf": csrf_of(client)}).status_code == 302
    return client


def refused(response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/ui/login")


def test_a_sign_out_on_one_node_ends_the_session_on_the_other_and_after_a_restart(nodes):
    a, b = nodes("all"), nodes("api")
    token = a.store.add_token("auditor")
    client = sign_in(a, token)
    cookie = client.get_cookie(COOKIE, path="/ui").value
    assert b.client(cookie).get("/ui/decisions").status_code == 200      # the cookie works on either node

    assert client.post("/ui/logout", data={"csrf": csrf_of(client, "/ui/decisions")}).status_code == 302
    copied = b.client(cookie)
    answer = copied.get("/ui/decisions")                                 # the very next request
    assert refused(answer)
    assert copied.get_cookie(COOKIE, path="/ui") is None                 # and the copy is deleted there
    assert refused(a.client(cookie).get("/ui/decisions"))

    b.stop()
    restarted = nodes("api")
    assert refused(restarted.client(cookie).get("/ui/decisions"))
    again = sign_in(restarted, token)                                    # a new sign-in works as before
    assert again.get("/ui/decisions").status_code == 200


def test_no_route_signs_a_signed_out_session_again(nodes):
    """Flask signs a permanent session again on every response: a signed-out one must not
    get a fresh cookie from any route (it would outlive the record of its sign-out)."""
    a = nodes("all")
    client = sign_in(a, a.store.add_token("admin"))
    cookie = client.get_cookie(COOKIE, path="/ui").value
    client.post("/ui/logout", data={"csrf": csrf_of(client, "/ui/decisions")})
    signer = a.app.session_interface.get_signing_serializer(a.app)
    for path in ("/ui/login", "/ui/static/console.css", "/healthz", "/v1/decisions", "/", "/ui/decisions"):
        answer = a.client(cookie).get(path)
        for header in answer.headers.getlist("Set-Cookie"):
            value = header.split(";", 1)[0].removeprefix(f"{COOKIE}=")
            if value:       # deleted, or a new session of its own (the sign-in form's CSRF token)
                assert {"sid", "token"}.isdisjoint(signer.loads(value)), (path, header)


def test_signed_out_sessions_are_kept_until_their_cookie_expires_then_pruned(url):
    now = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    with Store.open(url) as store, Store.open(url) as other:
        store.end_session("early", now + timedelta(hours=8), now)
        store.end_session("late", now + timedelta(hours=9), now + timedelta(hours=1))
        assert other.session_ended("early") and other.session_ended("late") and not other.session_ended("never")
        assert store.db.execute_sql("SELECT sid_hash FROM ended_sessions WHERE sid_hash = 'early'").fetchall() == []
        assert other.prune_ended_sessions(now + timedelta(hours=8)) == 1
        assert not store.session_ended("early") and store.session_ended("late")
        store.end_session("third", now + timedelta(hours=20), now + timedelta(hours=12))   # prunes on the way
        assert [store.session_ended(s) for s in ("late", "third")] == [False, True]


def test_a_sign_out_is_kept_past_the_cookies_lifetime(nodes):
    a = nodes("all")
    client = sign_in(a, a.store.add_token("auditor"))
    client.post("/ui/logout", data={"csrf": csrf_of(client, "/ui/decisions")})
    (until, ended), = a.store.db.execute_sql("SELECT until, ended_at FROM ended_sessions").fetchall()
    kept = datetime.fromisoformat(until.replace("Z", "+00:00")) - datetime.fromisoformat(ended.replace("Z", "+00:00"))
    assert kept == a.app.permanent_session_lifetime + ENDED_MARGIN
