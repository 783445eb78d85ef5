"""Facts read from files for ``slm import facts``: JSON lines, or CSV through a column map,
each fact remembering its file and line, all of them put in event-time order.

Only what the files themselves can be wrong about is checked here (a line that is no JSON
object, a row whose time is no RFC 3339 instant): the server judges the rest, as for any
posted fact.
"""
from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas.values import parse_instant

FIELDS = ("id", "source", "type", "time", "subject", "service")


class FactFileError(ValueError):
    """A file that cannot be read as facts; the message names file:line."""


@dataclass(frozen=True)
class Placed:
    """One fact and where it was written."""

    fact: dict
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


Translate = Callable[[object], tuple[list[dict], list[str]]]     # a payload -> its facts, and why not more


def read_facts(paths: list[str], columns: dict[str, str], values: dict[str, str],
               translate: Translate | None = None, unmapped: list[str] | None = None) -> list[Placed]:
    """Every fact of ``paths`` in event-time order (stable: the files' order for equal times).

    CSV files (``*.csv``) are read through ``columns`` (fact field or ``data.NAME`` ->
    column header; a header named as a field, or ``data.NAME``, needs no entry); ``values``
    sets a field for every fact of every file that does not give it (``source=jira/import``).
    With ``translate`` (a webhook mapping), each JSON line is a tool's payload and becomes
    the facts the mapping makes of it; a line that makes none is named in ``unmapped``."""
    placed: list[Placed] = []
    for path in paths:
        if translate is not None:
            if path.endswith(".csv"):
                raise FactFileError(f"{path}: a mapping reads webhook payloads as JSON lines, not CSV")
            for item in _json_lines(Path(path), columns):
                facts, reasons = translate(item.fact)
                placed.extend(Placed(fact, item.file, item.line) for fact in facts)
                if not facts and unmapped is not None:
                    unmapped.append(f"{item.where}: no fact: {reasons[0] if reasons else 'the mapping makes none'}")
            continue
        reader = _csv if path.endswith(".csv") else _json_lines
        placed.extend(reader(Path(path), columns))
    problems = []
    keyed = []
    for item in placed:
        for field, value in values.items():
            _set(item.fact, field, value, overwrite=False)
        try:
            keyed.append((parse_instant(item.fact.get("time")), item))
        except ValueError as err:
            problems.append(f"{item.where}: time: {err}")
    if problems:
        raise FactFileError("\n".join(problems[:20]) + (f"\n… and {len(problems) - 20} more"
                                                        if len(problems) > 20 else ""))
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]


class Digest:
    """What an import state file remembers of the facts posted: a hash of the facts in
    their order, extended as batches are posted."""

    def __init__(self, placed: Sequence[Placed] = ()):
        self._hash = hashlib.sha256()
        self.add(placed)

    def add(self, placed: Sequence[Placed]) -> None:
        for item in placed:
            self._hash.update(json.dumps(item.fact, sort_keys=True).encode() + b"\n")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _json_lines(path: Path, columns: dict[str, str]) -> list[Placed]:
    out = []
    for number, line in enumerate(_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fact = json.loads(line)
        except ValueError as err:
            raise FactFileError(f"{path}:{number}: not JSON: {err}") from None
        if not isinstance(fact, dict):
            raise FactFileError(f"{path}:{number}: a line holds one fact, a JSON object")
        out.append(Placed(fact, str(path), number))
    return out


def _csv(path: Path, columns: dict[str, str]) -> list[Placed]:
    rows = csv.DictReader(_text(path).splitlines())
    headers = rows.fieldnames or []
    wanted = {**{f: f for f in FIELDS if f in headers}, **{h: h for h in headers if h.startswith("data.")},
              **columns}
    missing = sorted({column for column in wanted.values() if column not in headers})
    if missing:
        raise FactFileError(f"{path}:1: no column {', '.join(map(repr, missing))} (columns: {', '.join(headers)})")
    out = []
    for row in rows:
        fact: dict = {}
        for field, column in wanted.items():
            cell = row.get(column)
            if cell not in (None, ""):
                _set(fact, field, cell, overwrite=True)
        out.append(Placed(fact, str(path), rows.line_num))
    return out


def _set(fact: dict, field: str, value: str, overwrite: bool) -> None:
    if field.startswith("data."):
        data = fact.setdefault("data", {})
        if isinstance(data, dict) and (overwrite or field[5:] not in data):
            data[field[5:]] = value
    elif overwrite or field not in fact:
        fact[field] = value


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise FactFileError(f"{path}: cannot read: {err}") from None
