"""Acknowledging an escalation from its message, against a real ``slm serve``: the e-mail
and the webhook carry a signed link; GET shows a confirmation page and changes nothing;
POST from its form records a chained ``escalation.acknowledged`` fact that stops the
level's repeats; the console's trace names who acknowledged."""
from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.support.delivery import SECRET, rules_with
from tests.support.receivers import HttpReceiver, SmtpReceiver, wait_for
from tests.support.serving import Server, all_items, slm

pytestmark = [pytest.mark.wallclock, pytest.mark.slow]

OWNER = "mail-owner@example.org"       # email's service owner: R of major-breach (tests/rulesets/portfolio)


def sign_in(server: Server, token: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(server.base + "/ui/login", timeout=30).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    assert browser.post(server.base + "/ui/login", data={"token": token, "csrf": csrf},
                        allow_redirects=False, timeout=30).status_code == 302
    return browser


def test_an_escalation_is_acknowledged_from_the_link_in_its_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'slm.db'}"
    hook, smtp = HttpReceiver(secret=SECRET).start(), SmtpReceiver().start()
    made = slm("token", "create", "--role", "admin", "--db", url)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    rules = rules_with(tmp_path, webhook=hook.url)
    srv = Server(url, tmp_path / "serve.log", "--rules", str(rules), "--smtp", smtp.url, "--webhook-secret",
                 SECRET, "--group-wait", "0s", "--secret-key", "links-and-cookies").start()
    headers = srv.headers = {"Authorization": f"Bearer {token}"}
    try:
        opened = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        posted = requests.post(srv.base + "/v1/facts", headers=headers, timeout=30, json={
            "id": "f1", "source": "itsm/prod", "type": "incident.opened", "time": opened, "subject": "INC-1",
            "service": "email", "data": {"priority": "P1"}})
        assert posted.status_code == 200, posted.text
        (major,) = [d for d in all_items(srv, "/v1/decisions", subject="INC-1", kind="escalation")
                    if d["target"] == "email-p1-response" and d["activity"] == "major-breach"]
        clock = "/v1/clocks?subject=INC-1&target=email-p1-response"
        before = requests.get(srv.base + clock, headers=headers, timeout=30).json()["items"][0]
        assert before["next_deadline"] is not None                # the level's repeat, in 4h

        line = re.compile(rf"decisions/{major['id']}/trace\r?\n\s+acknowledge \(stops this level's repeats\): (\S+)")

        def mailed_link():
            found = [m.group(1) for mail in smtp.mailbox(OWNER) if (m := line.search(mail.get_content()))]
            return found[0] if found else None
        link = wait_for(mailed_link, timeout=30)
        assert link.startswith(srv.base + "/ack/")
        posts = wait_for(lambda: [p for p in hook.posts if p["body"]["activity"] == "breach-handling"], timeout=30)
        hooked = [n for p in posts for n in p["body"]["notifications"] if n["decision"]["kind"] == "escalation"]
        assert hooked and all(n["links"]["acknowledge"].startswith(srv.base + "/ack/") for n in hooked)

        page = requests.get(link, timeout=30)                     # a look changes nothing
        assert page.status_code == 200 and "Acknowledge" in page.text and "email-p1-response" in page.text
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert all_items(srv, "/v1/facts", type="escalation.acknowledged") == []
        assert requests.post(link, data={}, timeout=30).status_code == 400          # not from its form
        assert requests.get(link[:-2] + "xx", timeout=30).status_code == 404        # forged
        field = re.search(r'name="confirm" value="([^"]+)"', page.text).group(1)
        done = requests.post(link, data={"confirm": html.unescape(field)}, timeout=30)
        assert done.status_code == 200 and "Acknowledged: this level repeats no more." in done.text
        assert OWNER in done.text

        (stored,) = all_items(srv, "/v1/facts", type="escalation.acknowledged")
        ack = stored["fact"]
        assert ack["data"]["by"] == OWNER and ack["data"]["decision"] == major["id"]
        after = requests.get(srv.base + clock, headers=headers, timeout=30).json()["items"][0]
        assert after["next_deadline"] is None                     # no more repeats of that level
        again = requests.post(link, data={"confirm": html.unescape(field)}, timeout=30)
        assert again.status_code == 200 and len(all_items(srv, "/v1/facts", type="escalation.acknowledged")) == 1
        assert requests.get(srv.base + "/v1/audit/verify", headers=headers, timeout=30).json()["ok"]

        trace = sign_in(srv, token).get(f"{srv.base}/ui/decisions/{major['id']}", timeout=30).text
        assert "Acknowledged" in trace and f"by <strong>{OWNER}</strong>" in trace
    finally:
        srv.stop()
        hook.stop()
        smtp.stop()
