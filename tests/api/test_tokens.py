"""Tokens: names, source limits, expiry, revoking by name, and the cache of unknown tokens,
in the store, the CLI and the API (Flask's test client over the real service), on SQLite
and PostgreSQL.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent

from api.app import create_app
from api.auth import MISS_CACHE_SECONDS, TokenCache
from cli import main
from engine.service.live import SlmService
from engine.store.store import Store
from engine.store.tokens import Grant, TokenNameTaken, parse_expiry
from tests.support import ROOT, fact, fact_count, small_rules

pytestmark = pytest.mark.wallclock     # reads this machine's clock: CI runs it again years ahead

PROBLEM = "application/problem+json"
NOW = datetime(2026, 11, 5, 4, 0, tzinfo=UTC)


# ---- the store ------------------------------------------------------------------------

@pytest.fixture
def store(url):
    with Store.open(url) as store:
        yield store


def test_tokens_get_readable_names_unique_among_the_unrevoked(store):
    first, second = store.add_token("monitor"), store.add_token("monitor")
    store.add_token("admin", "ops")
    assert [t["name"] for t in store.tokens()] == ["monitor-1", "monitor-2", "ops"]
    with pytest.raises(TokenNameTaken, match="'ops' exists and is not revoked"):
        store.add_token("auditor", "ops")
    with pytest.raises(ValueError, match="not usable"):
        store.add_token("auditor", " leading space")
    assert len(store.tokens()) == 3                        # refused: nothing stored
    assert store.revoke_token("monitor-1") == "monitor-1"
    assert store.token_role(first) is None and store.token_role(second) == "monitor"
    assert store.revoke_token("monitor-1") is None         # already revoked
    assert store.revoke_token(second) == "monitor-2"       # by the token itself
    store.add_token("monitor")
    assert store.tokens()[-1]["name"] == "monitor-3"       # a revoked token's name is not reused by default
    store.add_token("auditor", "monitor-1")                # but may be chosen
    listed = json.dumps(store.tokens())
    assert "slm_" not in listed and not re.search(r"[0-9a-f]{64}", listed)


def test_a_token_carries_its_sources_and_expiry(store):
    # token_role reads this machine's clock: the expiry is 90 days from it, in whole seconds
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=90)
    token = store.add_token("monitor", "zabbix", sources=["zabbix/*", "zabbix/*", "nagios/eu"], expires_at=expires)
    from engine.store.tokens import token_digest
    grant = store.digest_grant(token_digest(token))
    assert grant == Grant("zabbix", "monitor", ("zabbix/*", "nagios/eu"), expires)
    assert grant.allows("zabbix/prod") and grant.allows("zabbix/prod/eu") and grant.allows("nagios/eu")
    assert not grant.allows("Zabbix/prod") and not grant.allows("zabbix") and not grant.allows("nagios/us")
    assert not grant.expired(expires - timedelta(seconds=1)) and grant.expired(expires)
    listed = store.tokens()[-1]
    assert (listed["sources"] == ["zabbix/*", "nagios/eu"]
            and listed["expires_at"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with pytest.raises(ValueError, match="an auditor token cannot be limited to sources"):
        store.add_token("auditor", sources=["zabbix/*"])
    gone = store.add_token("monitor", expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert store.token_role(gone) is None                  # expired by this machine's clock
    assert store.token_role(token) == "monitor"


@pytest.mark.parametrize("text, expected", [
    ("90d", NOW + timedelta(days=90)),
    (" 12h ", NOW + timedelta(hours=12)),
    ("P1W", NOW + timedelta(weeks=1)),
    ("2027-01-01T00:00:00Z", datetime(2027, 1, 1, tzinfo=UTC)),
    ("2027-01-01T01:00:00+01:00", datetime(2027, 1, 1, tzinfo=UTC)),
])
def test_expiry_is_a_duration_from_now_or_an_instant(text, expected):
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text, message", [
    ("90", "neither a duration from now (examples: 90s"),
    ("2027-01-01", "neither a duration"),
    ("2027-01-01T00:00:00", "RFC 3339 time (example: 2027-01-01T00:00:00Z)"),
    ("0s", "is not in the future"),
    ("2026-11-05T03:59:59Z", "is not in the future (it is now 2026-11-05T04:00:00Z)"),
])
def test_a_bad_expiry_says_what_was_expected(text, message):
    with pytest.raises(ValueError) as err:
        parse_expiry(text, NOW)
    assert message in str(err.value)


# ---- the command line -------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_token_commands_create_list_and_revoke_by_name(url):
    made = run("token", "create", "--role", "monitor", "--name", "zabbix-prod", "--source", "zabbix/*",
               "--source", "zabbix-eu/*", "--expires", "2099-01-01T00:00:00Z", "--db", url)
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    assert "'zabbix-prod' (sources zabbix/*, zabbix-eu/*; expires 2099-01-01T00:00:00Z)" in made.output
    assert run("token", "create", "--role", "auditor", "--db", url).exit_code == 0
    listing = run("token", "list", "--db", url).output.splitlines()
    assert listing[0].split() == ["NAME", "ROLE", "SOURCES", "CREATED", "EXPIRES", "STATUS"]
    assert listing[1].split()[:3] == ["zabbix-prod", "monitor", "zabbix/*,zabbix-eu/*"]
    assert listing[1].split()[4:] == ["2099-01-01T00:00:00Z", "active"]
    assert listing[2].split()[:3] == ["auditor-1", "auditor", "*"] and listing[2].split()[4:] == ["never", "active"]
    assert token not in "\n".join(listing)

    assert run("token", "revoke", "zabbix-prod", "--db", url).output.strip() == "revoked 'zabbix-prod'"
    with Store.open(url) as store:
        assert store.token_role(token) is None
        store.add_token("owner", "old", expires_at=datetime(2021, 1, 1, tzinfo=UTC))
    listed = json.loads(run("token", "list", "--json", "--db", url).output)
    assert [(t["name"], t["status"]) for t in listed] == [("zabbix-prod", "revoked"), ("auditor-1", "active"),
                                                          ("old", "expired")]
    assert listed[0]["revoked_at"] and token not in json.dumps(listed)
    missing = run("token", "revoke", "zabbix-prod", "--db", url)
    assert missing.exit_code == 1 and "no unrevoked token has that name" in missing.output


@pytest.mark.parametrize("args, option, message", [
    (["--role", "monitor", "--expires", "soon"], "--expires", "neither a duration from now"),
    (["--role", "monitor", "--expires", "2001-01-01T00:00:00Z"], "--expires", "not in the future"),
    (["--role", "owner", "--source", "zabbix/*"], "--source", "an owner token cannot be limited to sources"),
    (["--role", "monitor", "--source", ""], "--source", "expected a glob"),
    (["--role", "monitor", "--name", "slm_x"], "--name", "starts with 'slm_'"),
    (["--role", "monitor", "--name", "taken"], "--name", "'taken' exists and is not revoked"),
])
def test_token_create_refuses_bad_options_naming_them_and_stores_nothing(url, args, option, message):
    with Store.open(url) as store:
        store.add_token("auditor", "taken")
    refused = run("token", "create", *args, "--db", url)
    assert refused.exit_code == 2 and option in refused.output and message in refused.output
    with Store.open(url) as store:
        assert [t["name"] for t in store.tokens()] == ["taken"]


# ---- the API ------------------------------------------------------------------------------

class CountingLookups:
    """The store's own look-up, counting how often the cache asks it."""

    def __init__(self, store):
        self.store, self.digests = store, []

    def __call__(self, digest):
        self.digests.append(digest)
        return self.store.digest_grant(digest)


@pytest.fixture
def env(url, wall, tmp_path):
    store = Store.open(url)
    rules = small_rules(tmp_path / "rules")
    service = SlmService(store, rules, now=wall)
    service.start(background=False)
    app = create_app(service)
    cache = app.extensions["slm_tokens"]
    moment, lookups = [1000.0], CountingLookups(store)
    cache.clock, cache.wall, cache.lookup = (lambda: moment[0]), (lambda: NOW), lookups
    tokens = {"zabbix": store.add_token("monitor", "zabbix", sources=["zabbix/*", "alertmanager"]),
              "nagios": store.add_token("monitor", "nagios", sources=["nagios/eu"]),
              "monitor": store.add_token("monitor"),
              "auditor": store.add_token("auditor", expires_at=NOW + timedelta(hours=1))}
    wall.set("2026-11-05T04:00:00Z")
    yield type("Env", (), {"client": app.test_client(), "app": app, "store": store, "tokens": tokens,
                           "moment": moment, "lookups": lookups, "cache": cache})
    service.stop()
    store.close()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def p1(id, source, subject="INC-1"):
    return fact(id, source=source, subject=subject, time="2026-11-05T03:00:00Z", priority="P1")


def test_a_token_limited_to_sources_posts_only_from_them(env):
    ok = env.client.post("/v1/facts", json=[p1("z1", "zabbix/prod"), p1("z2", "zabbix/eu", "INC-2")],
                         headers=bearer(env.tokens["zabbix"]))
    assert ok.status_code == 200 and ok.json["accepted"] == 2
    foreign = env.client.post("/v1/facts", json=p1("n1", "nagios/eu"), headers=bearer(env.tokens["zabbix"]))
    assert foreign.status_code == 403 and foreign.mimetype == PROBLEM
    detail = foreign.json["detail"]
    assert "'zabbix'" in detail and "zabbix/*, alertmanager" in detail and "'nagios/eu'" in detail
    assert foreign.json["errors"] == {"[0].source": ["'nagios/eu' matches none of the token's source patterns "
                                                     "(zabbix/*, alertmanager)"]}
    assert env.client.post("/v1/facts", json=p1("n1", "nagios/eu"),
                           headers=bearer(env.tokens["nagios"])).status_code == 200
    assert env.client.post("/v1/facts", json=p1("any", "itsm/prod", "INC-3"),
                           headers=bearer(env.tokens["monitor"])).status_code == 200     # no limit: any source
    assert fact_count(env.store) == 4


def test_a_batch_with_one_foreign_source_is_refused_whole(env):
    batch = [p1("z1", "zabbix/prod"), p1("x1", "itsm/prod", "INC-2"), p1("z2", "zabbix/prod", "INC-3"),
             p1("x2", "Zabbix/prod", "INC-4")]
    refused = env.client.post("/v1/facts", json=batch, headers=bearer(env.tokens["zabbix"]))
    assert refused.status_code == 403
    assert set(refused.json["errors"]) == {"[1].source", "[3].source"}
    assert "nothing from this request was stored" in refused.json["detail"]
    assert fact_count(env.store) == 0 and env.store.list_decisions()[0] == []


def cloudevent(id, source):
    return CloudEvent(attributes={"id": id, "source": source, "type": "incident.opened", "subject": "INC-7",
                                  "time": datetime(2026, 11, 5, 3, tzinfo=UTC),
                                  "datacontenttype": "application/json", "service": "email"},
                      data={"priority": "P1"})


@pytest.mark.parametrize("mode", [ce_http.to_structured_event, ce_http.to_binary_event])
def test_cloudevents_are_held_to_the_same_sources(env, mode):
    foreign = mode(cloudevent("ce-1", "itsm/prod"))
    refused = env.client.post("/v1/facts", data=foreign.body, headers={**foreign.headers,
                                                                     **bearer(env.tokens["zabbix"])})
    assert refused.status_code == 403 and "'itsm/prod'" in refused.json["detail"]
    assert fact_count(env.store) == 0
    own = mode(cloudevent("ce-2", "zabbix/prod"))
    accepted = env.client.post("/v1/facts", data=own.body, headers={**own.headers, **bearer(env.tokens["zabbix"])})
    assert accepted.status_code == 200 and accepted.json["accepted"] == 1


def test_the_alertmanager_route_posts_as_source_alertmanager(env):
    firing = json.loads((ROOT / "fixtures" / "alertmanager" / "email-down-firing.json").read_text())
    refused = env.client.post("/v1/ingest/alertmanager", json=firing, headers=bearer(env.tokens["nagios"]))
    assert refused.status_code == 403 and "'alertmanager'" in refused.json["detail"]
    assert fact_count(env.store) == 0
    accepted = env.client.post("/v1/ingest/alertmanager", json=firing, headers=bearer(env.tokens["zabbix"]))
    assert accepted.status_code == 200 and accepted.json["accepted"] == 1


def test_an_expired_token_is_401_naming_when_it_expired(env):
    assert env.client.get("/v1/decisions", headers=bearer(env.tokens["auditor"])).status_code == 200
    env.cache.wall = lambda: NOW + timedelta(hours=1)        # the cached grant's expiry is checked each time
    expired = env.client.get("/v1/decisions", headers=bearer(env.tokens["auditor"]))
    assert expired.status_code == 401 and expired.mimetype == PROBLEM
    assert expired.json["detail"] == "the token 'auditor-1' expired at 2026-11-05T05:00:00Z"
    assert expired.headers["WWW-Authenticate"].startswith("Bearer")


def test_repeated_bad_tokens_ask_the_store_once_within_the_window(env):
    bad = {"Authorization": "Bearer slm_not-a-token"}
    for _ in range(20):
        assert env.client.get("/v1/decisions", headers=bad).status_code == 401
        assert env.client.post("/v1/facts", json=p1("b", "zabbix/x"), headers=bad).status_code == 401
    assert len(env.lookups.digests) == 1
    env.moment[0] += MISS_CACHE_SECONDS + 0.1
    assert env.client.get("/v1/decisions", headers=bad).status_code == 401
    assert len(env.lookups.digests) == 2                     # remembered briefly, then asked again
    revoked = env.tokens["monitor"]
    env.store.revoke_token(revoked)
    for _ in range(5):
        assert env.client.post("/v1/facts", json=p1("r", "itsm/prod"), headers=bearer(revoked)).status_code == 401
    assert len(env.lookups.digests) == 3
    assert fact_count(env.store) == 0


def test_the_cache_of_unknown_tokens_is_bounded_and_a_good_token_is_not_held_up(store):
    lookups = CountingLookups(store)
    moment = [0.0]
    cache = TokenCache(lookups, clock=lambda: moment[0], miss_size=3)
    for n in range(4):
        assert cache.role(f"slm_bad-{n}") is None
    assert len(lookups.digests) == 4
    assert cache.role("slm_bad-3") is None and len(lookups.digests) == 4      # still remembered
    assert cache.role("slm_bad-0") is None and len(lookups.digests) == 5      # the oldest was dropped
    good = store.add_token("auditor")
    assert cache.role(good) == "auditor" and cache.role(good) == "auditor"
    assert len(lookups.digests) == 6


def csrf_of(client) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").get_data(as_text=True)).group(1)


def test_the_console_ends_a_session_when_its_token_expires_and_refuses_limited_tokens(env):
    client = env.app.test_client()
    signed = client.post("/ui/login", data={"token": env.tokens["auditor"], "csrf": csrf_of(client)})
    assert signed.status_code == 302 and client.get("/ui/decisions").status_code == 200
    env.cache.wall = lambda: NOW + timedelta(hours=1)
    assert client.get("/ui/decisions").status_code == 302                  # back to sign-in
    again = env.app.test_client()
    page = again.post("/ui/login", data={"token": env.tokens["auditor"], "csrf": csrf_of(again)})
    assert page.status_code == 401 and "expired at 2026-11-05T05:00:00Z" in page.get_data(as_text=True)
    limited = again.post("/ui/login", data={"token": env.tokens["zabbix"], "csrf": csrf_of(again)})
    assert limited.status_code == 403
