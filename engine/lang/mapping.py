"""``kind: Mapping``: a tool's webhook turned into facts (docs/RULES.md, "Webhook mappings").

Loaded with the rule set like every other kind: each JMESPath expression is compiled once
here, and everything a mapping names is checked at its file:line:column (an expression
that does not parse, a service or fact type the rules do not define, a time format that
cannot be read), so a mapping that loads can only fail on what a payload holds.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from engine.lang.errors import Problem
from engine.lang.model import RuleSet
from engine.lang.spelling import by_likeness
from engine.lang.yamlsource import Document, Path
from schemas.facts import TYPE_PATTERN

TIME_FORMATS = ("rfc3339", "iso8601", "epoch_s", "epoch_ms", "epoch_ns")
RESERVED = ("alertmanager",)            # POST /v1/ingest/alertmanager is served by slm itself
FIELDS = ("id", "type", "time", "subject", "service")
DEFAULT_TOLERANCE = timedelta(minutes=5)
ENGINE_TYPES = ("decision.", "clock.")


@dataclass(frozen=True)
class MappedValue:
    """Where one field of a fact is found: a compiled path or a constant, then a map."""

    place: str                         # how reasons name it: ``facts[0].type``
    text: str | None                   # the path as written
    path: ParsedResult | None
    value: Any = None
    map: dict[str, Any] | None = None
    default: Any = None
    has_default: bool = False
    format: str = "rfc3339"            # time only
    timezone: str = "UTC"


@dataclass(frozen=True)
class MappedFact:
    """One fact a payload may become."""

    index: int
    when: ParsedResult | None
    when_text: str | None
    each: ParsedResult | None
    each_text: str | None
    fields: dict[str, MappedValue]     # id, type, time, service and, if written, subject
    data: dict[str, MappedValue]


@dataclass(frozen=True)
class Signature:
    scheme: str                        # github | pagerduty | zendesk | shared
    secret_env: str
    header: str | None
    tolerance: timedelta


@dataclass(frozen=True)
class Mapping:
    id: str
    source: str
    signature: Signature | None
    facts: list[MappedFact]
    file: str
    line: int
    description: str = ""


def build_mappings(documents: list[tuple[Document, dict[str, Any]]], ruleset: RuleSet,
                   problems: list[Problem]) -> dict[str, Mapping]:
    """Every Mapping document compiled and checked against ``ruleset``'s services and fact types."""
    mappings = {}
    for doc, loaded in documents:
        found: list[Problem] = []
        mapping = _build(doc, loaded, found)
        found += list(_check(doc, loaded, ruleset))
        problems.extend(found)
        mappings[mapping.id] = mapping
    return mappings


def _build(doc: Document, loaded: dict[str, Any], problems: list[Problem]) -> Mapping:
    if loaded["id"] in RESERVED:
        problems.append(doc.problem(("id",), f"id '{loaded['id']}' is taken: POST /v1/ingest/{loaded['id']} "
                                             "is served by slm itself", "duplicate"))
    facts = []
    for index, spec in enumerate(loaded["facts"]):
        base: Path = ("facts", index)
        values = {name: _value(doc, base + (name,), spec[name], f"facts[{index}].{name}", problems)
                  for name in FIELDS if name in spec}
        data = {key: _value(doc, base + ("data", key), item, f"facts[{index}].data.{key}", problems)
                for key, item in spec["data"].items()}
        facts.append(MappedFact(index, _compile(doc, base + ("when",), spec.get("when"), problems),
                                spec.get("when"), _compile(doc, base + ("each",), spec.get("each"), problems),
                                spec.get("each"), values, data))
    signature = None
    if "signature" in loaded:
        sig = loaded["signature"]
        header = sig.get("header") or ("X-Hub-Signature-256" if sig["scheme"] == "github" else None)
        signature = Signature(sig["scheme"], sig["secret_env"], header, sig.get("tolerance") or DEFAULT_TOLERANCE)
    return Mapping(loaded["id"], loaded["source"], signature, facts, doc.file, doc.line,
                   loaded.get("description", ""))


def _value(doc: Document, path: Path, spec: dict[str, Any], place: str, problems: list[Problem]) -> MappedValue:
    text = spec.get("path")
    fmt = spec.get("format", "rfc3339")
    zone = spec.get("timezone", "UTC")
    if fmt not in TIME_FORMATS and "%" not in fmt:
        problems.append(doc.problem(path + ("format",), f"format: {fmt!r} is no time format (expected one of: "
                                                        f"{', '.join(TIME_FORMATS)}, or a strptime pattern "
                                                        "such as '%Y-%m-%d %H:%M:%S')"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(doc.problem(path + ("timezone",), f"timezone: unknown time zone {zone!r} "
                                                          "(examples: Europe/London, UTC)"))
    return MappedValue(place, text, _compile(doc, path + ("path",), text, problems), spec.get("value"),
                       {str(k): v for k, v in spec["map"].items()} if "map" in spec else None,
                       spec.get("default"), "default" in spec, fmt, zone)


def _compile(doc: Document, path: Path, text: str | None, problems: list[Problem]) -> ParsedResult | None:
    """A JMESPath expression compiled, or a problem placed at the expression."""
    if text is None:
        return None
    try:
        return jmespath.compile(text)
    except JMESPathError as err:
        position = getattr(err, "lex_position", None)
        at = f" at character {position + 1}" if isinstance(position, int) else ""
        message = str(err).splitlines()[0].rstrip(":")
        for prefix in ("Invalid jmespath expression: ", "Bad jmespath expression: "):
            message = message.removeprefix(prefix)
        message = message.split(": Parse error at column")[0]
        problems.append(doc.problem(path, f"{_named(path)}: not a JMESPath expression: {message}{at} of {text!r}"))
        return None


def _named(path: Path) -> str:
    """A field as a reader names it: ``id`` for ``(…, id, path)``, ``data.priority``."""
    names = [str(p) for p in path if not isinstance(p, int) and p not in ("facts", "path")]
    return ".".join(names[-2:]) if len(names) > 1 and names[-2] == "data" else names[-1]


def _constants(spec: dict[str, Any]) -> Iterator[tuple[Path, Any]]:
    """Every value a field may take that is written in the mapping: its constant, its map's
    values and its default, each with where it is written (relative to the field)."""
    if "value" in spec:
        yield ("value",), spec["value"]
    for key, item in (spec.get("map") or {}).items():
        yield ("map", key), item
    if "default" in spec:
        yield ("default",), spec["default"]


def _check(doc: Document, loaded: dict[str, Any], ruleset: RuleSet) -> Iterator[Problem]:
    """The services and fact types written in the mapping exist in the rules."""
    for index, spec in enumerate(loaded["facts"]):
        base: Path = ("facts", index)
        for where, value in _constants(spec["service"]):
            if not isinstance(value, str) or value not in ruleset.services:
                known = ", ".join(by_likeness(str(value), ruleset.services)) or "none"
                yield doc.problem(base + ("service",) + where, f"service: {value!r} is not a service of the rules "
                                                               f"(known: {known})", "unknown-reference")
        for where, value in _constants(spec["type"]):
            problem = _type_problem(value, ruleset)
            if problem:
                yield doc.problem(base + ("type",) + where, f"type: {problem}", "unknown-reference")
        yield from _data_values(doc, base, spec, ruleset)


def _data_values(doc: Document, base: Path, spec: dict[str, Any], ruleset: RuleSet) -> Iterator[Problem]:
    """A value written for a ``data`` field (constant, map value, default) that the catalogue
    would refuse for every type the fact may have: ``P5`` where priority is one of P1-P4."""
    catalogue = ruleset.catalogue
    types = [value for _, value in _constants(spec["type"]) if isinstance(value, str)]
    if catalogue is None or not types or any(t not in catalogue.types for t in types):
        return          # a type known only from the payload, or one already reported
    for key, field_spec in spec["data"].items():
        declared = [catalogue.types[t].fields[key] for t in types if key in catalogue.types[t].fields]
        if not declared:
            continue
        for where, value in _constants(field_spec):
            problems = [f.problem(value) for f in declared]
            if all(problems):
                yield doc.problem(base + ("data", key) + where, f"data.{key}: {problems[0]} (the catalogue's "
                                                                f"{types[0]}.{key})", "unknown-reference")


def _type_problem(value: object, ruleset: RuleSet) -> str | None:
    if not isinstance(value, str) or not TYPE_PATTERN.fullmatch(value):
        return f"{value!r} is not a dotted fact type (example: incident.opened)"
    if value.startswith(ENGINE_TYPES):
        return f"'{value}' is derived by the engine; a tool cannot post it"
    catalogue = ruleset.catalogue
    if catalogue is not None and catalogue.undeclared == "reject" and value not in catalogue.types:
        guess = catalogue.nearest_type(value)
        hint = f" (did you mean {guess}?)" if guess else ""
        return f"'{value}' is not a fact type the catalogue declares{hint}"
    return None
