"""``slm token``: create, list and revoke API tokens in a store, beside or without a server."""
from __future__ import annotations

import json
import sys

import click

from engine.clock import utcnow

from .common import db_option, open_store

ROLE_CHOICE = click.Choice(["monitor", "owner", "auditor", "admin"])


@click.group()
def token():
    """API tokens (bearer) with roles: monitor, owner, auditor, admin."""


@token.command("create")
@click.option("--role", required=True, type=ROLE_CHOICE)
@click.option("--name", default=None,
              help="What to list and revoke it by, unique among unrevoked tokens (default: ROLE-N).")
@click.option("--source", "sources", multiple=True, metavar="PATTERN",
              help="Post only facts whose source matches this glob (e.g. 'zabbix/*'); repeat for several. "
                   "Monitor tokens only; without it, any source.")
@click.option("--expires", default=None, metavar="WHEN",
              help="A duration from now (90d, 12h) or an RFC 3339 time (2027-01-01T00:00:00Z); default: never.")
@db_option()
def token_create(role, name, sources, expires, db_url):
    """Create a token; it is printed once, on the last line, and stored only hashed."""
    from engine.store.tokens import TokenNameTaken, check_name, check_sources, parse_expiry, token_digest
    from schemas.values import format_instant

    expires_at = _checked("--expires", parse_expiry, expires, utcnow()) if expires else None
    if name is not None:
        _checked("--name", check_name, name)
    _checked("--source", check_sources, role, sources)
    with open_store(db_url) as store:
        try:
            value = store.add_token(role, name, sources=sources, expires_at=expires_at)
        except TokenNameTaken as err:
            raise click.BadParameter(str(err), param_hint="--name") from None
        made = store.digest_grant(token_digest(value))
    from .serve import _redacted
    limits = [f"sources {', '.join(made.sources)}" if made.sources else "any source" if role == "monitor" else "",
              f"expires {format_instant(made.expires_at)}" if made.expires_at else "never expires"]
    click.echo(f"created {'an' if role[0] in 'aeiou' else 'a'} {role} token {made.name!r} "
               f"({'; '.join(part for part in limits if part)}) in {_redacted(db_url)}; it is not shown again:")
    click.echo(value)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the tokens as a JSON array.")
@db_option()
def token_list(as_json, db_url):
    """Every token, oldest first: name, role, sources, created, expires and status (active,
    expired or revoked). Never the token nor its hash."""
    with open_store(db_url) as store:
        tokens = store.tokens()
    from schemas.values import parse_instant
    now = utcnow()
    for t in tokens:
        t["status"] = "revoked" if t["revoked"] else \
            "expired" if t["expires_at"] and parse_instant(t["expires_at"]) <= now else "active"
    if as_json:
        click.echo(json.dumps(tokens, indent=2))
        return
    rows = [("NAME", "ROLE", "SOURCES", "CREATED", "EXPIRES", "STATUS")] + [
        (t["name"], t["role"], ",".join(t["sources"]) or "*", t["created_at"], t["expires_at"] or "never",
         t["status"]) for t in tokens]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@token.command("revoke")
@click.argument("name_or_token")
@db_option()
def token_revoke(name_or_token, db_url):
    """Revoke a token by its name (as `slm token list` shows it) or by the token itself:
    requests bearing it get 401 (a running service notices within 5 s)."""
    with open_store(db_url) as store:
        name = store.revoke_token(name_or_token)
    if name is None:
        click.echo("no unrevoked token has that name or value (see slm token list)", err=True)
        sys.exit(1)
    click.echo(f"revoked {name!r}")


def _checked(option: str, check, *args):
    try:
        return check(*args)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=option) from None

