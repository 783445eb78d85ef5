"""Notifications that reach people: the outbox delivered to a real SMTP server and a real
HTTP receiver (both on 127.0.0.1, started here), on SQLite and PostgreSQL.

The service runs in process with its delivery worker (real time for delivery, the test's
wall clock for the engine); facts go in through the HTTP API (Flask's test client).
"""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from api.app import create_app
from engine.notify.deliver import Channels, redact, sign
from engine.notify.group import message_id
from engine.notify.record import RetryPolicy
from engine.notify.worker import DeliveryWorker
from engine.service.live import SlmService
from engine.store.store import Store
from tests.support import PORTFOLIO, fact
from tests.support.delivery import SECRET, SLM_MAIL, rules_with
from tests.support.receivers import ApiReceiver, HttpReceiver, SmtpReceiver, wait_for

pytestmark = pytest.mark.wallclock     # reads this machine's clock: CI runs it again years ahead

FAST = RetryPolicy(initial=timedelta(seconds=0.2), cap=timedelta(seconds=1))


def p1(id="f1", subject="INC-1", time="2026-11-05T03:00:00Z", **extra):
    return fact(id, subject=subject, time=time, priority="P1", **extra)


class Env:
    def __init__(self, url, rules, wall, channels, group_wait=0.2, policy=FAST):
        self.store = Store.open(url)
        self.ahead = timedelta(0)             # how far the delivery worker's clock runs ahead of real time
        self.worker = DeliveryWorker(self.store, channels, policy=policy, group_wait=timedelta(seconds=group_wait),
                                     poll=0.05, now=lambda: datetime.now(UTC) + self.ahead)
        self.service = SlmService(self.store, rules, now=wall, delivery=self.worker)
        self.service.start(background=False)
        self.app = create_app(self.service)
        self.client = self.app.test_client()
        self.tokens = {role: self.store.add_token(role) for role in ("monitor", "admin")}
        wall.set("2026-11-05T04:00:00Z")

    def post(self, *facts):
        response = self.client.post("/v1/facts", json=list(facts), headers=self.auth("monitor"))
        assert response.status_code == 200, response.json
        return response.json

    def auth(self, role="admin"):
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def notifications(self, **query):
        items, cursor = [], None
        while True:
            page = self.client.get("/v1/notifications", query_string={**query, "limit": 1000,
                                                                      **({"cursor": cursor} if cursor else {})},
                                   headers=self.auth()).json
            items += page["items"]
            cursor = page["next"]
            if not cursor:
                return items

    def settled(self):
        """Nothing pending or retrying any more: every notification's state, by id."""
        items = self.notifications()
        if any(n["status"] in ("pending", "retrying") for n in items):
            return None
        return {n["id"]: n for n in items}

    def close(self):
        self.service.stop()
        self.store.close()


@pytest.fixture
def smtp():
    receiver = SmtpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def hook():
    receiver = HttpReceiver(secret=SECRET).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def make_env(url, wall):
    made = []

    def make(rules=PORTFOLIO, channels=None, **kwargs):
        env = Env(url, rules, wall, channels or Channels(), **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def test_a_breach_reaches_the_service_level_managers_mailbox_and_a_webhook_signed_once(make_env, smtp, hook,
                                                                                        tmp_path):
    env = make_env(rules_with(tmp_path, webhook=hook.url),
                   Channels(smtp_url=smtp.url, mail_from="slm@example.org", webhook_secret=SECRET))
    env.post(p1())
    final = wait_for(env.settled)
    breaches = [n for n in final.values() if n["recipient"] == SLM_MAIL and n["activity"] == "breach-handling"]
    assert breaches, "the breach's escalation notifies the service level manager"
    to_manager = {i for i, n in final.items() if n["recipient"] == SLM_MAIL}
    assert all(final[i]["status"] == "sent" and final[i]["attempts"] == 1 and final[i]["message_id"]
               for i in to_manager)
    mailed = smtp.notification_ids(SLM_MAIL)
    assert sorted(mailed) == sorted(to_manager)                    # every one, once
    mail = smtp.mailbox(SLM_MAIL)[0]
    assert mail["From"] == "slm@example.org" and mail["Message-ID"].startswith("<")
    assert {m["Message-ID"].strip("<>").split("@")[0] for m in smtp.mailbox(SLM_MAIL)} == \
        {final[i]["message_id"] for i in to_manager}
    to_hook = {i for i, n in final.items() if n["recipient"] == hook.url}
    assert to_hook and sorted(hook.notification_ids()) == sorted(to_hook) and hook.bad_signatures == 0
    post = hook.posts[0]
    body = post["body"]
    assert post["headers"]["Idempotency-Key"] == body["id"] == final[body["notifications"][0]["id"]]["message_id"]
    item = body["notifications"][0]
    assert set(item) == {"id", "activity", "letters", "recipient", "message", "decision", "links"}
    assert item["decision"]["kind"] and item["decision"]["service"] == "email"
    assert any(n["decision"]["kind"] == "escalation" and n["activity"] == "breach-handling"
               for p in hook.posts for n in p["body"]["notifications"])
    assert item["links"]["trace"].endswith(f"/v1/decisions/{item['decision']['id']}/trace")
    # the other recipients' mail went to the same relay, each notification once
    others = {i for i, n in final.items() if n["channel"] == "email"}
    everyone = {rcpt for rcpts, _ in smtp.messages for rcpt in rcpts}
    assert sorted(i for rcpt in everyone for i in smtp.notification_ids(rcpt)) == sorted(others)
    assert {n["status"] for i, n in final.items() if i in others} == {"sent"}


@pytest.mark.slow
def test_a_receiver_down_then_back_gets_each_notification_once(make_env, hook, tmp_path):
    hook.stop()                                                     # down: connection refused
    env = make_env(rules_with(tmp_path, webhook=hook.url), Channels(webhook_secret=SECRET, timeout=2))
    env.post(p1())
    retrying = wait_for(lambda: [n for n in env.notifications(recipient=hook.url)
                                 if n["status"] == "retrying" and n["attempts"] >= 2])
    assert all("ConnectionError" in n["last_error"] and n["next_attempt_at"] for n in retrying)
    hook.start()                                                    # back on the same port
    final = wait_for(env.settled)
    to_hook = {i for i, n in final.items() if n["recipient"] == hook.url}
    assert {final[i]["status"] for i in to_hook} == {"sent"}
    assert hook.unique_ids() == to_hook                             # once, after dropping repeated ids
    assert len(hook.notification_ids()) == len(to_hook)             # and here not even repeated


@pytest.mark.slow
def test_a_receiver_answering_errors_is_retried_until_the_max_age_then_failed(make_env, hook, tmp_path):
    hook.status = 503
    policy = RetryPolicy(initial=timedelta(seconds=0.1), cap=timedelta(seconds=0.2), max_age=timedelta(seconds=1))
    env = make_env(rules_with(tmp_path, webhook=hook.url), Channels(webhook_secret=SECRET), policy=policy)
    env.post(p1())
    final = wait_for(env.settled)
    failed = [n for n in final.values() if n["recipient"] == hook.url]
    assert failed and all(n["status"] == "failed" and n["attempts"] >= 2 and "HTTP 503" in n["last_error"]
                          for n in failed)
    hook.status = 200
    retried = env.client.post(f"/v1/notifications/{failed[0]['id']}/retry", headers=env.auth())
    assert retried.status_code == 200 and retried.json["status"] == "retrying"
    assert env.client.post(f"/v1/notifications/{failed[0]['id']}/retry",
                           headers=env.auth("monitor")).status_code == 403
    final = wait_for(lambda: (s := env.settled()) and s[failed[0]["id"]]["status"] == "sent" and s)
    assert failed[0]["id"] in hook.notification_ids()
    again = env.client.post(f"/v1/notifications/{failed[0]['id']}/retry", headers=env.auth())
    assert again.status_code == 409
    assert env.client.post("/v1/notifications/ntf_nope/retry", headers=env.auth()).status_code == 404
    metrics = env.client.get("/metrics").get_data(as_text=True)
    assert 'slm_notifications_delivered_total{outcome="failed"}' in metrics
    assert 'slm_notifications_delivered_total{outcome="sent"} 1.0' in metrics
    assert "slm_notification_queue_age_seconds" in metrics


@pytest.mark.slow
def test_a_slow_receiver_does_not_hold_up_the_others(make_env, smtp, hook, tmp_path):
    slow = HttpReceiver(secret=SECRET).start()
    slow.delay = 20.0                                   # answers long after the others could
    rules = rules_with(tmp_path, webhook=hook.url, call=slow.url)
    try:
        env = make_env(rules, Channels(smtp_url=smtp.url, webhook_secret=SECRET, timeout=60))
        env.post(p1())
        wait_for(lambda: hook.posts and smtp.mailbox(SLM_MAIL), timeout=60)
        assert not slow.posts, "the others were delivered while the slow receiver still had its request"
        wait_for(lambda: slow.posts, timeout=60)
    finally:
        slow.stop()


@pytest.mark.slow
def test_1000_breaches_make_one_message_per_recipient_and_activity(make_env, smtp, hook, tmp_path):
    env = make_env(rules_with(tmp_path, webhook=hook.url), Channels(smtp_url=smtp.url, webhook_secret=SECRET),
                   group_wait=3600.0)
    facts = [p1(f"f{i}", subject=f"INC-{i}") for i in range(1000)]
    for start in range(0, 1000, 250):                           # an outage: 4 requests in quick succession
        env.post(*facts[start:start + 250])
    assert not any(n["status"] == "sent" for n in env.notifications())      # all within the group wait
    env.ahead = timedelta(hours=2)                              # however long posting took, the wait is over
    final = wait_for(env.settled, timeout=120)
    by_key: dict[tuple, set] = {}
    for n in final.values():
        assert n["status"] == "sent" and n["message_id"], n
        by_key.setdefault((n["recipient"], n["activity"]), set()).add(n["message_id"])
    assert all(len(ids) == 1 for ids in by_key.values()), {k: len(v) for k, v in by_key.items() if len(v) > 1}
    handling = [n for n in final.values() if n["recipient"] == hook.url and n["activity"] == "breach-handling"]
    assert len(handling) >= 1000
    assert handling[0]["message_id"] == message_id([n["id"] for n in handling])
    hook_messages = [p for p in hook.posts if p["body"]["activity"] == "breach-handling"]
    assert len(hook_messages) == 1 and len(hook_messages[0]["body"]["notifications"]) == len(handling)
    assert sorted(smtp.notification_ids(SLM_MAIL)) == sorted(i for i, n in final.items() if n["recipient"] == SLM_MAIL)
    assert len(smtp.mailbox(SLM_MAIL)) == len({k for k in by_key if k[0] == SLM_MAIL})


def test_shadow_decisions_are_muted_and_never_sent(make_env, smtp, hook):
    env = make_env(channels=Channels(smtp_url=smtp.url, webhook_secret=SECRET))
    env.post(fact("h1", service="hosting", subject="INC-401", time="2026-11-05T03:00:00Z", priority="P1"))
    final = wait_for(env.settled)
    decisions = {d["id"]: d for d in env.client.get("/v1/decisions", query_string={"limit": 1000},
                                                    headers=env.auth()).json["items"]}
    muted = [n for n in final.values() if n["status"] == "muted"]
    assert muted and all(decisions[n["decision"]]["shadow"] for n in muted)
    assert all(n["status"] == "muted" for n in final.values() if decisions[n["decision"]]["shadow"])
    mailed = {i for rcpt, _ in smtp.messages for i in smtp.notification_ids(rcpt[0])}
    assert mailed and not mailed & {n["id"] for n in muted}


def test_a_retraction_cancels_what_was_not_sent(make_env, smtp):
    env = make_env(channels=Channels(smtp_url=smtp.url), group_wait=60)     # nothing goes out for a minute
    env.post(p1(), fact("f2", type="incident.resolved", time="2026-11-05T03:40:00Z"))
    env.post(fact("f3", type="incident.acknowledged", time="2026-11-05T03:12:00Z"))
    decisions = env.client.get("/v1/decisions", query_string={"kind": "retracted"}, headers=env.auth()).json["items"]
    retracted = {d["data"]["retracts"] for d in decisions}
    assert retracted
    notes = env.notifications()
    cancelled = [n for n in notes if n["decision"] in retracted]
    assert cancelled and {n["status"] for n in cancelled} == {"cancelled"}
    assert not [n for n in notes if n["decision"] in {d["id"] for d in decisions}]     # nobody to follow up


def test_a_retraction_follows_up_with_those_already_told(make_env, smtp):
    env = make_env(channels=Channels(smtp_url=smtp.url))
    env.post(p1(), fact("f2", type="incident.resolved", time="2026-11-05T03:40:00Z"))
    wait_for(env.settled)
    env.post(fact("f3", type="incident.acknowledged", time="2026-11-05T03:12:00Z"))
    final = wait_for(env.settled)
    decisions = env.client.get("/v1/decisions", query_string={"kind": "retracted"}, headers=env.auth()).json["items"]
    retracted = {d["data"]["retracts"]: d for d in decisions}
    told = [n for n in final.values() if n["decision"] in retracted and n["status"] == "sent"]
    followups = [n for n in final.values() if n["decision"] in {d["id"] for d in decisions}]
    assert told and {(n["recipient"], n["decision"]) for n in followups} == \
        {(n["recipient"], retracted[n["decision"]]["id"]) for n in told}
    assert all(n["status"] == "sent" and n["message"].startswith("Retracted: ") for n in followups)
    mailed = smtp.notification_ids(SLM_MAIL)
    assert {n["id"] for n in followups if n["recipient"] == SLM_MAIL} <= set(mailed)


def test_an_escalation_call_posts_the_decision_through_the_outbox(make_env, hook, tmp_path):
    env = make_env(rules_with(tmp_path, call=hook.url + "?token=itsm-secret"), Channels(webhook_secret=SECRET))
    env.post(p1())
    final = wait_for(env.settled)
    calls = [n for n in final.values() if n["roles"] == ["call"]]
    assert calls and all(n["status"] == "sent" and n["activity"] == "breach-handling" for n in calls)
    assert all("itsm-secret" not in n["recipient"] for n in final.values())          # redacted in the API
    posted = [n for p in hook.posts for n in p["body"]["notifications"]]
    assert {n["id"] for n in posted} == {n["id"] for n in calls}
    assert all(n["decision"]["kind"] == "escalation" for n in posted)
    assert hook.posts[0]["path"] == "/hook?token=itsm-secret" and hook.bad_signatures == 0


def test_a_write_back_goes_through_the_outbox_to_the_tool(make_env, tmp_path, monkeypatch):
    """A Jira write-back on the breach-handling level: stored with its rendered request,
    claimed and sent by the worker as the tool's REST calls, recorded sent."""
    monkeypatch.setenv("JIRA_USER", "slm-bot@example.org")
    monkeypatch.setenv("JIRA_TOKEN", "jira-api-token")
    tool = ApiReceiver().start()
    try:
        call = (f"{{jira: {{url: '{tool.url}', comment: 'Breached: {{{{ target }}}} at {{{{ level }}}}', "
                "credentials: {user_env: JIRA_USER, token_env: JIRA_TOKEN}}}")
        env = make_env(rules_with(tmp_path, call=call))
        env.post(p1(subject="MAIL-7"))
        final = wait_for(env.settled)
        [written] = [n for n in final.values() if n["channel"] == "writeback"]
        assert written["status"] == "sent" and written["recipient"] == f"{tool.url}/rest/api/2/issue/MAIL-7"
        assert written["call"]["comment"] == "Breached: email-p1-response at 100%"
        [comment] = tool.requests
        assert (comment["method"], comment["path"]) == ("POST", "/rest/api/2/issue/MAIL-7/comment")
        assert comment["body"] == {"body": "Breached: email-p1-response at 100%"}
    finally:
        tool.stop()


def test_without_a_relay_e_mail_is_undeliverable_with_the_reason(make_env):
    env = make_env()
    env.post(p1())
    final = wait_for(env.settled)
    email = [n for n in final.values() if n["channel"] == "email"]
    assert email and all(n["status"] == "undeliverable" and "no SMTP relay" in n["last_error"]
                         and n["attempts"] == 0 for n in email)


def test_several_deliverers_on_one_outbox_claim_each_notification_once(url):
    """Two stores (on PostgreSQL: two sessions, SKIP LOCKED) claiming at once."""
    with Store.open(url) as store:
        store.add_decisions([{"id": "dec_1", "kind": "breach", "at": "2026-11-05T03:15:00Z"}])
        store.add_notifications([{"id": f"ntf_{i:04d}", "decision": "dec_1", "recipient": f"r{i % 7}@example.org",
                                  "channel": "email", "activity": "breach-handling"} for i in range(600)])
    claimed: list[list[str]] = []
    start = threading.Barrier(4)

    def claim():
        with Store.open(url) as store:
            start.wait()
            now = datetime.now(UTC)
            mine = []
            while batch := store.claim(now, now + timedelta(minutes=1), limit=25, widen=False):
                mine += [n["id"] for n in batch]
            claimed.append(mine)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for mine in claimed for i in mine]
    assert len(everything) == len(set(everything)) == 600


def test_secrets_are_redacted():
    assert redact("smtp://mailer:hunter2@relay.example.org:587") == "smtp://mailer:***@relay.example.org:587"
    assert redact("https://itsm.example.org/api/reassign?token=abc") == "https://itsm.example.org/api/reassign?***"
    assert redact("slack://TokenA/TokenB/TokenC/#sla") == "slack://Toke***"
    assert redact("slm-mail@example.org") == "slm-mail@example.org"
    assert sign(b"{}", "k") == "sha256=" + __import__("hmac").new(b"k", b"{}", "sha256").hexdigest()


def test_slm_notify_test_sends_a_signed_test_message_and_says_what_failed(hook, smtp):
    from click.testing import CliRunner

    from cli import main
    sent = CliRunner().invoke(main, ["notify", "test", hook.url, "--webhook-secret", SECRET])
    assert sent.exit_code == 0, sent.output
    assert len(hook.posts) == 1 and hook.bad_signatures == 0 and hook.posts[0]["body"]["activity"] == "test"
    mailed = CliRunner().invoke(main, ["notify", "test", "someone@example.org", "--smtp",
                                       f"smtp://user:hunter2@127.0.0.1:{smtp.port}"])
    # aiosmtpd offers no AUTH without TLS: the login is refused, and the password is not shown
    assert mailed.exit_code == 1 and "hunter2" not in mailed.output and "***" in mailed.output
    plain = CliRunner().invoke(main, ["notify", "test", "someone@example.org", "--smtp", smtp.url])
    assert plain.exit_code == 0 and smtp.mailbox("someone@example.org")
    nowhere = CliRunner().invoke(main, ["notify", "test", "someone@example.org"], env={"SLM_SMTP_URL": ""})
    assert nowhere.exit_code == 1 and "no SMTP relay" in nowhere.output


def test_a_chat_destination_goes_through_apprise():
    """Apprise's json:// URL posts its JSON form of the message to the local receiver."""
    from click.testing import CliRunner

    from cli import main
    receiver = HttpReceiver().start()
    try:
        sent = CliRunner().invoke(main, ["notify", "test", f"json://127.0.0.1:{receiver.port}/chat"])
        assert sent.exit_code == 0, sent.output
        assert "json://127.***" in sent.output                      # chat URLs are shown redacted
        assert len(receiver.posts) == 1 and "slm test message" in receiver.posts[0]["body"]["message"]
    finally:
        receiver.stop()


def test_a_worker_stopped_and_started_again_delivers_what_came_meanwhile(make_env, hook, tmp_path):
    """An owner that stood by stops its worker, and starts it again when it takes over."""
    env = make_env(rules_with(tmp_path, webhook=hook.url), Channels(webhook_secret=SECRET))
    env.post(p1())
    wait_for(env.settled)
    env.worker.stop()
    env.post(p1("f2", subject="INC-2"))
    assert any(n["status"] == "pending" for n in env.notifications())
    env.worker.start()
    final = wait_for(env.settled)
    assert {n["status"] for n in final.values() if n["recipient"] == hook.url} == {"sent"}
    assert sorted(hook.notification_ids()) == sorted(i for i, n in final.items() if n["recipient"] == hook.url)


def test_a_silence_begun_while_notifications_wait_for_a_retry_mutes_them(make_env, hook, tmp_path):
    from engine.notify.silence import created_event, new_silence

    hook.status = 503                                        # the receiver is down: its notifications retry
    policy = RetryPolicy(initial=timedelta(seconds=0.2), cap=timedelta(seconds=0.2), max_age=timedelta(hours=1))
    env = make_env(rules_with(tmp_path, webhook=hook.url), Channels(webhook_secret=SECRET), policy=policy)
    env.post(p1())
    wait_for(lambda: any(n["status"] == "retrying" for n in env.notifications()))
    now = datetime.now(UTC)                                  # the deliverer's clock: real time
    silence = new_silence({"recipient": hook.url}, now - timedelta(minutes=1), now + timedelta(hours=1), "ann",
                          "receiver replaced", now)
    env.store.add_silence_event(silence.id, "created", now, created_event(silence))
    final = wait_for(env.settled)
    to_hook = [n for n in final.values() if n["recipient"] == hook.url]
    assert to_hook and all(n["status"] == "muted" and n["last_error"].startswith(f"silenced by {silence.id} until ")
                           for n in to_hook)
    outcomes = env.store.delivery_outcomes(to_hook[0]["id"])
    assert [o["event"] for o in outcomes][0] == "created" and outcomes[-1]["event"] == "muted"
    assert env.store.verify_audit()["ok"]
