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

from .common import DEFAULT_RULES, RULES_ENV, partitions_option, rules_option


@click.command()
@click.argument("directory", default=DEFAULT_RULES, envvar=RULES_ENV, type=click.Path(file_okay=False))
@click.option("--strict", is_flag=True, help="Treat warnings (lint, RACI, validity) as errors: exit 1.")
@partitions_option(help="Also check this partition map against the rules and print where each Rule runs "
                        "(local, or the global partition).")
def check(directory, strict, partitions_file):
    """Validate a rules directory; print every error and warning with file:line:column.
    With --partitions, also check the map and print each Rule's partition class."""
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
    if ruleset.mappings:
        click.echo(f"  mappings     {len(ruleset.mappings):>3}  {', '.join(sorted(ruleset.mappings))}")
    if ruleset.inhibits:
        click.echo(f"  inhibits     {len(ruleset.inhibits):>3}  {', '.join(sorted(ruleset.inhibits))}")
    if partitions_file is not None:
        _check_partitions(ruleset, partitions_file)


def _check_partitions(ruleset, path: str) -> None:
    """The map's partitions and each Rule's class (docs/RULES.md, "Partitions"); the map's
    errors, and the cross-partition Rules the global partition cannot run: exit 1."""
    from engine.lang.partitions import check_against, classify_rules, global_kinds, load_partition_map

    try:
        pmap = load_partition_map(path)
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(1)
    click.echo(f"  partitions   {len(pmap.names):>3}  {', '.join(pmap.names)}  "
               f"(map {path}, digest {pmap.digest[:12]}…)")
    classes = classify_rules(ruleset, pmap)
    scopes = [found.scope for found in classes.values()]
    click.echo(f"  rule classes {len(classes):>3}  local {scopes.count('local')}, global {scopes.count('global')}")
    width = max((len(name) for name in classes), default=0)
    for name, found in sorted(classes.items()):
        click.echo(f"    {name:<{width}}  {found.scope:<6}  {found.reason}")
    fed = global_kinds(classes, ruleset)
    if fed:
        click.echo(f"  the global partition is fed the decisions: {', '.join(sorted(fed))}")
    problems = check_against(pmap, ruleset)
    if problems:
        click.echo(RuleSetError(problems).report(), err=True)
        sys.exit(1)


@click.command("lint", hidden=True, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def lint():
    """There is no separate lint: say where it is (people coming from other tools try it)."""
    click.echo("slm lint: the lint is part of `slm check DIR`, which prints its warnings; "
               "`slm check --strict DIR` fails (exit 1) on any of them.", err=True)
    sys.exit(2)


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@rules_option(help="Rules for scenarios that do not name their own.")
@click.option("--coverage", is_flag=True,
              help="List the targets, clock conditions and Rules that no scenario fired, with file:line.")
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
            click.echo(f"coverage of {root}: {len(never)} conditions never matched "
                       "(targets, clock conditions and Rules no scenario exercised)" + (":" if never else ""))
            for name in never:
                click.echo(f"  {describe(ruleset, name)}")
    sys.exit(1 if failed else 0)


@click.command()
@click.argument("args", nargs=-1, metavar="FACT | SOURCE ID")
@rules_option(help="The rules directory (with --db: only for a store that records no rule set).")
@click.option("--db", "db_url", help="Explain the stored fact SOURCE ID of this database "
                                     "(sqlite:///path.db or postgresql://…) as it stood when the fact arrived.")
@click.option("--mapping", "mapping", metavar="NAME",
              help="FACT is a tool's webhook payload: show the facts the rules' mapping NAME makes of it, "
                   "how each field was found, and why each fact it does not make is not.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def explain(args, rules_dir, db_url, as_json, mapping):
    """Which clocks a fact moves, and for each other target of its service the first condition
    that failed. FACT is a fact as JSON, a file holding one, or - for standard input; with
    --db, SOURCE ID name a stored fact, explained under the rules in force and with the
    clocks running when it was applied, with the decisions it caused; with --mapping NAME,
    FACT is a webhook payload, shown as the facts it becomes and why."""
    import json

    if mapping is not None:
        if db_url is not None or len(args) != 1:
            raise click.UsageError("with --mapping, give one payload (JSON, a file or -) and no --db")
        answer = _explain_mapping(mapping, args[0], rules_dir)
        click.echo(json.dumps(answer, indent=2) if as_json else _mapping_text(answer))
        return
    if db_url is not None:
        if len(args) != 2:
            raise click.UsageError("with --db, give the stored fact as SOURCE ID (two arguments)")
        answer = _explain_stored(db_url, rules_dir, *args)
        loaded = answer
    else:
        if len(args) != 1:
            raise click.UsageError("give one FACT (JSON, a file or -), or --db URL SOURCE ID")
        answer, loaded = _explain_json(args[0], rules_dir)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    stored = f", stored as #{answer['seq']} from {answer['source']}" if "seq" in answer else ""
    click.echo(f"fact {answer['fact']} ({loaded.get('type')}, {loaded.get('subject')}) on service "
               f"{answer['service']}{stored}")
    if "ruleset" in answer:
        click.echo(f"  under rule set {answer['ruleset'][:19]}…, after replaying {answer['replayed']} stored "
                   + ("fact" if answer["replayed"] == 1 else "facts"))
    if answer.get("reason"):
        click.echo(f"  affects nothing: {answer['reason']}")
    for item in answer["affected"]:
        click.echo(f"  {item['target']}: {item['effect']}")
    for item in answer["not_affected"]:
        click.echo(f"  {item['target']}: not affected: {item['reason']}")
    if answer.get("clocks"):
        click.echo(f"clocks of {answer['subject']}:")
        for clock in answer["clocks"]:
            click.echo(f"  {clock['clock']}: {clock['before'] or 'none'} -> {clock['after']}")
    if "decisions" in answer:
        click.echo("decided:" if answer["decisions"] else "decided: nothing")
        for d in answer["decisions"]:
            level = f" {d['level']}" if d.get("level") else ""
            click.echo(f"  {d['kind']}{level} {d.get('target', '')} {d.get('subject', '')} at {d['at']}")


def _explain_mapping(name: str, text_or_path: str, rules_dir: str) -> dict:
    from engine.webhooks.explain import UnknownMapping, explain_payload

    payload, ruleset = _read_json(text_or_path, "a webhook payload as JSON"), _load_or_exit(rules_dir)
    try:
        return explain_payload(ruleset, name, payload)
    except UnknownMapping as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(2)


def _mapping_text(answer: dict) -> str:
    count = len(answer["facts"])
    lines = [f"mapping {answer['mapping']} (source {answer['source']}): "
             f"{count} fact{'' if count == 1 else 's'}" + ("" if count else ", so POST /v1/ingest answers 200 "
                                                                         "and stores nothing")]
    for entry in answer["facts"]:
        fact = entry["fact"]
        lines.append(f"fact {fact['id']} ({fact['type']}, {fact.get('subject')}) on service {fact['service']} "
                     f"at {fact['time']}, made by {entry['made_by']}:")
        lines += [f"  {name}: {how}" for name, how in entry["fields"].items()]
        if entry["refused"]:
            lines += [f"  refused by the intake: {field}: {' '.join(why)}" for field, why in entry["refused"].items()]
            continue
        lines += [f"  {item['target']}: {item['effect']}" for item in entry["affected"]]
        lines += [f"  {item['target']}: not affected: {item['reason']}" for item in entry["not_affected"]]
    lines += [f"not made: {reason}" for reason in answer["reasons"]]
    return "\n".join(lines)


def _read_json(text_or_path: str, what: str):
    import json

    path = Path(text_or_path)
    text = sys.stdin.read() if text_or_path == "-" else path.read_text() if path.is_file() else text_or_path
    try:
        return json.loads(text)
    except ValueError as err:
        click.echo(f"not {what}: {err}", err=True)
        sys.exit(2)


def _load_or_exit(rules_dir: str):
    try:
        return load_rules(rules_dir)
    except RuleSetError as err:
        click.echo(err.report(), err=True)
        sys.exit(2)


def _explain_json(text_or_path: str, rules_dir: str) -> tuple[dict, dict]:
    import json

    from engine.lang.explain import explain as explain_fact

    path = Path(text_or_path)
    text = sys.stdin.read() if text_or_path == "-" else path.read_text() if path.is_file() else text_or_path
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
    return explain_fact(ruleset, loaded), loaded


def _explain_stored(db_url: str, rules_dir: str, source: str, fact_id: str) -> dict:
    from engine.service.explain import AmbiguousFact, UnknownFact, explain_stored
    from engine.service.live import RETAIN

    from .common import open_store

    with open_store(db_url) as store:
        ruleset = None
        if not store.cutovers():
            try:
                ruleset = load_rules(rules_dir)
            except RuleSetError as err:
                click.echo(err.report(), err=True)
                sys.exit(2)
        try:
            return explain_stored(store, fact_id, source, ruleset=ruleset, retain=RETAIN)
        except (UnknownFact, AmbiguousFact) as err:
            click.echo(f"Error: {err}", err=True)
            sys.exit(1)
