"""``kind: Mapping``: loaded and checked with the rules, and a payload through it."""
from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from engine.lang.errors import RuleSetError
from engine.lang.loader import load_texts
from engine.webhooks.signatures import SignatureError, verify
from engine.webhooks.translate import translate
from tests.support import PORTFOLIO, ROOT

TICKETS = (ROOT / "tests" / "rulesets" / "mappings" / "tickets.yaml").read_text()


def portfolio_files() -> dict[str, str]:
    return {str(p.relative_to(PORTFOLIO)): p.read_text() for p in sorted(PORTFOLIO.rglob("*.yaml"))}


def with_mapping(text: str) -> dict[str, str]:
    return {**portfolio_files(), "mappings/m.yaml": text}


def problems_of(text: str) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_texts(with_mapping(text))
    return [str(p) for p in caught.value.problems]


@pytest.fixture(scope="module")
def tickets():
    return load_texts(with_mapping(TICKETS)).mappings["tickets"]


CREATED = {"event": "created", "ticket": {"key": "MAIL-7", "project": "MAIL", "priority": "Highest",
                                          "created": "2026-11-05T03:00:00+01:00"}}


# ---- loading: every mistake at file:line:column -------------------------------------------

def test_the_mapping_loads_with_the_rules_and_compiles_its_expressions(tickets):
    assert tickets.source == "tickets/test"
    assert [f.index for f in tickets.facts] == [0, 1]
    assert tickets.signature.scheme == "github" and tickets.signature.header == "X-Hub-Signature-256"


def test_an_expression_that_does_not_parse_is_an_error_at_its_place():
    text = TICKETS.replace("when: \"event == 'created'\"", "when: \"event ==\"")
    (problem,) = problems_of(text)
    assert problem.startswith("mappings/m.yaml:8:")
    assert "when: not a JMESPath expression" in problem and "'event =='" in problem


def test_a_service_its_map_names_must_be_a_service_of_the_rules():
    (problem,) = problems_of(TICKETS.replace("WEB: hosting}, default: service-desk}\n    data",
                                             "WEB: hostng}, default: service-desk}\n    data"))
    assert problem.startswith("mappings/m.yaml:13:")
    assert "service: 'hostng' is not a service of the rules (known: hosting" in problem


def test_a_default_service_must_be_a_service_of_the_rules():
    problems = problems_of(TICKETS.replace("default: service-desk}", "default: helpdesk}"))
    assert len(problems) == 2 and all("'helpdesk' is not a service of the rules" in p for p in problems)


def test_a_fact_type_must_be_one_the_catalogue_declares():
    (problem,) = problems_of(TICKETS.replace("Done: incident.resolved", "Done: incident.resolvd"))
    assert problem.startswith("mappings/m.yaml:19:77:")
    assert "'incident.resolvd' is not a fact type the catalogue declares (did you mean incident.resolved?)" in problem


def test_a_data_value_the_catalogue_would_refuse_is_an_error_at_its_place():
    (problem,) = problems_of(TICKETS.replace("Low: P4}}", "Low: P5}}"))
    assert problem.startswith("mappings/m.yaml:15:")
    assert "data.priority: 'P5' is not one of: P1, P2, P3, P4 (the catalogue's incident.opened.priority)" in problem


def test_the_engine_s_own_types_cannot_be_mapped():
    (problem,) = problems_of(TICKETS.replace("{value: incident.opened}", "{value: decision.breach}"))
    assert "mappings/m.yaml:10:" in problem and "derived by the engine" in problem


def test_a_time_format_and_a_zone_are_checked():
    text = TICKETS.replace("format: epoch_ms}", "format: epoch_us, timezone: Mars/Olympus}")
    problems = problems_of(text)
    assert any("format: 'epoch_us' is no time format" in p for p in problems)
    assert any("timezone: unknown time zone 'Mars/Olympus'" in p for p in problems)


def test_a_shared_secret_names_its_header_and_the_scheme_is_known():
    assert any("a shared secret names the 'header'" in p
               for p in problems_of(TICKETS.replace("scheme: github", "scheme: shared")))
    assert any("'hub' is not one of: github, pagerduty, zendesk, shared" in p
               for p in problems_of(TICKETS.replace("scheme: github", "scheme: hub")))


def test_a_field_needs_a_path_or_a_value_and_alertmanager_is_taken():
    assert any("give either 'path'" in p for p in problems_of(TICKETS.replace("{value: incident.opened}",
                                                                              "{default: incident.opened}")))
    assert any("POST /v1/ingest/alertmanager is served by slm itself" in p
               for p in problems_of(TICKETS.replace("id: tickets", "id: alertmanager")))


# ---- a payload through it ------------------------------------------------------------------

def test_a_created_ticket_becomes_an_opened_incident_of_the_mapped_service(tickets):
    result = translate(tickets, CREATED)
    assert result.facts == [{"source": "tickets/test", "id": "MAIL-7-created", "type": "incident.opened",
                             "time": "2026-11-05T03:00:00+01:00", "subject": "MAIL-7", "service": "email",
                             "data": {"priority": "P1"}}]
    assert result.reasons == ["facts[1]: when \"event == 'updated'\" is not true for this payload"]
    assert result.found[0]["fields"]["data.priority"] == 'ticket.priority is "Highest", mapped to "P1"'


def test_a_project_no_map_names_falls_to_the_default_service(tickets):
    payload = {**CREATED, "ticket": {**CREATED["ticket"], "project": "ZZZ"}}
    (fact,) = translate(tickets, payload).facts
    assert fact["service"] == "service-desk"


def test_each_status_change_is_a_fact_and_an_unmapped_status_says_why(tickets):
    payload = {"event": "updated", "at": 1793847600123, "ticket": {"key": "WEB-2", "project": "WEB"},
               "changes": [{"field": "status", "to": "In Progress"}, {"field": "assignee", "to": "ann"},
                           {"field": "status", "to": "Blocked"}, {"field": "status", "to": "Done"}]}
    result = translate(tickets, payload)
    assert [(f["type"], f["time"], f["service"]) for f in result.facts] == [
        ("incident.acknowledged", "2026-11-05T03:00:00.123Z", "hosting"),
        ("incident.resolved", "2026-11-05T03:00:00.123Z", "hosting")]
    assert any(r.startswith("facts[1] (item 1): type: item.to is \"Blocked\", which its map does not name")
               for r in result.reasons)


def test_a_payload_that_maps_to_nothing_gives_every_reason(tickets):
    result = translate(tickets, {"event": "deleted"})
    assert result.facts == [] and len(result.reasons) == 2


def test_a_required_field_found_nowhere_makes_no_fact(tickets):
    payload = {"event": "created", "ticket": {"key": "MAIL-8", "project": "MAIL", "priority": "Low"}}
    result = translate(tickets, payload)
    assert result.facts == []
    assert result.reasons[0] == "facts[0]: time: ticket.created is null: nothing found; a fact needs one"


@pytest.mark.parametrize("fmt, found, expected", [
    ("epoch_s", 1793847600, "2026-11-05T03:00:00Z"),
    ("epoch_ms", "1793847600500", "2026-11-05T03:00:00.5Z"),
    ("epoch_ns", 1793847600123456789, "2026-11-05T03:00:00.123456Z"),
    ("epoch_s", 1793847600.25, "2026-11-05T03:00:00.25Z"),
    ("iso8601", "2026-11-05T04:00:00.000+0100", "2026-11-05T03:00:00Z"),
    ("%Y-%m-%d %H:%M:%S", "2026-11-05 03:00:00", "2026-11-05T03:00:00Z"),
])
def test_times_are_read_as_their_format_says(fmt, found, expected):
    from engine.webhooks.translate import to_time

    assert to_time(found, fmt, "UTC") == expected


def test_a_time_without_offset_is_read_in_the_zone_given():
    from engine.webhooks.translate import to_time

    assert to_time("2026-07-01 12:00:00", "%Y-%m-%d %H:%M:%S", "Europe/Berlin") == "2026-07-01T10:00:00Z"


# ---- signatures ----------------------------------------------------------------------------

BODY = b'{"event": "created"}'
NOW = datetime(2026, 11, 5, 4, 0, tzinfo=UTC)
ENV = {"SECRET": "s3cret"}


def hexmac(body: bytes, key: str = "s3cret") -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def signature(scheme: str, header: str | None = None):
    from engine.lang.mapping import Signature

    return Signature(scheme, "SECRET", header, timedelta(minutes=5))


def test_github_signs_the_body_with_sha256():
    verify(signature("github", "X-Hub-Signature-256"), {"x-hub-signature-256": "sha256=" + hexmac(BODY)},
           BODY, NOW, ENV)
    with pytest.raises(SignatureError, match="x-hub-signature-256: not the HMAC-SHA256"):
        verify(signature("github", "X-Hub-Signature-256"),
               {"x-hub-signature-256": "sha256=" + hexmac(BODY, "other")}, BODY, NOW, ENV)
    with pytest.raises(SignatureError, match="missing"):
        verify(signature("github", "X-Hub-Signature-256"), {}, BODY, NOW, ENV)


def test_pagerduty_accepts_any_of_its_v1_signatures():
    header = f"v1={hexmac(BODY, 'old')},v1={hexmac(BODY)}"
    verify(signature("pagerduty"), {"x-pagerduty-signature": header}, BODY, NOW, ENV)
    with pytest.raises(SignatureError, match="no v1= signature"):
        verify(signature("pagerduty"), {"x-pagerduty-signature": f"v1={hexmac(BODY + b' ')}"}, BODY, NOW, ENV)


def zendesk_headers(stamp: str, body: bytes = BODY) -> dict[str, str]:
    digest = hmac.new(b"s3cret", stamp.encode() + body, hashlib.sha256).digest()
    return {"x-zendesk-webhook-signature": base64.b64encode(digest).decode(),
            "x-zendesk-webhook-signature-timestamp": stamp}


def test_zendesk_signs_its_timestamp_and_the_body_and_the_timestamp_must_be_recent():
    verify(signature("zendesk"), zendesk_headers("2026-11-05T03:58:00Z"), BODY, NOW, ENV)
    with pytest.raises(SignatureError, match="signed 10m away from the server clock; at most 5m"):
        verify(signature("zendesk"), zendesk_headers("2026-11-05T03:50:00Z"), BODY, NOW, ENV)
    moved = zendesk_headers("2026-11-05T03:58:00Z")
    moved["x-zendesk-webhook-signature-timestamp"] = "2026-11-05T03:59:00Z"
    with pytest.raises(SignatureError, match="base64 HMAC-SHA256 of the timestamp"):
        verify(signature("zendesk"), moved, BODY, NOW, ENV)


def test_a_shared_secret_is_compared_whole_and_an_unset_secret_refuses_all():
    verify(signature("shared", "X-Slm-Secret"), {"x-slm-secret": "s3cret"}, BODY, NOW, ENV)
    with pytest.raises(SignatureError, match="not the mapping's shared secret"):
        verify(signature("shared", "X-Slm-Secret"), {"x-slm-secret": "s3cre"}, BODY, NOW, ENV)
    with pytest.raises(SignatureError, match=r"secret \(SECRET\) is not set on the server"):
        verify(signature("shared", "X-Slm-Secret"), {"x-slm-secret": "s3cret"}, BODY, NOW, {})


def test_the_example_of_the_reference_loads_with_the_portfolio():
    text = (ROOT / "docs" / "RULES.md").read_text(encoding="utf-8")
    section = text.split("## Webhook mappings", 1)[1].split("\n## ", 1)[0]
    (block,) = [b for b in section.split("```yaml\n")[1:2]]
    ruleset = load_texts(with_mapping(block.split("```")[0]))
    assert list(ruleset.mappings) == ["tickets"]
