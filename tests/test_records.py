"""The records are defined once (schemas/records.py); the API schemas that describe them
must carry every field, so a field can never be dropped from a response silently."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from schemas.api import DecisionSchema, NotificationSchema
from schemas.records import Decision, Notification, record_fields


def test_the_decision_schema_has_every_field_of_the_record():
    assert set(DecisionSchema().fields) == record_fields(Decision)


def test_the_notification_schema_has_every_field_of_the_record():
    assert set(NotificationSchema().fields) == record_fields(Notification)


def test_a_dumped_decision_keeps_every_field_it_has():
    decision = Decision(id="dec_1", kind="improvement-proposed", target="t", subject="S", service="email",
                        agreement="sla", at=datetime(2026, 11, 2, 9, 15, 0, 500000, tzinfo=timezone.utc),
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
