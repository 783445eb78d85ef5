"""``slm check`` and ``slm test``: the rules' own tools, no database needed."""
from __future__ import annotations

import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import click

from engine.lang.checks import validity_warnings
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules

from .common import DEFAULT_RULES


@click.command()
@click.argument("directory", default=DEFAULT_RULES, type=click.Path(file_okay=False))
@click.option("--strict", is_flag=True, help="Treat warnings (lint, RACI, validity) as errors: exit 1.")
def check(directory, strict):
    """Validate a rules directory; print every error and warning with file:line:column."""
    try:
        ruleset = load_rules(directory)
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(1)
    warnings = ruleset.warnings + validity_warnings(ruleset, date.today())
    if strict and warnings:
        click.echo(RuleSetError([replace(w, severity="error") for w in warnings]).report(), err=True)
        sys.exit(1)
    for warning in warnings:
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


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--rules", "rules_dir", default=DEFAULT_RULES, show_default=True,
              help="Rules for scenarios that do not name their own.")
@click.option("--coverage", is_flag=True, help="List the targets, clock conditions and Rules that no scenario fired, with file:line.")
def test_command(paths, rules_dir, coverage):
    """Run scenario files (default: fixtures/scenarios); exit 1 on any failure."""
    from engine.eval.compiler import RULESET, compile_ruleset, describe
    from engine.scenarios import RuleSetCache, find_scenarios, run_file

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
            click.echo(f"coverage of {root}: {len(never)} conditions never matched (targets, clock conditions and Rules no scenario exercised)" + (":" if never else ""))
            for name in never:
                click.echo(f"  {describe(ruleset, name)}")
    sys.exit(1 if failed else 0)


@click.command()
@click.argument("fact")
@click.option("--rules", "rules_dir", default=DEFAULT_RULES, show_default=True, help="The rules directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def explain(fact, rules_dir, as_json):
    """Which clocks FACT moves, and for each other target of its service the first condition
    that failed. FACT is a fact as JSON, a file holding one, or - for standard input."""
    import json

    from engine.lang.explain import explain as explain_fact

    text = sys.stdin.read() if fact == "-" else Path(fact).read_text() if Path(fact).is_file() else fact
    try:
        loaded = json.loads(text)
    except ValueError as err:
        click.echo(f"not a fact as JSON: {err}", err=True)
        sys.exit(2)
    try:
        ruleset = load_rules(rules_dir)
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(2)
    answer = explain_fact(ruleset, loaded)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(f"fact {answer['fact']} ({loaded.get('type')}, {loaded.get('subject')}) on service {answer['service']}")
    if answer.get("reason"):
        click.echo(f"  affects nothing: {answer['reason']}")
    for item in answer["affected"]:
        click.echo(f"  {item['target']}: {item['effect']}")
    for item in answer["not_affected"]:
        click.echo(f"  {item['target']}: not affected: {item['reason']}")
