"""``slm waiver``: request, approve, revoke and list waivers in a store, beside or without
a server, under the same four-eyes rule as the API (engine/service/waivers.py)."""
from __future__ import annotations

import json

import click

from engine.clock import utcnow

from .common import audit_key, audit_key_option, db_option, open_store, rules_in_force, rules_option

OWNERS = ("owner", "admin")


def token_option():
    return click.option("--token", envvar="SLM_TOKEN", show_envvar=True, required=True,
                        help="An owner or admin token: the step is recorded with its name.")


@click.group()
def waiver():
    """Waivers: a decision, or a target's period, left out of compliance once a second token approves."""


@waiver.command("request")
@click.option("--decision", help="The id of a met or breach decision whose cycle to leave out.")
@click.option("--target", help="With --since and --until: leave out this target's cycles settled in the period.")
@click.option("--since", help="The period's start (inclusive), RFC 3339.")
@click.option("--until", help="The period's end (exclusive), RFC 3339.")
@click.option("--reason", required=True, help="Why, for the approver and the audit.")
@token_option()
@rules_option(help="Used only when the database records no rules in force.")
@db_option()
@audit_key_option()
def waiver_request(decision, target, since, until, reason, token, rules_dir, db_url, audit_key_file):
    """Ask for a waiver; it takes effect when another token approves it. Prints it as JSON."""
    asked = {"decision": decision, "reason": reason} if decision else \
        {"target": target, "since": since, "until": until, "reason": reason}
    if decision and (target or since or until):
        raise click.UsageError("give --decision, or --target with --since and --until, not both")
    if not decision and not (target and since and until):
        raise click.UsageError("give --decision, or --target with --since and --until")
    _run(db_url, audit_key_file, token, rules_dir, lambda waivers, by: waivers.request(asked, by))


@waiver.command("approve")
@click.argument("waiver_id")
@token_option()
@db_option()
@audit_key_option()
def waiver_approve(waiver_id, token, db_url, audit_key_file):
    """Put a requested waiver in effect; refused to the token that requested it."""
    _run(db_url, audit_key_file, token, None, lambda waivers, by: waivers.approve(waiver_id, by))


@waiver.command("revoke")
@click.argument("waiver_id")
@click.option("--reason", required=True, help="Why it no longer holds.")
@token_option()
@db_option()
@audit_key_option()
def waiver_revoke(waiver_id, reason, token, db_url, audit_key_file):
    """End a waiver, requested or approved."""
    _run(db_url, audit_key_file, token, None, lambda waivers, by: waivers.revoke(waiver_id, by, reason))


@waiver.command("list")
@click.option("--status", type=click.Choice(["requested", "approved", "revoked"]), help="Only waivers in this state.")
@db_option()
def waiver_list(status, db_url):
    """Every waiver as JSON lines, oldest request first."""
    with open_store(db_url) as store:
        for item in store.waivers(status):
            click.echo(json.dumps(item, sort_keys=True))


def _run(db_url, audit_key_file, token, rules_dir, step) -> None:
    """``step(waivers, token name)`` on the store, the refusal as a clean error (exit 1)."""
    from engine.lang.loader import load_rules
    from engine.service.waivers import WaiverRefused, Waivers
    from engine.store.tokens import token_digest

    with open_store(db_url, audit_key(audit_key_file)) as store:
        grant = store.digest_grant(token_digest(token))
        if grant is None or grant.expired(utcnow()) or grant.role not in OWNERS:
            raise click.BadParameter("not an unrevoked, unexpired owner or admin token", param_hint="--token")

        def ruleset():
            return rules_in_force(store) if store.cutovers() or rules_dir is None else load_rules(rules_dir)
        try:
            result = step(Waivers(store, ruleset, utcnow), grant.name)
        except WaiverRefused as refused:
            raise click.ClickException(f"refused ({refused.status}): {refused}") from None
    click.echo(json.dumps(result, indent=2, sort_keys=True))
