"""``slm docs SERVICE``: the agreements of a service as a document a customer can sign."""
from __future__ import annotations

import sys

import click

from engine.lang.errors import RuleSetError

from .common import open_store, rules_in_force, rules_option


def _in_force(db_url: str):
    with open_store(db_url) as store:
        return rules_in_force(store)


@click.command()
@click.argument("service")
@rules_option(help="The rules directory.")
@click.option("--db", "db_url", help="Read the rules in force from this database instead: "
                                     "sqlite:///path.db or postgresql://user@host/db.")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--agreement", "agreements", multiple=True, help="Only this agreement (repeatable).")
def docs(service, rules_dir, db_url, fmt, agreements):
    """Render SERVICE's agreements in force — targets in plain words, service hours,
    escalation path, RACI, validity — from the rules the engine enforces."""
    from engine.lang.document import UnknownService, agreement_document
    from engine.lang.document_render import render
    from engine.lang.loader import load_rules

    try:
        ruleset = _in_force(db_url) if db_url else load_rules(rules_dir)
        document = agreement_document(ruleset, service, list(agreements))
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(2)
    except UnknownService as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(2)
    click.echo(render(document, fmt), nl=False)
