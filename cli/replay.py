"""``slm replay``: what a rules directory would have decided over the stored history.

Read only and safe beside a running server: the stored facts of the period are evaluated
again in a fresh engine under the given rules and compared with what was recorded. Exit 0
when nothing differs, 1 when something does, 2 when the rules or the database cannot be
used — so a rules pull request can be gated in CI.
"""
from __future__ import annotations

import json
import sys

import click

from engine.clock import utcnow
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules
from engine.service.whatif import default_period, what_if
from schemas.values import parse_instant

from .common import db_option, open_store


def _instant(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@click.command()
@click.option("--rules", "rules_dir", required=True, type=click.Path(file_okay=False),
              help="The rules to try (a directory, e.g. the branch of a pull request).")
@db_option()
@click.option("--since", callback=_instant, help="Start of the period (RFC 3339; default: 90 days ago).")
@click.option("--until", callback=_instant, help="End of the period (RFC 3339; default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the difference as JSON.")
def replay(rules_dir, db_url, since, until, as_json):
    """Re-evaluate the stored facts of a period under RULES and print what would differ
    from what was recorded; exit 0 if nothing, 1 if something, 2 on bad rules or database."""
    try:
        ruleset = load_rules(rules_dir)
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(2)
    start, end = default_period(utcnow())
    since, until = since or start, until or end
    try:
        store = open_store(db_url)
    except click.ClickException as err:
        click.echo(f"Error: {err.format_message()}", err=True)
        sys.exit(2)
    with store:
        def progress(count: int) -> None:
            if count % 50_000 == 0:
                click.echo(f"… {count:,} facts replayed", err=True)
        try:
            result = what_if(store, ruleset, since, until, progress=progress)
        except Exception as err:                      # the database failed under us
            click.echo(f"Error: the replay failed: {err}", err=True)
            sys.exit(2)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print(result)
    sys.exit(1 if result["changed"] else 0)


def _print(result: dict) -> None:
    click.echo(f"replayed {result['facts']:,} facts of {result['since']} – {result['until']} "
               f"under {result['ruleset'][:19]}…")
    for title, items in (("added", result["added"]), ("removed", result["removed"]), ("moved", result["moved"])):
        click.echo(f"{title}: {len(items)}")
        for d in items:
            where = f"{d['at']}" + (f" (was {d['from']})" if "from" in d else "")
            level = f" {d['level']}" if d.get("level") else ""
            click.echo(f"  {d['kind']}{level} {d['target']} {d['subject']} at {where}")
    click.echo("compliance (met/breached, before -> after):")
    for row in result["compliance"]:
        b, a = row["before"], row["after"]
        mark = "" if b == a else "   changed"
        click.echo(f"  {row['target']}: {b['met']}/{b['breached']} ({_pct(b)}) -> "
                   f"{a['met']}/{a['breached']} ({_pct(a)}){mark}")
    if not result["changed"]:
        click.echo("no difference")


def _pct(outcome: dict) -> str:
    return "—" if outcome["compliance"] is None else f"{outcome['compliance']:g} %"
