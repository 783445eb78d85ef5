"""``/openapi.json``: the API document of this deployment, made per rule set.

flask-smorest writes the document once from the routes and their marshmallow schemas,
with every constraint a field carries (formats, patterns, lengths, bounds; schemas/strings.py).
Some constraints come from the rules in force instead: the services, targets and decision
kinds a filter may name, and, where a catalogue declares fact types, the facts that may be
posted. A copy of the document with those written in as enums and one ``Fact`` schema per
declared type is made for each rule set, and made again when the rules in force change (a
reload, a cut-over another process made): what the server refuses is outside the document.
Its ``info.version`` says which rule set it describes: ``1.0.0+sha256.<12 hex digits>``.

The operations get ids and links (OpenAPI 3.0 §4.7.20): a fact posted leads to its
decisions, their traces and their notifications, a notification to its retry, so that a
client (or a stateful test) can follow the records from one answer to the next.
"""
from __future__ import annotations

import copy
import re
import threading
from typing import Any

from flask import Flask, current_app, json
from marshmallow import fields, validate

from engine.lang.catalogue import Catalogue, FactField, FactType
from engine.lang.model import RuleSet
from engine.service.reports import customers
from engine.service.vocabulary import Vocabulary
from schemas.facts import FACT_VALUE_REF, MAX_INTEGER, MAX_STRING, MIN_INTEGER
from schemas.strings import INSTANT, KNOWN, NO_NUL

from .context import current_service

API_VERSION = "1.0.0"
EXTENSION = "slm_document"

# Links between operations, by (operation, status): name -> (operation it leads to, its
# parameters as runtime expressions of the answer).
_FIRST_DECISION = "$response.body#/decisions/0/id"
_FACT_LINKS = {
    "decision": ("get_decision", {"decision_id": _FIRST_DECISION}),
    "trace": ("get_trace", {"decision_id": _FIRST_DECISION}),
    "notifications": ("list_notifications", {"decision": _FIRST_DECISION}),
    "explain": ("explain_fact", {"fact_id": "$response.body#/results/0/id",
                                 "source": "$response.body#/results/0/source"}),
}
LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("post_facts", "200"): _FACT_LINKS,
    ("post_facts", "202"): {"explain": _FACT_LINKS["explain"]},
    ("post_alertmanager", "200"): _FACT_LINKS,
    ("list_facts", "200"): {
        "explain": ("explain_fact", {"fact_id": "$response.body#/items/0/fact/id",
                                     "source": "$response.body#/items/0/fact/source"}),
        "decision": ("get_decision", {"decision_id": "$response.body#/items/0/outcome/0"})},
    ("list_decisions", "200"): {
        "decision": ("get_decision", {"decision_id": "$response.body#/items/0/id"}),
        "trace": ("get_trace", {"decision_id": "$response.body#/items/0/id"}),
        "notifications": ("list_notifications", {"decision": "$response.body#/items/0/id"})},
    ("get_decision", "200"): {
        "trace": ("get_trace", {"decision_id": "$response.body#/id"}),
        "notifications": ("list_notifications", {"decision": "$response.body#/id"})},
    ("list_notifications", "200"): {
        "retry": ("retry_notification", {"notification_id": "$response.body#/items/0/id"}),
        "decision": ("get_decision", {"decision_id": "$response.body#/items/0/decision"})},
    ("retry_notification", "200"): {
        "decision": ("get_decision", {"decision_id": "$response.body#/decision"})},
    ("get_rules", "200"): {"version": ("get_version", {"version": "$response.body#/version"})},
    ("request_waiver", "201"): {
        "approve": ("approve_waiver", {"waiver_id": "$response.body#/id"}),
        "waiver": ("get_waiver", {"waiver_id": "$response.body#/id"}),
        "revoke": ("revoke_waiver", {"waiver_id": "$response.body#/id"})},
    ("list_waivers", "200"): {"waiver": ("get_waiver", {"waiver_id": "$response.body#/items/0/id"})},
    ("request_restatement", "201"): {
        "approve": ("approve_restatement", {"restatement_id": "$response.body#/id"}),
        "restatement": ("get_restatement", {"restatement_id": "$response.body#/id"}),
        "revoke": ("revoke_restatement", {"restatement_id": "$response.body#/id"})},
    ("list_restatements", "200"): {"restatement": ("get_restatement",
                                                   {"restatement_id": "$response.body#/items/0/id"})},
    ("reload_rules", "200"): {"version": ("get_version", {"version": "$response.body#/version"})},
    ("list_versions", "200"): {"version": ("get_version", {"version": "$response.body#/items/0/version"})},
}

# A declared field of a fact type (engine/lang/catalogue.py) as JSON Schema: what its check accepts.
_KINDS: dict[str, dict[str, Any]] = {
    "string": {"type": "string", "maxLength": MAX_STRING, "pattern": NO_NUL},
    "number": {"type": "number"},
    "integer": {"type": "integer", "minimum": MIN_INTEGER, "maximum": MAX_INTEGER},
    "boolean": {"type": "boolean"},
    "time": {"type": "string", "format": "date-time", "pattern": INSTANT},
    "object": {"type": "object", "additionalProperties": FACT_VALUE_REF},
    "list": {"type": "array", "items": FACT_VALUE_REF},
}


def dict_lengths(converter: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """An apispec attribute function: apispec writes a ``Length`` on a mapping as
    ``minLength``/``maxLength``, which JSON Schema reads only on strings; for a mapping,
    ``minProperties``/``maxProperties`` say it."""
    if not isinstance(field, fields.Dict):
        return {}
    out: dict[str, Any] = {}
    for validator in field.validators:
        if isinstance(validator, validate.Length):
            ret.pop("minLength", None)
            ret.pop("maxLength", None)
            if validator.min is not None:
                out["minProperties"] = validator.min
            if validator.max is not None:
                out["maxProperties"] = validator.max
    return out


class Documents:
    """The document the routes make (``base``, with ids and links) and its copy for the
    rules in force, made again when they change."""

    def __init__(self, app: Flask, spec: dict[str, Any]):
        self.base = _with_links(spec, _operation_ids(app))
        self._made: tuple[tuple[str, Vocabulary], str] | None = None      # (what it describes, the JSON)
        self._lock = threading.Lock()

    def of(self, ruleset: RuleSet, vocabulary: Vocabulary) -> str:
        """The document for ``ruleset`` (and the names every rule set put in force defined), as JSON."""
        key = (ruleset.version, vocabulary)
        made = self._made
        if made is None or made[0] != key:
            with self._lock:
                made = self._made
                if made is None or made[0] != key:
                    document = for_rules(self.base, ruleset, vocabulary)
                    made = self._made = (key, json.dumps(document, indent=2, sort_keys=False))
        return made[1]


def serve(app: Flask, spec: dict[str, Any]) -> None:
    """Answer ``/openapi.json`` (flask-smorest's route) with the document of the rules in force."""
    app.extensions[EXTENSION] = Documents(app, spec)
    app.view_functions["api-docs.openapi_json"] = _openapi_json


def _openapi_json():
    service = current_service()
    text = current_app.extensions[EXTENSION].of(service.state.ruleset, service.store_reads.vocabulary())
    return current_app.response_class(text, mimetype="application/json")


def info_version(ruleset: RuleSet) -> str:
    """``info.version``: the API's version, and the rule set's as build metadata (SemVer §10)."""
    digest = ruleset.version.partition(":")[2] or ruleset.version
    return f"{API_VERSION}+sha256.{re.sub('[^0-9A-Za-z]', '', digest)[:12]}"


def for_rules(base: dict[str, Any], ruleset: RuleSet, vocabulary: Vocabulary) -> dict[str, Any]:
    """``base`` with what ``ruleset`` defines written in."""
    document = copy.deepcopy(base)
    info = document["info"]
    info["version"] = info_version(ruleset)
    info["description"] = (f"{info.get('description', '')}\n\nThis document describes the rules in force, rule set "
                           f"`{ruleset.version}`: the names they define, the facts their catalogue declares.").strip()
    names = {"services": vocabulary.services, "targets": vocabulary.targets, "kinds": vocabulary.kinds,
             "services-in-force": frozenset(ruleset.services), "customers-in-force": customers(ruleset),
             "targets-in-force": frozenset(ruleset.targets)}
    _name_enums(document, names)
    if ruleset.catalogue is not None and ruleset.catalogue.types:
        _fact_types(document["components"]["schemas"], ruleset.catalogue)
    return document


def _name_enums(node: Any, names: dict[str, frozenset[str]]) -> None:
    """Every schema marked with strings.KNOWN takes the names it refers to (and null if nullable)."""
    if isinstance(node, list):
        for item in node:
            _name_enums(item, names)
        return
    if not isinstance(node, dict):
        return
    if KNOWN in node:
        values: list[Any] = sorted(names[node.pop(KNOWN)])
        if node.get("nullable"):
            values.append(None)
        if values:
            node["enum"] = values
        else:                          # no such names: no value is taken
            node["not"] = {}
    for value in node.values():
        _name_enums(value, names)


def _fact_types(schemas: dict[str, Any], catalogue: Catalogue) -> None:
    """``Fact`` as one of a schema per declared type (``Fact.incident.opened``), each with
    its declared ``data`` fields; with ``undeclared: accept``, also any other type."""
    generic = schemas["Fact"]
    branches, mapping = [], {}
    for name, kind in sorted(catalogue.types.items()):
        ref = f"#/components/schemas/Fact.{name}"
        schemas[f"Fact.{name}"] = _declared(generic, kind)
        branches.append({"$ref": ref})
        mapping[name] = ref
    fact: dict[str, Any] = {"description": "A fact of a type the fact catalogue declares"}
    if catalogue.undeclared == "accept":
        other = copy.deepcopy(generic)
        other["properties"]["type"] = {**other["properties"]["type"], "not": {"enum": sorted(catalogue.types)}}
        schemas["Fact.undeclared"] = other
        branches.append({"$ref": "#/components/schemas/Fact.undeclared"})
        fact["description"] += ", or of another type (the catalogue says `undeclared: accept`)"
    else:
        fact["discriminator"] = {"propertyName": "type", "mapping": mapping}
    fact["oneOf"] = branches
    schemas["Fact"] = fact


def _declared(generic: dict[str, Any], kind: FactType) -> dict[str, Any]:
    schema = copy.deepcopy(generic)
    if kind.description:
        schema["description"] = kind.description
    schema["properties"]["type"] = {"type": "string", "enum": [kind.name]}
    data = schema["properties"]["data"]
    tree: dict[str, Any] = {"type": "object", "properties": {},
                            **{k: data[k] for k in ("additionalProperties", "maxProperties") if k in data}}
    for spec in kind.fields.values():
        _place(tree, spec.name.split("."), spec)
    if tree.get("required"):
        schema["required"] = sorted({*schema["required"], "data"})
    else:
        tree["nullable"] = True
    if not tree["properties"]:
        del tree["properties"]
    schema["properties"]["data"] = tree
    return schema


def _place(tree: dict[str, Any], path: list[str], spec: FactField) -> None:
    """``spec`` at its dotted ``path`` inside ``data``; an object on the way is required if it is."""
    head, rest = path[0], path[1:]
    properties = tree.setdefault("properties", {})
    if rest:
        inner = properties.setdefault(head, {"type": "object", "additionalProperties": FACT_VALUE_REF})
        _place(inner, rest, spec)
        if inner.get("required"):           # an object holding a required field must be there
            inner.pop("nullable", None)
        else:
            inner["nullable"] = True
    else:
        properties[head] = _field(spec)
    if spec.required:
        tree["required"] = sorted({*tree.get("required", []), head})


def _field(spec: FactField) -> dict[str, Any]:
    if spec.type == "enum":
        schema: dict[str, Any] = {"enum": list(spec.values)}
        if not spec.required:
            schema["enum"].append(None)
    else:
        schema = dict(_KINDS[spec.type])
    if not spec.required:
        schema["nullable"] = True                  # null counts as absent (engine/lang/catalogue.py)
    if spec.description:
        schema["description"] = spec.description
    return schema


def _operation_ids(app: Flask) -> dict[tuple[str, str], str]:
    """(path as the document writes it, method) -> the view's name, unique across the API."""
    ids = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            ids[(path, method.lower())] = rule.endpoint.rpartition(".")[2]
    return ids


def _with_links(spec: dict[str, Any], ids: dict[tuple[str, str], str]) -> dict[str, Any]:
    operations = {}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                operation["operationId"] = ids[(path, method)]
                operations[operation["operationId"]] = operation
    for (source, status), links in LINKS.items():
        response = operations[source]["responses"][status]
        response["links"] = {name: {"operationId": target, "parameters": dict(parameters)}
                             for name, (target, parameters) in links.items()}
    return spec
