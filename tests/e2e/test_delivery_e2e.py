"""Delivery from a real ``slm serve`` process: a SIGKILL while messages are being
delivered loses none; after the restart every notification reaches the receiver, which
sees each once after dropping repeated message ids. On SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.support.delivery import SECRET, SLM_MAIL, rules_with
from tests.support.receivers import HttpReceiver, SmtpReceiver, wait_for
from tests.support.serving import Server, all_items, slm

pytestmark = pytest.mark.wallclock     # reads this machine's clock: CI runs it again years ahead


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def started(url, tmp_path, *options) -> Server:
    token = slm("token", "create", "--role", "admin", "--db", url)
    assert token.returncode == 0, token.stderr
    srv = Server(url, tmp_path / "serve.log", *options)
    srv.headers = {"Authorization": f"Bearer {token.stdout.strip().splitlines()[-1]}"}
    return srv.start()


@pytest.mark.slow
def test_a_sigkill_during_delivery_loses_no_notification(url, tmp_path):
    hook, smtp = HttpReceiver(secret=SECRET).start(), SmtpReceiver().start()
    hook.delay = 0.4                                   # each post takes a while: deliveries are under way
    rules = rules_with(tmp_path, webhook=hook.url)
    srv = started(url, tmp_path, "--rules", str(rules), "--smtp", smtp.url, "--webhook-secret", SECRET,
                  "--group-wait", "0s", "--delivery-timeout", "2s", "--retry-initial", "1s")
    try:
        opened = datetime.now(UTC) - timedelta(hours=1)
        for i in range(6):                             # six requests: six rounds of messages
            response = requests.post(srv.base + "/v1/facts", headers=srv.headers, timeout=30, json={
                "id": f"f{i}", "source": "itsm/prod", "type": "incident.opened", "time": stamp(opened),
                "subject": f"INC-{i}", "service": "email", "data": {"priority": "P1"}})
            assert response.status_code == 200, response.text
        wait_for(lambda: hook.posts, timeout=20)
        srv.kill()                                     # in the middle of delivering
        assert len(hook.posts) < 6 * 3, "the kill came before delivery finished"
        srv.start()

        def settled():
            items = all_items(srv, "/v1/notifications")
            return None if any(n["status"] in ("pending", "retrying") for n in items) else items
        final = wait_for(settled, timeout=90)
        to_hook = {n["id"] for n in final if n["recipient"] == hook.url}
        assert to_hook and {n["status"] for n in final if n["id"] in to_hook} == {"sent"}
        assert hook.unique_ids() == to_hook and hook.bad_signatures == 0
        to_manager = {n["id"] for n in final if n["recipient"] == SLM_MAIL}
        assert set(smtp.notification_ids(SLM_MAIL)) == to_manager
        metrics = requests.get(srv.base + "/metrics", timeout=10).text
        assert "slm_notifications_delivered_total" in metrics
        log = (tmp_path / "serve.log").read_text()
        assert SECRET not in log
    finally:
        srv.stop()
        hook.stop()
        smtp.stop()


def test_slm_serve_says_once_that_without_a_relay_e_mail_is_not_sent(url, tmp_path):
    srv = started(url, tmp_path)
    try:
        log = (tmp_path / "serve.log").read_text()
        assert log.count("no SMTP relay") == 1 and "undeliverable" in log
    finally:
        srv.stop()


@pytest.mark.slow
def test_a_separate_deliverer_sends_what_slm_serve_only_records(url, tmp_path):
    import subprocess
    import sys

    from tests.support import ROOT
    hook = HttpReceiver(secret=SECRET).start()
    srv = started(url, tmp_path, "--rules", str(rules_with(tmp_path, webhook=hook.url)), "--no-delivery",
                  "--secret-key", "shared-by-both")
    deliverer = None
    try:
        opened = datetime.now(UTC) - timedelta(hours=1)
        response = requests.post(srv.base + "/v1/facts", headers=srv.headers, timeout=30, json={
            "id": "f1", "source": "itsm/prod", "type": "incident.opened", "time": stamp(opened),
            "subject": "INC-1", "service": "email", "data": {"priority": "P1"}})
        assert response.status_code == 200
        queued = [n for n in all_items(srv, "/v1/notifications") if n["recipient"] == hook.url]
        assert queued and {n["status"] for n in queued} == {"pending"} and not hook.posts
        deliverer = subprocess.Popen([sys.executable, "-m", "cli", "notify", "run", "--db", url,
                                      "--webhook-secret", SECRET, "--public-url", srv.base,
                                      "--secret-key", "shared-by-both"], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: hook.unique_ids() == {n["id"] for n in queued}, timeout=30)
        wait_for(lambda: {n["status"] for n in all_items(srv, "/v1/notifications")
                          if n["recipient"] == hook.url} == {"sent"}, timeout=30)
        # the deliverer signs an escalation's acknowledgement link as the service would: it opens
        links = [n["links"]["acknowledge"] for post in hook.posts for n in post["body"]["notifications"]
                 if n["decision"]["kind"] == "escalation"]
        assert links and all(link.startswith(srv.base + "/ack/") for link in links)
        assert requests.get(links[0], timeout=30).status_code == 200
    finally:
        if deliverer is not None:
            deliverer.terminate()
            deliverer.wait(10)
        srv.stop()
        hook.stop()
