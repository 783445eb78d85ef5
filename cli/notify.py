"""Delivery options of ``slm serve`` and ``slm notify test``: where mail goes, how
webhooks are signed, how long to keep trying."""
from __future__ import annotations

import sys
import uuid
from dataclasses import replace

import click

from schemas.values import parse_duration

from .common import audit_key, audit_key_option, db_option

SMTP_HELP = "SMTP relay: smtp://[user:pass@]host:port (STARTTLS when offered) or smtps://…."


def delivery_options(command):
    """The options both commands take."""
    for option in reversed([
        click.option("--smtp", "smtp_url", envvar="SLM_SMTP_URL", show_envvar=True, help=SMTP_HELP),
        click.option("--mail-from", envvar="SLM_MAIL_FROM", show_envvar=True,
                     help="The From address of e-mail (default slm@<this host>)."),
        click.option("--webhook-secret", envvar="SLM_WEBHOOK_SECRET", show_envvar=True,
                     help="Key of the X-SLM-Signature HMAC on webhook posts."),
        click.option("--delivery-timeout", default="10s", show_default=True,
                     help="How long one delivery may take (connect, send, answer)."),
    ]):
        command = option(command)
    return command


ACK_TTL_HELP = ("How long the link in an escalation's message that acknowledges it stays good (signed with a key "
                "derived from --secret-key, else the audit key; without either, no link).")


def ack_links(secret_key: str | None, key: bytes | None, ttl: str, logger: str):
    """The signer of acknowledgement links, from the same keys as ``slm serve``'s (so the
    links a separate deliverer writes are the ones the service takes), or None, said."""
    import logging

    from engine.notify.acklink import AckLinks, link_key
    links_key = link_key(secret_key, key)
    if links_key is None:
        logging.getLogger(logger).warning(
            "no --secret-key nor --audit-key-file: escalation messages carry no link that acknowledges them")
        return None
    return AckLinks(links_key, duration(ttl, "--ack-ttl"))


def duration(text: str, option: str):
    try:
        return parse_duration(text)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def channels(smtp_url, mail_from, webhook_secret, delivery_timeout, public_url):
    from engine.notify.deliver import Channels
    return Channels(smtp_url=smtp_url or None, mail_from=mail_from or None, webhook_secret=webhook_secret or None,
                    public_url=public_url, timeout=duration(delivery_timeout, "--delivery-timeout").total_seconds())


@click.group()
def notify():
    """Notification delivery."""


@notify.command("test")
@click.argument("destination")
@delivery_options
@click.option("--public-url", envvar="SLM_PUBLIC_URL", show_envvar=True, default="http://127.0.0.1:8080",
              show_default=True, help="The service's address, for links in the message.")
def notify_test(destination, smtp_url, mail_from, webhook_secret, delivery_timeout, public_url):
    """Send a test message to DESTINATION (an e-mail address, an http(s) URL or an Apprise
    URL) with these settings; exit 1 if it cannot be delivered."""
    from engine.notify.deliver import DeliveryError, redact, send
    from engine.notify.group import Message
    from engine.notify.route import channel_of
    config = channels(smtp_url, mail_from, webhook_secret, delivery_timeout, public_url)
    test_id = "test_" + uuid.uuid4().hex[:20]
    note = {"id": test_id, "decision": test_id, "activity": "test", "recipient": destination,
            "roles": [], "raci": "", "channel": channel_of(destination),
            "message": "slm test message: if you read this, notifications reach you"}
    message = Message(test_id, destination, note["channel"], "test", [note])
    decision = {"id": test_id, "kind": "test", "target": None, "subject": None, "service": None, "at": None}
    try:
        send(message, {test_id: decision}, config)
    except DeliveryError as err:
        click.echo(f"not delivered to {redact(destination)} ({note['channel']}): {err.reason}", err=True)
        sys.exit(1)
    click.echo(f"sent {test_id} to {redact(destination)} ({note['channel']})")


@notify.command("run")
@db_option()
@delivery_options
@click.option("--group-wait", default="30s", show_default=True, help="As for slm serve (the wait itself is "
              "set by the process that stores the notifications).")
@click.option("--delivery-max-age", default="24h", show_default=True)
@click.option("--retry-initial", default="2s", show_default=True)
@click.option("--public-url", envvar="SLM_PUBLIC_URL", show_envvar=True, default="http://127.0.0.1:8080",
              show_default=True, help="The service's address, for links in messages.")
@click.option("--secret-key", envvar="SLM_SECRET_KEY", show_envvar=True,
              help="The --secret-key of slm serve, from which the links that acknowledge an escalation are signed.")
@audit_key_option(help="The audit key file of slm serve: signs the acknowledgement links without --secret-key "
                       "(read only, never made here).")
@click.option("--ack-ttl", default="72h", show_default=True, help=ACK_TTL_HELP)
def notify_run(db_url, smtp_url, mail_from, webhook_secret, delivery_timeout, group_wait, delivery_max_age,
               retry_initial, public_url, secret_key, audit_key_file, ack_ttl):
    """Deliver from the outbox without serving: beside `slm serve --no-delivery`, or as one
    more deliverer on a PostgreSQL outbox (claims never overlap). Stops on SIGTERM."""
    import logging
    import signal
    import threading

    from engine.notify.record import RetryPolicy
    from engine.notify.worker import DeliveryWorker

    from .common import open_store
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = channels(smtp_url, mail_from, webhook_secret, delivery_timeout, public_url)
    config = replace(config, ack_links=ack_links(secret_key, audit_key(audit_key_file), ack_ttl, "slm.notify"))
    policy = RetryPolicy(initial=duration(retry_initial, "--retry-initial"),
                         max_age=duration(delivery_max_age, "--delivery-max-age"))
    store = open_store(db_url)
    worker = DeliveryWorker(store, config, policy=policy, group_wait=duration(group_wait, "--group-wait"))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    if not config.smtp_url:
        click.echo("no SMTP relay (--smtp / SLM_SMTP_URL): e-mail notifications are recorded as "
                   "undeliverable, not sent", err=True)
    worker.start()
    click.echo("delivering from the outbox; SIGTERM or Ctrl-C stops")
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
        store.close()
