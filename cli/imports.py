"""``slm import facts FILE…``: bring a tool's history in, through the running service's API.

The facts of every file are put in event-time order and posted in batches to
``POST /v1/facts``, so they are checked, judged for lateness and evaluated exactly as live
facts are: each batch in event-time order after the one before, so no fact of the import is
late for another. A repeated ``(source, id)`` is a duplicate, so running the same import
again stores nothing twice; with ``--state`` it also skips the facts confirmed before,
while they are still the same. A refused batch stops the import, naming each refused fact
by file:line.
"""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import click

from schemas.limits import MAX_BATCH

from .common import rules_option
from .factfiles import FIELDS, Digest, FactFileError, Placed, read_facts

RETRIES = 3               # a connection error or a 503 (the server not ready) is asked again so often


@click.group("import")
def import_group():
    """Bring history in from files."""


def _pairs(option: str, items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field or (field not in FIELDS and not (field.startswith("data.") and len(field) > 5)):
            raise click.BadParameter(f"{item!r}: expected FIELD=…, FIELD one of {', '.join(FIELDS)} or data.NAME",
                                     param_hint=option)
        out[field] = value
    return out


@import_group.command("facts")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--url", envvar="SLM_URL", show_envvar=True, default="http://127.0.0.1:8080", show_default=True,
              help="The slm service to post to.")
@click.option("--token", envvar="SLM_TOKEN", show_envvar=True, required=True, help="A monitor token.")
@click.option("--column", "columns", multiple=True, metavar="FIELD=HEADER",
              help="CSV: the column a fact field (or data.NAME) is read from; a column named as the field "
                   "needs none. Repeat for each.")
@click.option("--value", "values", multiple=True, metavar="FIELD=VALUE",
              help="A field every fact that lacks it gets (source=jira/import). Repeat for each.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, MAX_BATCH),
              help="Facts per request.")
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="Remember here how far the import got; run again with the same files to go on from there.")
@click.option("--mapping", default=None, metavar="NAME",
              help="Each JSON line is a tool's webhook payload: import the facts the rules' mapping NAME makes of "
                   "it (docs/RULES.md, \"Webhook mappings\"); no signature is asked for.")
@rules_option(help="The rules whose --mapping is used.")
def import_facts(files, url, token, columns, values, batch, state_path, mapping, rules_dir):
    """Post the facts of FILE… (JSON lines, one fact per line; or *.csv with --column; or, with
    --mapping, a tool's webhook payloads) in event-time order, with a progress bar.
    Resumable and idempotent by (source, id)."""
    unmapped: list[str] = []
    try:
        placed = read_facts(list(files), _pairs("--column", columns), _pairs("--value", values),
                            _translator(mapping, rules_dir) if mapping else None, unmapped)
    except FactFileError as err:
        click.echo(f"Error: {err}\nnothing was posted", err=True)
        sys.exit(1)
    for line in unmapped[:10]:
        click.echo(line, err=True)
    if len(unmapped) > 10:
        click.echo(f"… and {len(unmapped) - 10} more payloads that make no fact", err=True)
    done = _resume_from(state_path, placed)
    posted = Digest(placed[:done])
    if done:
        click.echo(f"going on after {done} facts posted before (state {state_path})", err=True)
    import requests

    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}"})
    accepted = duplicates = 0
    with click.progressbar(length=len(placed), label="importing facts", file=sys.stderr) as bar:
        bar.update(done)
        for start in range(done, len(placed), batch):
            chunk = placed[start:start + batch]
            answer = _post(session, url.rstrip("/") + "/v1/facts", chunk)
            accepted += answer["accepted"]
            duplicates += answer["duplicates"]
            posted.add(chunk)
            _remember(state_path, posted, start + len(chunk))
            bar.update(len(chunk))
    click.echo(f"{len(placed)} facts in event-time order: {accepted} stored, {duplicates} stored before"
               + (f", {done} skipped as posted by an earlier run" if done else "")
               + (f"; {len(unmapped)} payloads made no fact" if mapping else ""))


def _translator(name: str, rules_dir: str):
    """The rules' mapping ``name`` as a function: payload -> (facts, reasons)."""
    from engine.lang.errors import RuleSetError
    from engine.lang.loader import load_rules
    from engine.webhooks.translate import translate

    try:
        ruleset = load_rules(rules_dir)
    except RuleSetError as err:
        raise click.ClickException(err.report()) from None
    found = ruleset.mappings.get(name)
    if found is None:
        raise click.BadParameter(f"no mapping {name!r} in {rules_dir} (mappings: "
                                 f"{', '.join(sorted(ruleset.mappings)) or 'none'})", param_hint="--mapping")

    def run(payload: object) -> tuple[list[dict], list[str]]:
        result = translate(found, payload)
        return result.facts, result.reasons
    return run


def _post(session, url: str, chunk: list[Placed]) -> dict:
    import requests

    for attempt in range(RETRIES + 1):
        try:
            response = session.post(url, json=[item.fact for item in chunk], timeout=300)
        except requests.RequestException as err:
            problem = f"cannot reach {url}: {err}"
        else:
            if response.status_code == 200:
                return response.json()
            if response.status_code != 503:
                _refused(response, chunk)
            problem = f"{url} answered 503: {response.text[:200]}"
        if attempt < RETRIES:
            # an event's timed wait, not time.sleep: as everywhere in slm, so that it also
            # waits under libfaketime, whose sleep fails with EINVAL (tests/conftest.py)
            threading.Event().wait(2 ** attempt)
    click.echo(f"\nError: {problem}; run the same import again to go on", err=True)
    sys.exit(1)


def _refused(response, chunk: list[Placed]) -> None:
    """The batch was refused: say which facts, by file:line, and stop."""
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    lines = [f"\nError: {response.status_code} {body.get('title', '')}: {body.get('detail') or body.get('message')}"]
    for field, why in sorted((body.get("errors") or {}).items()):
        index, _, name = field.partition("].") if field.startswith("[") else ("[0", "", field)
        position = int(index[1:]) if index[1:].isdigit() else 0
        where = chunk[position].where if position < len(chunk) else "?"
        lines.append(f"{where}: {name}: {' '.join(why) if isinstance(why, list) else why}")
    lines.append("nothing of this batch was stored; fix the file and run the same import again to go on")
    click.echo("\n".join(lines), err=True)
    sys.exit(1)


def _resume_from(state_path: str | None, placed: list[Placed]) -> int:
    """How many facts, from the first in event-time order, an earlier run posted: those
    are skipped if they are still the same facts (a later line fixed after a refusal keeps
    them; anything else starts over, where every repeat is a duplicate anyway)."""
    if not state_path or not Path(state_path).is_file():
        return 0
    try:
        state = json.loads(Path(state_path).read_text())
        posted = int(state["posted"])
    except (ValueError, KeyError, TypeError):
        return 0
    same = 0 < posted <= len(placed) and Digest(placed[:posted]).hexdigest() == state.get("digest")
    return posted if same else 0


def _remember(state_path: str | None, posted: Digest, count: int) -> None:
    if state_path:
        Path(state_path).write_text(json.dumps({"digest": posted.hexdigest(), "posted": count}) + "\n")


@import_group.command("openslo")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", "out_dir", type=click.Path(file_okay=False),
              help="Write one rule file per service into this directory (made if missing) instead of to "
                   "standard output.")
def openslo(files, out_dir):
    """Turn OpenSLO v1 documents (Service, SLI, SLO, AlertPolicy, AlertCondition) into rule
    files, one per service, and list on standard error whatever could not be mapped
    (docs/RULES.md, "OpenSLO"). Check the result with slm check."""
    from engine.lang.openslo import import_openslo

    texts = {}
    for name in files:
        try:
            texts[name] = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise click.ClickException(f"{name}: cannot be read: {err}") from None
    imported = import_openslo(texts)
    for where, what in imported.unmapped:
        click.echo(f"not mapped: {where}: {what}", err=True)
    if out_dir:
        target = Path(out_dir)
        target.mkdir(parents=True, exist_ok=True)
        for name, text in imported.files.items():
            (target / name).write_text(text, encoding="utf-8")
            click.echo(f"wrote {target / name}", err=True)
    else:
        click.echo("---\n".join(imported.files.values()), nl=False)
