"""The console through Flask's test client: sign-in, roles as the API's, CSRF, pages render."""
from __future__ import annotations

import re
import time

import pytest

from api.app import create_app
from api.auth import TOKEN_CACHE_SECONDS
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, ROOT, fact
from tests.support.console import csrf_of, signed_in


@pytest.fixture
def env(url, wall):
    store = Store.open(url)
    service = SlmService(store, PORTFOLIO, now=wall)
    service.start(background=False)
    app = create_app(service)
    tokens = {role: store.add_token(role) for role in ("monitor", "owner", "auditor", "admin")}
    wall.set("2026-11-05T04:00:00Z")
    client = app.test_client()
    client.post("/v1/facts", json=fact("f1", time="2026-11-05T03:00:00Z", subject="INC-1", priority="P1"),
                headers={"Authorization": f"Bearer {tokens['monitor']}"})
    yield type("Env", (), {"app": app, "service": service, "store": store, "tokens": tokens})
    service.stop()
    store.close()


def test_without_a_session_every_page_leads_to_sign_in(env):
    client = env.app.test_client()
    assert client.get("/").headers["Location"] == "/ui/"
    for path in ("/ui/", "/ui/decisions", "/ui/rules", "/ui/audit", "/ui/reports/email/2026-11"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/ui/login?next=")


def test_sign_in_sets_a_strict_http_only_cookie_without_the_token(env):
    client = env.app.test_client()
    response = client.post("/ui/login", data={"token": env.tokens["auditor"], "csrf": csrf_of(client)})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert env.tokens["auditor"] not in cookie
    secure, https = env.app.test_client(), "https://slm.example.org"
    form = secure.get("/ui/login", base_url=https).get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    response = secure.post("/ui/login", base_url=https, data={"token": env.tokens["auditor"], "csrf": csrf})
    assert "Secure" in response.headers["Set-Cookie"]


def test_bad_tokens_and_monitor_tokens_cannot_sign_in(env):
    client = env.app.test_client()
    assert client.post("/ui/login", data={"token": "slm_nope", "csrf": csrf_of(client)}).status_code == 401
    assert client.post("/ui/login", data={"token": env.tokens["monitor"], "csrf": csrf_of(client)}).status_code == 403


def test_roles_as_the_api(env):
    auditor, owner = signed_in(env, "auditor"), signed_in(env, "owner")
    assert auditor.get("/ui/audit").status_code == 200
    assert owner.get("/ui/audit").status_code == 403
    assert "Reload the rules directory" not in auditor.get("/ui/rules").get_data(as_text=True)
    refused = auditor.post("/ui/rules/reload", data={"csrf": csrf_of(auditor, "/ui/rules")})
    assert refused.status_code == 403
    assert "Reload the rules directory" in owner.get("/ui/rules").get_data(as_text=True)
    assert owner.post("/ui/rules/reload", data={"csrf": csrf_of(owner, "/ui/rules")}).status_code == 302


def test_csrf_is_required_on_every_post(env):
    owner = signed_in(env, "owner")
    assert owner.post("/ui/rules/reload").status_code == 400
    assert owner.post("/ui/rules/reload", data={"csrf": "forged"}).status_code == 400
    assert owner.post("/ui/logout").status_code == 400
    client = env.app.test_client()
    assert client.post("/ui/login", data={"token": env.tokens["admin"]}).status_code == 400


def test_a_revoked_token_ends_the_session(env):
    client = signed_in(env, "auditor")
    env.store.revoke_token(env.tokens["auditor"])
    cache = env.app.extensions["slm_tokens"]
    cache.clock = lambda: time.monotonic() + TOKEN_CACHE_SECONDS + 1      # the cached answer is stale
    assert client.get("/ui/decisions").status_code == 302


def test_pages_render_with_a_content_security_policy(env):
    client = signed_in(env, "admin")
    breach = env.store.list_decisions(kind="breach", target="email-p1-response")[0][0]
    for path in ("/ui/", "/ui/?fragment=1", "/ui/decisions?kind=breach", f"/ui/decisions/{breach['id']}",
                 "/ui/clocks/email-p1-response/INC-1", "/ui/reports/email/2026-11", "/ui/rules", "/ui/audit?verify=1"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert "<script>" not in response.get_data(as_text=True) and ' style="' not in response.get_data(as_text=True)
    trace = client.get(f"/ui/decisions/{breach['id']}").get_data(as_text=True)
    assert "services/email.yaml:" in trace and str(ROOT) not in trace and "goal: 15m" in trace and "zabbix" not in trace
    assert "Intact." in client.get("/ui/audit?verify=1").get_data(as_text=True)


def test_an_owner_previews_the_rules_directory_before_reloading(env):
    owner = signed_in(env, "owner")
    page = owner.post("/ui/rules/preview", data={"csrf": csrf_of(owner, "/ui/rules")})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Preview: the rules directory" in text and "no difference from what was recorded" in text
    auditor = signed_in(env, "auditor")
    assert auditor.post("/ui/rules/preview", data={"csrf": csrf_of(auditor, "/ui/rules")}).status_code == 403
    assert owner.post("/ui/rules/preview", data={"csrf": "forged"}).status_code == 400


def test_the_audit_page_verifies_every_chain_and_names_the_first_broken_record(env):
    auditor = signed_in(env, "auditor")
    assert "Intact" not in auditor.get("/ui/audit").get_data(as_text=True)       # verified on request only
    page = auditor.get("/ui/audit?verify=1").get_data(as_text=True)
    assert "<strong>Intact.</strong>" in page
    for label in ("Decisions", "Facts", "Notifications", "Delivery outcomes", "Rule changes", "Silences", "Waivers",
                  "Restatements"):
        assert f'<th scope="row">{label}</th>' in page
    assert page.count('class="intact" data-chain=') == 8
    nid, = env.store.db.execute_sql("SELECT id FROM notifications ORDER BY seq LIMIT 1").fetchone()
    env.store.db.execute_sql("UPDATE notifications SET status = 'sent' WHERE id = " + env.store.db.param, [nid])
    page = auditor.get("/ui/audit?verify=1").get_data(as_text=True)
    assert "<strong>Broken.</strong> Delivery outcomes" in page
    assert page.count('class="intact" data-chain=') == 7 and 'class="broken" data-chain="deliveries"' in page
    assert re.search(rf"delivery outcome seq \d+ \(<code>{nid}</code>\): notification {nid}: its status is "
                     r"&#39;sent&#39;", page), page


def test_cookie_secure_marks_the_cookie_secure_on_plain_http(env):
    app = create_app(env.service, cookie_secure=True)
    client = app.test_client()
    response = client.post("/ui/login", data={"token": env.tokens["auditor"], "csrf": csrf_of(client)})
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_given_secret_key_keeps_sessions_across_a_restart(env):
    before = create_app(env.service, secret_key="the same key").test_client()
    before.post("/ui/login", data={"token": env.tokens["auditor"], "csrf": csrf_of(before)})
    cookie = before.get_cookie("slm_session", path="/ui")
    for key, stays in (("the same key", True), ("another key", False)):
        after = create_app(env.service, secret_key=key).test_client()
        after.set_cookie("slm_session", cookie.value, path="/ui")
        assert (after.get("/ui/").status_code == 200) is stays


def test_a_retracted_decision_is_struck_through_with_its_reason_and_drawn_apart(env):
    """A late acknowledgement retracts the 03:15 breach of INC-1: the list, the trace and
    the clock's timeline show it struck through, with the reason, apart from the others."""
    client = env.app.test_client()
    client.post("/v1/facts", json=fact("f2", type="incident.acknowledged", time="2026-11-05T03:10:00Z",
                                       subject="INC-1"),
                headers={"Authorization": f"Bearer {env.tokens['monitor']}"})
    breach, = env.store.list_decisions(kind="breach", target="email-p1-response")[0]
    retracted_by = env.store.retractions([breach["id"]])[breach["id"]]
    reason = retracted_by["reason"]
    console = signed_in(env, "auditor")
    listing = console.get("/ui/decisions?kind=breach").get_data(as_text=True)
    assert '<tr class="breach superseded">' in listing and '<s class="kind struck breach">breach</s>' in listing
    assert reason in listing
    assert breach["id"] not in console.get("/ui/decisions?retracted=false").get_data(as_text=True)
    assert breach["id"] in console.get("/ui/decisions?retracted=true").get_data(as_text=True)
    page = console.get(f"/ui/decisions/{breach['id']}").get_data(as_text=True)
    assert "Retracted" in page and reason in page and retracted_by["id"] in page
    clock = console.get("/ui/clocks/email-p1-response/INC-1").get_data(as_text=True)
    assert '<g class="event breach superseded">' in clock
    assert ">retracted</text>" in clock and "breach 100% (retracted)" in clock


def test_a_trace_page_shows_the_fact_of_the_source_that_caused_the_decision(env):
    """Another source's fact with the same id is never shown in its place."""
    monitor = {"Authorization": f"Bearer {env.tokens['monitor']}"}
    client = env.app.test_client()
    evil = {"Authorization": f"Bearer {env.store.add_token('monitor', 'evil', sources=['evil/*'])}"}
    client.post("/v1/facts", json=fact("TKT-5001", source="evil/x", subject="INC-666", time="2026-11-05T02:00:00Z",
                                       priority="P4"), headers=evil)
    client.post("/v1/facts", json=fact("TKT-5001", source="zabbix/prod", subject="INC-5", time="2026-11-05T03:00:00Z",
                                       priority="P1"), headers=monitor)
    breach, = env.store.list_decisions(kind="breach", target="email-p1-response", subject="INC-5")[0]
    page = signed_in(env, "auditor").get(f"/ui/decisions/{breach['id']}").get_data(as_text=True)
    assert "source <code>zabbix/prod</code>" in page and "evil/x" not in page and "INC-666" not in page
