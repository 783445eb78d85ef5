"""The console's answers to odd input and to signing out (issue 20, items 11 and 14)."""
from __future__ import annotations

import pytest

from api.app import create_app
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact
from tests.support.console import csrf_of, signed_in


@pytest.fixture
def env(url, wall):
    """The console over the portfolio rules, with one P1 incident posted."""
    store = Store.open(url)
    service = SlmService(store, PORTFOLIO, now=wall)
    service.start(background=False)
    app = create_app(service)
    tokens = {role: store.add_token(role) for role in ("monitor", "owner", "auditor", "admin")}
    wall.set("2026-11-05T04:00:00Z")
    app.test_client().post("/v1/facts", json=fact("f1", time="2026-11-05T03:00:00Z", subject="INC-1", priority="P1"),
                           headers={"Authorization": f"Bearer {tokens['monitor']}"})
    yield type("Env", (), {"app": app, "service": service, "store": store, "tokens": tokens, "wall": wall})
    service.stop()
    store.close()


@pytest.mark.parametrize("period", ["0000-01", "9999-12", "٢٠٢٦-11"])
def test_a_month_out_of_range_is_a_404_page_not_a_500(env, period):
    client = signed_in(env, "auditor")
    response = client.get(f"/ui/reports/email/{period}")
    assert response.status_code == 404 and "from 1970-01 to 9998-12" in response.get_data(as_text=True)
    assert client.get(f"/ui/reports?service=email&period={period}", follow_redirects=True).status_code == 404


@pytest.mark.parametrize("cursor", ["9" * 30, "-1", "٣"])
def test_a_cursor_out_of_range_starts_from_the_first_page(env, cursor):
    client = signed_in(env, "auditor")
    response = client.get(f"/ui/decisions?cursor={cursor}")
    assert response.status_code == 200 and "email-p1-response" in response.get_data(as_text=True)


def test_signing_out_ends_the_session_on_the_server(env):
    client = signed_in(env, "auditor")
    cookie = client.get_cookie("slm_session", path="/ui").value
    assert client.post("/ui/logout", data={"csrf": csrf_of(client, "/ui/decisions")}).status_code == 302
    copied = env.app.test_client()
    copied.set_cookie("slm_session", cookie, path="/ui")
    response = copied.get("/ui/decisions")
    assert response.status_code == 302 and response.headers["Location"].startswith("/ui/login")
    other = signed_in(env, "auditor")                       # a new sign-in works as before
    assert other.get("/ui/decisions").status_code == 200


# ---- item 19: what the console shows ---------------------------------------------------

def test_a_rules_trace_shows_no_python_dict(env):
    env.wall.set("2026-11-05T04:00:00Z")
    client = signed_in(env, "auditor")
    rule_decision = env.store.list_decisions(kind="ola-breach-threatens-sla", limit=1)[0]
    assert rule_decision, "the P1 posted at 03:00 breached the 10m OLA while the SLA clock ran"
    page = client.get(f"/ui/decisions/{rule_decision[0]['id']}").get_data(as_text=True)
    assert "{&#39;" not in page and "[&#39;" not in page, [line for line in page.splitlines() if "&#39;" in line][:3]


def test_an_undeliverable_notification_gives_its_reason(env):
    client = signed_in(env, "auditor")
    escalation = env.store.list_decisions(kind="escalation", limit=1)[0][0]
    notes, _ = env.store.list_notifications(decision=escalation["id"], limit=10)
    reason = "no SMTP relay is configured (slm serve --smtp-url) for e-mail recipients"
    env.store.record_failure([notes[0]["id"]], "undeliverable", reason, None, None)
    page = client.get(f"/ui/decisions/{escalation['id']}").get_data(as_text=True)
    row = next(line for line in page.split("<tr>") if "undeliverable" in line)
    assert reason in row, row
