"""``slm report`` and ``slm audit``: working on a store, beside or without a server."""
from __future__ import annotations

import json
import sys

import click

from engine.lang.errors import RuleSetError
from schemas.api import PERIOD
from schemas.strings import PERIOD_RANGE

from .common import audit_key, audit_key_option, db_option, open_store, rules_in_force, rules_option


@click.command()
@click.option("--service", required=True, help="The service whose targets to report.")
@click.option("--period", required=True, callback=lambda ctx, param, value: _month(value),
              help="The calendar month, YYYY-MM.")
@rules_option(help="Used only when the database records no rules in force.")
@db_option()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (as GET /v1/reports/compliance).")
def report(service, period, rules_dir, db_url, as_json):
    """A month's compliance per target of one service, from the stored decisions, under
    the rules in force in that database (as `slm docs --db`), wherever it is run from.

    Read only: safe beside a running `slm serve`. The engine state (for availability) is
    rebuilt from the newest snapshot of these rules and the facts stored after it."""
    from engine.service.live import SlmService
    with open_store(db_url) as store:
        try:
            reader = SlmService(store, rules_in_force(store) if store.cutovers() else rules_dir)
        except RuleSetError as err:
            click.echo(err.report(), err=True)
            sys.exit(1)
        reader.load_state()
        try:
            result = reader.engine_reads.compliance(service, period)
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
                             for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip())
    for r in result["targets"]:
        if r.get("maintenance") is not None:
            spans = r["maintenance"]["windows"]
            click.echo(f"maintenance excluded from {r['target']}: {r['maintenance']['excluded_minutes']:g} min "
                       f"in {len(spans)} window(s)")
            for span in spans:
                click.echo(f"  {span['from']} – {span['to']}  {span['source']}")


def _month(value: str) -> str:
    if not PERIOD.match(value or ""):
        raise click.BadParameter(f"{value!r} is not {PERIOD_RANGE}, e.g. 2026-11")
    return value


def _pct(value) -> str:
    return "—" if value is None else f"{value:g} %"


@click.group()
def audit():
    """Check the audit chains (decisions, facts, notifications, delivery outcomes); sign checkpoints."""


# what one record of each chain is called
RECORD = {"decisions": "decision", "facts": "fact", "notifications": "notification",
          "deliveries": "delivery outcome", "cutovers": "cut-over", "silences": "silence event"}


@audit.command("verify")
@db_option()
@audit_key_option()
@click.option("--checkpoint", "checkpoint_file", type=click.File("r"),
              help="A checkpoint (slm audit checkpoint): prove nothing up to it was removed or rewritten.")
def audit_verify(db_url, audit_key_file, checkpoint_file):
    """Walk every audit chain; exit 1 at the first broken record of any."""
    point = json.load(checkpoint_file) if checkpoint_file else None
    with open_store(db_url, audit_key(audit_key_file)) as store:
        result = store.verify_audit(point)
    for name, chain in result["chains"].items():
        macs = "" if chain["macs_checked"] else " (keyed links not checked: no key given)"
        if chain["ok"]:
            span = (f", seq {chain['first_seq']}..{chain['last_seq']}" if chain["checked"] else "")
            click.echo(f"OK: {chain['checked']} {name}{span}, chain intact{macs}")
        else:
            broken = chain["first_broken"]
            click.echo(f"BROKEN at {RECORD.get(name, name)} seq {broken['seq']} ({broken['id']}): {broken['reason']}; "
                       f"{chain['checked']} records before it verify", err=True)
        for row in chain["outside"]:
            click.echo(f"  not a link of the {name} chain: {RECORD.get(name, name)} seq {row['seq']} ({row['id']})",
                       err=True)
        if chain["outside_count"] > len(chain["outside"]):
            click.echo(f"  … and {chain['outside_count'] - len(chain['outside'])} more", err=True)
    if point is not None:
        problem = result["checkpoint"]["problem"]
        click.echo(f"checkpoint of {result['checkpoint']['at']}: " + (problem or (
            "everything up to it is there, unchanged" if result["checkpoint"]["ok"] else "NOT upheld")),
            err=not result["checkpoint"]["ok"])
    if not result["ok"]:
        sys.exit(1)


@audit.command("checkpoint")
@db_option()
@audit_key_option(required=True)
def audit_checkpoint(db_url, audit_key_file):
    """Print the heads of the audit chains, signed: keep it elsewhere (verify --checkpoint)."""
    with open_store(db_url, audit_key(audit_key_file)) as store:
        click.echo(json.dumps(store.audit_checkpoint(), indent=2, sort_keys=True))
