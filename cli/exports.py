"""``slm export``: a service's error budgets written for other tools, from the rules the
engine enforces (a rules directory, or the rules in force in a database)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.lang.errors import RuleSetError

from .common import open_store, rules_in_force, rules_option


@click.group("export")
def export_group():
    """Write a service's error budgets for other tools."""


def _ruleset(rules_dir: str, db_url: str | None):
    from engine.lang.loader import load_rules

    try:
        if db_url:
            with open_store(db_url) as store:
                return rules_in_force(store)
        return load_rules(rules_dir)
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(2)


def _source_options(command):
    command = click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
                           help="Write here instead of to standard output.")(command)
    command = click.option("--db", "db_url", help="Read the rules in force from this database instead: "
                                                  "sqlite:///path.db or postgresql://user@host/db.")(command)
    return rules_option(help="The rules directory.")(command)


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@export_group.command("prometheus-rules")
@click.argument("service")
@_source_options
def prometheus_rules_command(service, rules_dir, db_url, output):
    """Prometheus recording and alerting rules for SERVICE's error budgets, laid out as Sloth
    generates them: error ratios per window, the budget's metadata, and burn-rate alerts
    from each target's burn_rate levels (docs/RULES.md, "Prometheus rules"). A target must
    name its PromQL (prometheus: {errors, total}); those that do not are listed and left out."""
    from engine.lang.prometheus import UnknownService, prometheus_rules

    ruleset = _ruleset(rules_dir, db_url)
    try:
        exported = prometheus_rules(ruleset, service)
    except UnknownService as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(2)
    for target, why in exported.skipped:
        click.echo(f"left out {target}: {why}", err=True)
    if not exported.groups:
        click.echo(f"Error: no target of {service!r} could be written", err=True)
        sys.exit(1)
    _write(exported.text(service), output)


@export_group.command("openslo")
@click.argument("service")
@_source_options
def openslo_command(service, rules_dir, db_url, output):
    """OpenSLO v1 documents (Service, SLI, SLO, AlertPolicy, AlertCondition) of SERVICE's
    error budgets: its ratio, availability and threshold targets, with their burn-rate
    levels (docs/RULES.md, "OpenSLO"). Duration targets are listed and left out."""
    from engine.lang.openslo import UnknownService, dump, export_openslo

    ruleset = _ruleset(rules_dir, db_url)
    try:
        docs, skipped = export_openslo(ruleset, service)
    except UnknownService as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(2)
    for target, why in skipped:
        click.echo(f"left out {target}: {why}", err=True)
    _write(dump(docs), output)
