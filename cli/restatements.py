"""``slm restate`` and ``slm restatement``: restate a settled month of a service, then
approve, revoke and list restatements in a store, under the same four-eyes rule as the API
(engine/service/restatements.py)."""
from __future__ import annotations

import json

import click

from engine.clock import utcnow

from .common import audit_key, audit_key_option, db_option, open_store, rules_in_force
from .waivers import OWNERS, token_option


@click.command("restate")
@click.option("--service", required=True, help="The service whose month to restate.")
@click.option("--period", required=True, help="The month, YYYY-MM, ended at least a day ago.")
@click.option("--reason", required=True, help="Why, for the approver, the audit and the report's note.")
@click.option("--rules", "version", help="The rule-set version to evaluate by (or a prefix only it has); "
                                         "default: the rules in force.")
@token_option()
@db_option()
@audit_key_option()
def restate(service, period, reason, version, token, db_url, audit_key_file):
    """Evaluate a settled month again over the stored history and record what it decides
    differently as superseding decisions; in effect once another token approves it. Prints
    it as JSON."""
    asked = {"service": service, "period": period, "reason": reason, "rules": version}
    _run(db_url, audit_key_file, token, lambda restatements, by: restatements.request(asked, by))


@click.group()
def restatement():
    """Restatements of settled months: approve with a second token, revoke, list."""


@restatement.command("approve")
@click.argument("restatement_id")
@token_option()
@db_option()
@audit_key_option()
def restatement_approve(restatement_id, token, db_url, audit_key_file):
    """Put a requested restatement in effect; refused to the token that requested it."""
    _run(db_url, audit_key_file, token, lambda restatements, by: restatements.approve(restatement_id, by))


@restatement.command("revoke")
@click.argument("restatement_id")
@click.option("--reason", required=True, help="Why it no longer holds.")
@token_option()
@db_option()
@audit_key_option()
def restatement_revoke(restatement_id, reason, token, db_url, audit_key_file):
    """End a restatement, requested or approved: reports show the recorded figures again."""
    _run(db_url, audit_key_file, token,
         lambda restatements, by: restatements.revoke(restatement_id, by, reason))


@restatement.command("list")
@click.option("--status", type=click.Choice(["requested", "approved", "revoked"]),
              help="Only restatements in this state.")
@click.option("--service", help="Only this service's.")
@db_option()
def restatement_list(status, service, db_url):
    """Every restatement as JSON lines, oldest request first."""
    with open_store(db_url) as store:
        for item in store.restatements(status, service):
            click.echo(json.dumps(item, sort_keys=True))


def _run(db_url, audit_key_file, token, step) -> None:
    """``step(restatements, token name)`` on the store, a refusal as a clean error (exit 1)."""
    from engine.service.restatements import Restatements
    from engine.service.waivers import WaiverRefused
    from engine.store.tokens import token_digest

    with open_store(db_url, audit_key(audit_key_file)) as store:
        grant = store.digest_grant(token_digest(token))
        if grant is None or grant.expired(utcnow()) or grant.role not in OWNERS:
            raise click.BadParameter("not an unrevoked, unexpired owner or admin token", param_hint="--token")
        try:
            result = step(Restatements(store, lambda: rules_in_force(store), utcnow), grant.name)
        except WaiverRefused as refused:
            raise click.ClickException(f"refused ({refused.status}): {refused}") from None
    click.echo(json.dumps(result, indent=2, sort_keys=True))
