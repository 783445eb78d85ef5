"""The fact catalogue (``kind: Facts``, docs/RULES.md "The fact catalogue").

The catalogue names the fact types a deployment posts and the fields of their ``data``.
It is optional: without one every type and field is accepted, as before. With one, the
rules are checked against it when they load (engine/lang/catalogue_check.py) and each
posted fact is checked against it before anything is written (:func:`fact_problems`):
a fact of a declared type with a field of the wrong kind, or a required field missing,
is refused naming the field; a fact of an undeclared type is refused too, unless the
catalogue says ``undeclared: accept``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.lang.errors import Problem
from engine.lang.model import Origin, RuleSet
from engine.lang.spelling import nearest
from engine.lang.where import MISSING, field_at
from engine.lang.yamlsource import Document
from schemas.values import parse_rfc3339

# derived by the engine, or (escalation.acknowledged) made by slm itself: never declared
ENGINE_TYPES = ("decision.", "clock.", "escalation.acknowledged")


@dataclass(frozen=True)
class FactField:
    """One declared field of ``data``; ``name`` may be a dotted path (``labels.host``)."""

    name: str
    type: str                       # string, number, integer, boolean, time, enum, object, list
    values: tuple[object, ...] = ()     # an enum's values, as written
    required: bool = False
    description: str = ""
    origin: Origin | None = None

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not of this field's kind (None if it is)."""
        if self.type == "enum":
            if any(v == value and isinstance(v, bool) == isinstance(value, bool) for v in self.values):
                return None
            return f"{value!r} is not one of: {', '.join(map(str, self.values))}"
        if _KINDS[self.type](value):
            return None
        return f"expected {_WORDS[self.type]}, got {_describe(value)}"

    def words(self) -> str:
        """The field's type as a reader says it: ``one of P1, P2`` or ``a number``."""
        if self.type == "enum":
            return "one of " + ", ".join(map(str, self.values))
        return _WORDS[self.type]


@dataclass
class FactType:
    name: str
    description: str
    fields: dict[str, FactField]
    origin: Origin

    def has_field(self, path: str) -> bool:
        """A ``where`` path names this type's data when it is declared, or lies inside a
        declared ``object`` field (whose inside the catalogue leaves open)."""
        if path in self.fields:
            return True
        parts = path.split(".")
        return any(self.fields.get(".".join(parts[:n])) is not None
                   and self.fields[".".join(parts[:n])].type == "object" for n in range(1, len(parts)))


@dataclass
class Catalogue:
    types: dict[str, FactType] = field(default_factory=dict)
    undeclared: str = "reject"      # what ingest does with a fact of an undeclared type

    def nearest_type(self, name: str) -> str | None:
        return nearest(name, self.types)


def refusals(ruleset: RuleSet, fact: Mapping[str, Any]) -> dict[str, list[str]]:
    """What a ruleset refuses in one (already schema-valid) fact, by field path: a service
    it does not define, and what its catalogue refuses. The API answers these with 422 and
    ``slm test`` fails a scenario on them, so a typo never passes as a fact that does nothing."""
    problems: dict[str, list[str]] = {}
    service = fact.get("service")
    if service is not None and service not in ruleset.services:
        known = ", ".join(sorted(ruleset.services)) or "none"
        problems["service"] = [f"unknown service {service!r} (services: {known})"]
    problems.update(fact_problems(ruleset.catalogue, fact))
    return problems


def fact_problems(catalogue: Catalogue | None, fact: Mapping[str, Any]) -> dict[str, list[str]]:
    """What the catalogue refuses in one (already schema-valid) fact, by field path."""
    if catalogue is None:
        return {}
    kind = fact.get("type", "")
    declared = catalogue.types.get(kind)
    if declared is None:
        if catalogue.undeclared == "accept" or kind.startswith(ENGINE_TYPES):
            return {}
        guess = catalogue.nearest_type(kind)
        hint = f"did you mean {guess!r}? " if guess else ""
        return {"type": [f"{kind!r} is not a fact type the catalogue declares ({hint}declared: "
                         f"{', '.join(sorted(catalogue.types))})"]}
    problems: dict[str, list[str]] = {}
    data = fact.get("data") or {}
    for spec in declared.fields.values():
        value = field_at(data, spec.name, MISSING)
        if value is MISSING or value is None:
            if spec.required:
                problems[f"data.{spec.name}"] = [f"required for {kind} facts ({spec.words()})"]
            continue
        problem = spec.problem(value)
        if problem:
            problems[f"data.{spec.name}"] = [f"{problem} (the catalogue's {kind}.{spec.name})"]
    return problems


def _is_time(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_rfc3339(value)
    except ValueError:
        return False
    return True


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime):
        return "a time"
    return type(value).__name__


_KINDS: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "boolean": lambda v: isinstance(v, bool),
    "time": _is_time,
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}
_WORDS = {
    "string": "a string", "number": "a number", "integer": "a whole number", "boolean": "true or false",
    "time": "an RFC 3339 time with an offset", "object": "an object", "list": "a list",
}


def build_catalogue(documents: list[tuple[Document, dict[str, Any]]], problems: list[Problem]) -> Catalogue | None:
    """The catalogue of every ``kind: Facts`` document (``[(Document, loaded)]``), or None
    when there is none. A type declared twice, or two documents that disagree on
    ``undeclared``, are problems placed where the second one is written."""
    if not documents:
        return None
    catalogue = Catalogue()
    chosen = None                    # (value, document) of the first explicit ``undeclared``
    for doc, loaded in documents:
        if "undeclared" in loaded:
            if chosen and chosen[0] != loaded["undeclared"]:
                line = chosen[1].place(("undeclared",))[0]
                problems.append(doc.problem(("undeclared",), f"undeclared: {loaded['undeclared']!r} contradicts "
                                            f"{chosen[0]!r} at {chosen[1].file}:{line}"))
            chosen = chosen or (loaded["undeclared"], doc)
        for name, spec in loaded["types"].items():
            if name in catalogue.types:
                first = catalogue.types[name].origin
                problems.append(doc.problem(("types", name), f"fact type '{name}' is already declared at "
                                            f"{first.file}:{first.line}", "duplicate", key=True))
                continue
            line, column = doc.place(("types", name), key=True)
            fields = {}
            for field_name, field_spec in spec["data"].items():
                at = doc.place(("types", name, "data", field_name), key=True)
                fields[field_name] = FactField(field_name, field_spec["type"], tuple(field_spec.get("values", ())),
                                               field_spec["required"], field_spec.get("description", ""),
                                               Origin(doc.file, *at))
            catalogue.types[name] = FactType(name, spec.get("description", ""), fields,
                                             Origin(doc.file, line, column))
    catalogue.undeclared = chosen[0] if chosen else "reject"
    return catalogue
