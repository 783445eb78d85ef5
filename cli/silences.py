"""``slm silence``: mute notifications for a while, list silences, end one early, in a store
beside or without a server (the server reads them from the store on every write)."""
from __future__ import annotations

import getpass
import json

import click

from engine.clock import utcnow

from .common import audit_key, audit_key_option, db_option, open_store


@click.group()
def silence():
    """Silences: notifications whose decision and recipient match are stored muted, not sent."""


@silence.command("add")
@click.option("--service", help="Glob of the decision's service.")
@click.option("--target", help="Glob of the decision's target.")
@click.option("--subject", help="Glob of the decision's subject (INC-*).")
@click.option("--recipient", help="Glob of the recipient (*@example.org).")
@click.option("--for", "duration", default=None, metavar="DURATION", help="How long: 2h, 30m, 1d.")
@click.option("--until", "until", default=None, metavar="TIME", help="Until this RFC 3339 time instead.")
@click.option("--starts", default=None, metavar="TIME", help="From this RFC 3339 time (default: now).")
@click.option("--reason", required=True, help="Why: shown with every notification it mutes.")
@click.option("--by", default=None, help="Who makes it (default: cli:USER).")
@db_option()
@audit_key_option()
def silence_add(service, target, subject, recipient, duration, until, starts, reason, by, db_url, audit_key_file):
    """Make a silence; prints it."""
    from engine.notify.silence import SilenceError, created_event, new_silence
    from schemas.values import parse_duration, parse_instant

    now = utcnow()
    matchers = {k: v for k, v in (("service", service), ("target", target), ("subject", subject),
                                  ("recipient", recipient)) if v is not None}
    if (duration is None) == (until is None):
        raise click.UsageError("give how long it lasts: --for DURATION or --until TIME")
    try:
        start = parse_instant(starts) if starts else now
        end = parse_instant(until) if until else start + parse_duration(duration)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--for/--until/--starts") from None
    try:
        made = new_silence(matchers, start, end, by or f"cli:{getpass.getuser()}", reason, now)
    except SilenceError as err:
        raise click.UsageError(f"this silence cannot be made: {err}") from None
    with open_store(db_url, key=audit_key(audit_key_file)) as store:
        store.add_silence_event(made.id, "created", now, created_event(made))
    click.echo(json.dumps(made.as_dict(now), indent=2))


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also the silences that have ended.")
@db_option()
def silence_list(show_all, db_url):
    """The silences pending or active (with --all, every one), newest first."""
    from engine.notify.silence import from_events

    now = utcnow()
    with open_store(db_url) as store:
        found = list(from_events(store.silence_events()).values())
    for item in reversed(found):
        state = item.state(now)
        if state == "expired" and not show_all:
            continue
        matchers = " ".join(f"{k}={v}" for k, v in item.matchers.items())
        click.echo(f"{item.id}  {state:<7}  {item.as_dict()['starts_at']} .. {item.as_dict()['ends_at']}  "
                   f"{matchers}  by {item.created_by}: {item.reason}")


@silence.command("expire")
@click.argument("silence_id")
@click.option("--by", default=None, help="Who ends it (default: cli:USER).")
@db_option()
@audit_key_option()
def silence_expire(silence_id, by, db_url, audit_key_file):
    """End a silence now; what it muted stays muted."""
    from engine.notify.silence import expired_event, from_events

    now = utcnow()
    with open_store(db_url, key=audit_key(audit_key_file)) as store, store.transaction():
        found = from_events(store.silence_events()).get(silence_id)
        if found is None:
            raise click.ClickException(f"no silence {silence_id!r}")
        if found.state(now) == "expired":
            raise click.ClickException(f"silence {silence_id} has ended already")
        store.add_silence_event(silence_id, "expired", now, expired_event(by or f"cli:{getpass.getuser()}", now))
    click.echo(f"silence {silence_id} ended at {now.isoformat()}")
