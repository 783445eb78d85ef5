"""Prometheus Alertmanager's webhook payload (version 4) and the facts it stands for.

Each alert becomes ``alert.firing`` at ``startsAt`` or ``alert.resolved`` at ``endsAt``
(README.md, "Alertmanager"): the fingerprint is the subject, labels are fields of ``data``, annotations
go under ``data.annotations`` and the service comes from one label. The fact id is the
fingerprint, the start of the alert and its status, so Alertmanager's repeated
notifications of the same alert are duplicates, while a new firing of the same alert
(a new ``startsAt``) is a new fact.
"""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from .values import format_instant, parse_rfc3339

SOURCE = "alertmanager"
ZERO_TIME = "0001-01-01T00:00:00Z"      # Go's zero time: "not set" in Alertmanager's JSON


class AlertTime(fields.Field):
    """RFC 3339 (Alertmanager sends nanoseconds); Go's zero time loads as None."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("expected an RFC 3339 time string")
        if value.startswith("0001-01-01"):
            return None
        try:
            return parse_rfc3339(value)
        except ValueError as err:
            raise ValidationError(str(err)) from None

    def _serialize(self, value, attr, obj, **kwargs):
        return ZERO_TIME if value is None else format_instant(value)


class AlertSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    status = fields.String(required=True, validate=validate.OneOf(["firing", "resolved"]))
    labels = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    annotations = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    startsAt = AlertTime(required=True)
    endsAt = AlertTime(load_default=None)
    generatorURL = fields.String(load_default=None, allow_none=True)
    fingerprint = fields.String(required=True, validate=validate.Length(min=1, max=128))

    @validates_schema
    def _times(self, alert, **kwargs):
        if alert.get("startsAt") is None:
            raise ValidationError("a firing alert needs a start time", "startsAt")
        if alert.get("status") == "resolved" and alert.get("endsAt") is None:
            raise ValidationError("a resolved alert needs an end time", "endsAt")


class WebhookSchema(Schema):
    """The payload Alertmanager posts to a webhook receiver (only ``version: "4"``)."""

    class Meta:
        unknown = EXCLUDE

    version = fields.String(required=True, validate=validate.Equal("4", error="only version 4 is supported"))
    groupKey = fields.String(load_default=None)
    truncatedAlerts = fields.Integer(load_default=0)
    status = fields.String(required=True, validate=validate.OneOf(["firing", "resolved"]))
    receiver = fields.String(required=True)
    groupLabels = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    commonLabels = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    commonAnnotations = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    externalURL = fields.String(load_default=None)
    alerts = fields.List(fields.Nested(AlertSchema), required=True,
                         validate=validate.Length(min=1, max=10_000))


def alert_facts(payload: dict, service_label: str = "service") -> list[dict]:
    """The facts of a loaded webhook payload, in the order of its alerts."""
    facts = []
    for alert in payload["alerts"]:
        started = format_instant(alert["startsAt"])
        resolved = alert["status"] == "resolved"
        data = {name: value for name, value in alert["labels"].items()}
        data["annotations"] = dict(alert["annotations"])
        if alert.get("generatorURL"):
            data["generatorURL"] = alert["generatorURL"]
        data["startsAt"] = started
        facts.append({
            "id": f"{alert['fingerprint']}@{started}/{alert['status']}",
            "source": SOURCE,
            "type": "alert.resolved" if resolved else "alert.firing",
            "time": format_instant(alert["endsAt"]) if resolved else started,
            "subject": alert["fingerprint"],
            "service": alert["labels"].get(service_label),
            "data": data,
        })
    return facts
