"""The records are defined once (schemas/records.py); the API schemas that describe them
must carry every field, so a field can never be dropped from a response silently."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.api import DecisionSchema, NotificationSchema
from schemas.records import Decision, Notification, record_fields


def test_the_decision_schema_has_every_field_of_the_record():
    assert set(DecisionSchema().fields) == record_fields(Decision)


def test_the_notification_schema_has_every_field_of_the_record():
    assert set(NotificationSchema().fields) == record_fields(Notification)


def test_a_dumped_decision_keeps_every_field_it_has():
    decision = Decision(id="dec_1", kind="improvement-proposed", target="t", subject="S", service="email",
                        agreement="sla", at=datetime(2026, 11, 2, 9, 15, 0, 500000, tzinfo=UTC),
                        shadow=False, data={"counted": timedelta(minutes=20, seconds=3.798232)},
                        rule={"id": "r", "file": "rules/x.yaml", "line": 3, "ruleset": "sha256:0"},
                        because=["decision:dec_0"], severity="minor", message="t breached 3 times",
                        notice="not part of the record")
    record = decision.as_dict()
    assert DecisionSchema().dump(record) == record
    assert record["severity"] == "minor" and record["message"] == "t breached 3 times"
    assert "notice" not in record
    assert record["data"]["counted"] == "20m3s"          # whole seconds, never 20m3.798232s
    assert record["at"] == "2026-11-02T09:15:00.5Z"


def test_every_decision_of_every_scenario_is_stored_as_its_schema_dumps_it():
    """``GET /v1/decisions`` answers stored decisions as read, without dumping them through
    DecisionSchema again (api/records.py): that holds only while a stored body (the record
    as canonical JSON, read back) is exactly what the schema would make of it."""
    import json

    from engine.eval.engine import Engine
    from engine.lang.yamlsource import load_documents
    from engine.scenarios import DEFAULT_SOURCE, RuleSetCache, find_scenarios
    from engine.store.encoding import canonical_json
    from schemas.api import DecisionPageSchema
    from schemas.scenario import ScenarioSchema
    from tests.support import ROOT

    cache, kinds, checked = RuleSetCache(), set(), 0
    for path in find_scenarios([str(ROOT / "fixtures" / "scenarios")]):
        for doc in load_documents(path.read_text(encoding="utf-8"), str(path))[0]:
            scenario = ScenarioSchema().load(doc.data)
            root = (path.parent / scenario["rules"]) if scenario.get("rules") else ROOT / "rules"
            engine = Engine(cache.get(root))
            for raw in scenario["facts"]:
                if "rules" not in raw:
                    engine.apply({"source": DEFAULT_SOURCE, **raw})
            if scenario.get("until"):
                engine.advance(scenario["until"])
            stored = [json.loads(canonical_json(d.as_dict())) for d in engine.decisions]
            for body in stored:
                assert DecisionSchema().dump(body) == body, body["id"]
            page = {"items": stored, "next": "42"}
            assert DecisionPageSchema().dump(page) == page
            kinds.update(body["kind"] for body in stored)
            checked += len(stored)
    assert checked > 200 and {"warning", "breach", "met", "escalation", "cancelled", "retracted"} <= kinds
