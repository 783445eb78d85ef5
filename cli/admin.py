"""``slm report`` and ``slm audit``: working on a store, beside or without a server."""
from __future__ import annotations

import json
import sys

import click

from engine.lang.errors import RuleSetError
from schemas.values import report_months

from .common import audit_key, audit_key_option, db_option, open_store, rules_in_force, rules_option


@click.command()
@click.option("--service", required=True, help="The service whose targets to report.")
@click.option("--period", required=True, callback=lambda ctx, param, value: _period(value),
              help="The calendar month, YYYY-MM, or the months from one to another, YYYY-MM..YYYY-MM.")
@click.option("--customer", help="Only the agreements naming this customer.")
@rules_option(help="Used only when the database records no rules in force.")
@db_option()
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="json: as GET /v1/reports/compliance; csv: as its Accept: text/csv.")
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
def report(service, period, customer, rules_dir, db_url, fmt, as_json):
    """Compliance per target of one service over a month or a range of months, with the
    trend month by month and the service credits due, from the stored decisions, under the
    rules in force in that database (as `slm docs --db`), wherever it is run from.

    Read only: safe beside a running `slm serve`. The engine state (for availability) is
    rebuilt from the newest snapshot of these rules and the facts stored after it."""
    from engine.service.live import SlmService
    from engine.service.reportcsv import report_csv
    from engine.service.reports import UnknownName
    with open_store(db_url) as store:
        try:
            reader = SlmService(store, rules_in_force(store) if store.cutovers() else rules_dir)
        except RuleSetError as err:
            click.echo(err.report(), err=True)
            sys.exit(1)
        reader.load_state()
        try:
            result = reader.engine_reads.compliance(service, period, customer)
        except UnknownName as err:
            raise click.BadParameter(str(err), param_hint=f"--{err.field}") from None
    if as_json or fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    if fmt == "csv":
        click.echo(report_csv(result), nl=False)
        return
    whose = f" for {customer}" if customer else ""
    click.echo(f"compliance of {service}{whose} in {period}  (ruleset {result['ruleset'][:19]}…)")
    header = ("target", "agreement", "goal", "subjects", "met", "breached", "compliance", "availability")
    rows = [(r["target"] + (" (shadow)" if r["shadow"] else ""), r["agreement"], r["goal"], str(r["subjects"]),
             str(r["met"]), str(r["breached"]), _pct(r["compliance"]), _pct(r["availability"]))
            for r in result["targets"]]
    _table(header, rows, 3)
    if len(result["months"]) > 1:
        click.echo("trend (compliance, availability per month):")
        header = ("target", *result["months"])
        _table(header, [(r["target"], *(_trend_cell(month) for month in r["trend"])) for r in result["targets"]], 1)
    for c in result["credits"]:
        click.echo(_credit_line(c, len(result["months"]) > 1))
    for note in result["restatements"]:
        for line in _restatement_lines(note, result["targets"]):
            click.echo(line)
    for r in result["targets"]:
        if r.get("waived_time") is not None:
            taken = r["waived_time"]
            click.echo(f"waived from {r['target']}: {taken['down_minutes']:g} min down in "
                       f"{taken['service_minutes']:g} min of service time (availability unwaived "
                       f"{_pct(taken['availability_unwaived']).strip()})")
            for w in taken["waivers"]:
                click.echo(f"  {w['id']}  {w['since']} – {w['until']}  {w['reason']!r}  requested by "
                           f"{w['requested_by']}, approved by {w['approved_by']}")
        if r.get("maintenance") is not None:
            spans = r["maintenance"]["windows"]
            click.echo(f"maintenance excluded from {r['target']}: {r['maintenance']['excluded_minutes']:g} min "
                       f"in {len(spans)} window(s)")
            for span in spans:
                click.echo(f"  {span['from']} – {span['to']}  {span['source']}")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], left: int) -> None:
    """Columns padded to their widest cell; the first ``left`` columns flush left."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) if i < left else cell.rjust(width)
                             for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip())


def _trend_cell(month: dict) -> str:
    return " / ".join(_pct(month[k]) for k in ("compliance", "availability"))


def _restatement_lines(note: dict, rows: list[dict]) -> list[str]:
    """A restated month's note (reason, rules, who requested and approved it) and, per
    target, the figures as recorded beside the restated ones."""
    lines = [f"restated {note['period']} ({note['id']}): {note['reason']!r}, under rules {note['rules'][:19]}…, "
             f"requested by {note['requested_by']}, approved by {note['approved_by']} at {note['approved_at']}"]
    for row in rows:
        month = next((m for m in row["trend"] if m["period"] == note["period"] and m["original"]), None)
        if month is not None:
            was = month["original"]
            lines.append(f"  {row['target']}: {_figures(month)} restated; {_figures(was)} as recorded")
    return lines


def _figures(month: dict) -> str:
    return (f"met {month['met']}, breached {month['breached']}, waived {month['waived']}, "
            f"compliance {_pct(month['compliance'])}, availability {_pct(month['availability'])}")


def _credit_line(credit: dict, dated: bool = False) -> str:
    """One agreement's service credit for a month, with the figure that decided it."""
    who = f" ({credit['customer']})" if credit["customer"] else ""
    shadow = " (shadow: not owed)" if credit["shadow"] else ""
    when = f" in {credit['period']}" if dated else ""
    line = f"service credit of {credit['agreement']}{who}{when}{shadow}: {credit['credit']:g} %"
    basis = next((t for t in credit["targets"] if t["target"] == credit["decided_by"]), None)
    if basis is not None:
        line += f" ({credit['of']} of {basis['target']} {basis['figure']:g} % < {basis['below']:g} %)"
    elif credit["unmeasured"] and not credit["targets"]:
        line += f" (no {credit['of']} measured)"
    return line


def _period(value: str) -> str:
    try:
        report_months(value or "")
    except ValueError as err:
        raise click.BadParameter(f"{err} (e.g. 2026-11 or 2026-09..2026-11)") from None
    return value


def _pct(value) -> str:
    return "—" if value is None else f"{value:g} %"


@click.group()
def audit():
    """Check the audit chains (decisions, facts, notifications, delivery outcomes); sign checkpoints."""


# what one record of each chain is called
RECORD = {"decisions": "decision", "facts": "fact", "notifications": "notification",
          "deliveries": "delivery outcome", "cutovers": "cut-over", "silences": "silence event",
          "waivers": "waiver event", "restatements": "restatement event"}


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
