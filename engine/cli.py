"""The ``slm`` command line: check rules, test them against scenarios, manage tokens,
verify the decision log. ``slm serve`` is added by :mod:`api.cli`."""
from __future__ import annotations

import json
import os
import re
import sys
from datetime import date
from pathlib import Path

import click

from .checks import validity_warnings
from .errors import RuleSetError
from .loader import load_rules

DEFAULT_RULES = os.environ.get("SLM_RULES", "rules")
DEFAULT_DB = os.environ.get("SLM_DATABASE_URL", "sqlite:///slm.db")
DB_HELP = "sqlite:///path.db or postgresql://user@host/db (env SLM_DATABASE_URL)."


def open_store(url: str):
    """The store at ``url``, or a clean exit naming what is wrong with it."""
    from .store import Store
    try:
        return Store.open(url)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--db") from None
    except Exception as err:        # the driver's own error: unreachable server, bad path …
        raise click.ClickException(f"cannot open database {url.split('@')[-1]}: "
                                   f"{' '.join(str(err).split())}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """slm: SLA targets, escalations and RACI as rules, evaluated over service facts."""


@main.command()
@click.argument("directory", default=DEFAULT_RULES, type=click.Path(file_okay=False))
def check(directory):
    """Validate a rules directory; print every error with file:line:column."""
    try:
        ruleset = load_rules(directory)
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(1)
    for warning in ruleset.warnings + validity_warnings(ruleset, date.today()):
        click.echo(str(warning), err=True)
    targets = list(ruleset.targets.values())
    click.echo(f"{directory}: OK  ruleset {ruleset.version[:19]}…  ({len(ruleset.files)} files)")
    click.echo(f"  services     {len(ruleset.services):>3}  {', '.join(sorted(ruleset.services))}")
    click.echo(f"  agreements   {len(ruleset.agreements):>3}  " + ", ".join(
        f"{a.id} ({a.type}{', ' + a.status if a.status != 'agreed' else ''})"
        for a in sorted(ruleset.agreements.values(), key=lambda a: a.id)))
    by_measure = {m: sum(1 for t in targets if t.measure == m) for m in ("duration", "availability", "threshold")}
    click.echo(f"  targets      {len(targets):>3}  " + ", ".join(f"{n} {m}" for m, n in by_measure.items() if n))
    click.echo(f"  escalations  {len(ruleset.escalations):>3}  {', '.join(sorted(ruleset.escalations))}")
    click.echo(f"  activities   {len(ruleset.raci):>3}  {', '.join(sorted(ruleset.raci))}")
    click.echo(f"  rules        {len(ruleset.rules):>3}  {', '.join(sorted(ruleset.rules))}")
    click.echo(f"  calendars    {len(ruleset.calendars):>3}  {', '.join(sorted(ruleset.calendars))}")


@main.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--rules", "rules_dir", default=DEFAULT_RULES, show_default=True,
              help="Rules for scenarios that do not name their own.")
@click.option("--coverage", is_flag=True, help="List rules that no scenario fired.")
def test_command(paths, rules_dir, coverage):
    """Run scenario files (default: fixtures/scenarios); exit 1 on any failure."""
    from .compiler import compile_ruleset, RULESET
    from .scenario import RuleSetCache, find_scenarios, run_file

    files = find_scenarios(list(paths) or ["fixtures/scenarios"])
    if not files:
        click.echo("no scenario files found", err=True)
        sys.exit(1)
    cache = RuleSetCache()
    results = []
    for path in files:
        for result in run_file(path, Path(rules_dir), cache):
            results.append(result)
            mark = click.style("PASS", fg="green") if result.passed else click.style("FAIL", fg="red")
            click.echo(f"{mark}  {result.name}  ({result.file})")
            for failure in result.failures:
                click.echo("      " + failure.replace("\n", "\n      "))
    failed = sum(1 for r in results if not r.passed)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    if coverage:
        fired: dict[str, set] = {}
        for result in results:
            fired.setdefault(result.rules_root, set()).update(result.fired)
        for root, names in sorted(fired.items()):
            ruleset = cache.get(Path(root))
            if isinstance(ruleset, RuleSetError):
                continue
            never = sorted(set(compile_ruleset(ruleset)[RULESET]) - names)
            click.echo(f"coverage of {root}: {len(never)} rules never fired" + (":" if never else ""))
            for name in never:
                click.echo(f"  {name}")
    sys.exit(1 if failed else 0)


@main.group()
def token():
    """API tokens (bearer) with roles: monitor, owner, auditor, admin."""


@token.command("create")
@click.option("--role", required=True, type=click.Choice(["monitor", "owner", "auditor", "admin"]))
@click.option("--name", default=None, help="A note on who or what holds the token.")
@click.option("--db", "db_url", default=DEFAULT_DB, show_default=True, help=DB_HELP)
def token_create(role, name, db_url):
    """Create a token; it is printed once, on the last line, and stored only hashed."""
    with open_store(db_url) as store:
        value = store.add_token(role, name)
    click.echo(f"created a {role} token{' for ' + name if name else ''}; it is not shown again:")
    click.echo(value)


@token.command("revoke")
@click.argument("value")
@click.option("--db", "db_url", default=DEFAULT_DB, show_default=True, help=DB_HELP)
def token_revoke(value, db_url):
    """Revoke a token: requests bearing it get 401 (a running service notices within 5s)."""
    with open_store(db_url) as store:
        if not store.revoke_token(value):
            click.echo("no such token", err=True)
            sys.exit(1)
    click.echo("revoked")


@main.command()
@click.option("--service", required=True, help="The service whose targets to report.")
@click.option("--period", required=True, callback=lambda ctx, param, value: _month(value),
              help="The calendar month, YYYY-MM.")
@click.option("--rules", "rules_dir", default=DEFAULT_RULES, show_default=True, type=click.Path(file_okay=False),
              help="The rules the service runs (env SLM_RULES).")
@click.option("--db", "db_url", default=DEFAULT_DB, show_default=True, help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (as GET /v1/reports/compliance).")
def report(service, period, rules_dir, db_url, as_json):
    """A month's compliance per target of one service, from the stored decisions.

    Read only: safe beside a running `slm serve`. The engine state (for availability) is
    rebuilt from the newest snapshot of these rules and the facts stored after it."""
    from .service import SlmService
    with open_store(db_url) as store:
        try:
            reader = SlmService(store, rules_dir)
        except RuleSetError as err:
            click.echo(err.report(), err=True)
            sys.exit(1)
        reader.load_state()
        try:
            result = reader.compliance(service, period)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--service") from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"compliance of {service} in {period}  (ruleset {result['ruleset'][:19]}…)")
    header = ("target", "agreement", "goal", "subjects", "met", "breached", "compliance", "availability")
    rows = [(r["target"] + (" (shadow)" if r["shadow"] else ""), r["agreement"], r["goal"], str(r["subjects"]),
             str(r["met"]), str(r["breached"]), _pct(r["compliance"]), _pct(r["availability"]))
            for r in result["targets"]]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) if i < 3 else cell.rjust(width)
                             for i, (cell, width) in enumerate(zip(row, widths))).rstrip())


def _month(value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value or ""):
        raise click.BadParameter(f"{value!r} is not a month (YYYY-MM, e.g. 2026-11)")
    return value


def _pct(value) -> str:
    return "—" if value is None else f"{value:g} %"


@main.group()
def audit():
    """Check the decision log."""


@audit.command("verify")
@click.option("--db", "db_url", default=DEFAULT_DB, show_default=True, help=DB_HELP)
def audit_verify(db_url):
    """Walk the hash chain of the decision log; exit 1 at the first broken record."""
    with open_store(db_url) as store:
        result = store.verify_chain()
    if result["ok"]:
        click.echo(f"OK: {result['checked']} decisions, hash chain intact")
        return
    broken = result["first_broken"]
    click.echo(f"BROKEN at decision seq {broken['seq']} ({broken['id']}): {broken['reason']}; "
               f"{result['checked']} records before it verify", err=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
