"""``/openapi.json`` describes the rules in force (api/document.py): their names as enums, a
schema per declared fact type, its version naming the rule set; it changes with them."""
from __future__ import annotations

import json
import re
import shutil

import pytest
from openapi_spec_validator import validate

from schemas import strings
from tests.support import PORTFOLIO
from tests.support.api import auth


def _document(env) -> dict:
    response = env.client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.json


def _parameters(document: dict, path: str, method: str = "get") -> dict:
    return {p["name"]: p["schema"] for p in document["paths"][path][method]["parameters"]}


def _reload(env, rules) -> None:
    env.service.rules.rules_dir = rules
    reloaded = env.client.post("/v1/rules/reload", headers=auth(env, "owner"))
    assert reloaded.status_code == 200, reloaded.json


def test_the_document_names_what_the_rules_in_force_define(env):
    document = _document(env)
    validate(document)
    ruleset = env.service.state.ruleset
    assert document["info"]["version"] == "1.0.0+sha256." + ruleset.version.removeprefix("sha256:")[:12]
    decisions = _parameters(document, "/v1/decisions")
    assert decisions["service"]["enum"] == sorted(ruleset.services) == ["email", "hosting", "service-desk"]
    assert decisions["target"]["enum"] == sorted(ruleset.targets)
    assert {"breach", "met", "warning", "escalation", "retracted", "improvement-proposed"} <= set(
        decisions["kind"]["enum"])
    assert _parameters(document, "/v1/clocks")["target"]["enum"] == sorted(ruleset.targets)
    assert _parameters(document, "/v1/reports/compliance")["service"]["enum"] == sorted(ruleset.services)
    assert "x-slm-known" not in json.dumps(document)      # every marker became an enum


def test_each_declared_fact_type_has_its_schema_with_its_fields(env):
    schemas = _document(env)["components"]["schemas"]
    declared = sorted(env.service.state.ruleset.catalogue.types)
    assert [branch["$ref"] for branch in schemas["Fact"]["oneOf"]] == [
        f"#/components/schemas/Fact.{name}" for name in declared]
    assert schemas["Fact"]["discriminator"]["propertyName"] == "type"       # undeclared: reject
    opened = schemas["Fact.incident.opened"]
    assert opened["properties"]["type"]["enum"] == ["incident.opened"]
    assert opened["properties"]["data"]["properties"]["priority"]["enum"] == ["P1", "P2", "P3", "P4", None]
    assert opened["properties"]["service"]["enum"] == ["email", "hosting", "service-desk", None]
    assert schemas["Fact.metric.sample"]["properties"]["data"]["required"] == ["name", "value"]
    assert "data" in schemas["Fact.metric.sample"]["required"]


def test_the_document_follows_a_reload_and_the_filters_keep_earlier_names(env, tmp_path):
    before = _document(env)
    rules = tmp_path / "rules"
    shutil.copytree(PORTFOLIO, rules)
    hosting = (rules / "services" / "hosting.yaml").read_text()       # a copy, every id prefixed: wiki-hosting
    (rules / "services" / "wiki.yaml").write_text(re.sub(r"\b(id|service): (\S+)", r"\1: wiki-\2", hosting))
    with (rules / "org" / "facts.yaml").open("a") as catalogue:
        catalogue.write("  page.edited:\n    description: A wiki page was edited.\n    data:\n"
                        "      page.title: {type: string, required: true}\n      page.size: {type: integer}\n"
                        "      editor: {type: enum, values: [bot, person]}\n")
    _reload(env, rules)
    after = _document(env)
    assert after["info"]["version"] != before["info"]["version"]
    assert after["info"]["version"].endswith(env.service.state.ruleset.version.removeprefix("sha256:")[:12])
    assert "wiki-hosting" in _parameters(after, "/v1/reports/compliance")["service"]["enum"]
    data = after["components"]["schemas"]["Fact.page.edited"]["properties"]["data"]
    assert data["required"] == ["page"] and "nullable" not in data     # a dotted field, nested
    page = data["properties"]["page"]
    assert page["required"] == ["title"] and "nullable" not in page
    assert page["properties"]["size"] == {"type": "integer", "minimum": -2**63, "maximum": 2**63 - 1,
                                          "nullable": True}
    assert data["properties"]["editor"] == {"enum": ["bot", "person", None], "nullable": True}

    _reload(env, PORTFOLIO)                           # back: wiki-hosting is no longer in force
    again = _document(env)
    assert again["info"]["version"] == before["info"]["version"]
    assert "wiki-hosting" not in _parameters(again, "/v1/reports/compliance")["service"]["enum"]
    assert "wiki-hosting" in _parameters(again, "/v1/decisions")["service"]["enum"]   # its records may be listed
    assert "Fact.page.edited" not in again["components"]["schemas"]


def test_operations_have_ids_and_links_lead_from_a_fact_to_its_records(env):
    paths = _document(env)["paths"]
    ids = [op["operationId"] for item in paths.values() for method, op in item.items() if method != "parameters"]
    assert len(ids) == len(set(ids)) and all(ids)               # every operation named, each once
    links = paths["/v1/facts"]["post"]["responses"]["200"]["links"]
    assert links["decision"] == {"operationId": "get_decision",
                                 "parameters": {"decision_id": "$response.body#/decisions/0/id"}}
    assert links["trace"]["operationId"] == "get_trace"
    retry = paths["/v1/notifications"]["get"]["responses"]["200"]["links"]["retry"]
    assert retry == {"operationId": "retry_notification",
                     "parameters": {"notification_id": "$response.body#/items/0/id"}}


def test_query_and_body_constraints_are_stated(env):
    document = _document(env)
    decisions = _parameters(document, "/v1/decisions")
    assert decisions["since"]["format"] == "date-time" and decisions["since"]["pattern"].startswith("^")
    assert decisions["subject"]["pattern"] == "^[^\\u0000]*$"
    assert _parameters(document, "/v1/reports/compliance")["period"]["pattern"] == strings.PERIODS
    assert "pattern" in _parameters(document, "/v1/facts", "post")["wait"]
    files = document["components"]["schemas"]["RuleFiles"]["properties"]["files"]
    assert (files["minProperties"], files["maxProperties"]) == (1, 500) and "minLength" not in files
    batch = document["paths"]["/v1/facts"]["post"]["requestBody"]["content"]["application/cloudevents-batch+json"]
    assert (batch["schema"]["minItems"], batch["schema"]["maxItems"]) == (1, 10_000)


@pytest.mark.parametrize("path, allowed", [
    ("/v1/facts", "GET, HEAD, OPTIONS, POST"),
    ("/v1/decisions/d1", "GET, HEAD, OPTIONS"),
    ("/v1/notifications/n1/retry", "OPTIONS, POST"),
    ("/v1/rules/reload", "OPTIONS, POST"),
    ("/healthz", "GET, HEAD, OPTIONS"),
])
@pytest.mark.parametrize("method", ["TRACE", "PUT", "DELETE", "PATCH"])
def test_a_method_the_path_does_not_take_is_405_with_allow(env, path, allowed, method):
    response = env.client.open(path, method=method, headers=auth(env, "admin"))
    assert response.status_code == 405 and response.headers["Allow"] == allowed
    assert response.mimetype == "application/problem+json"
