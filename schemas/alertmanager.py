"""Prometheus Alertmanager's webhook payload (version 4) and the facts it stands for.

Each alert becomes ``alert.firing`` at ``startsAt`` or ``alert.resolved`` at ``endsAt``
(README.md, "Alertmanager"): the fingerprint is the subject, labels are fields of ``data``, annotations
go under ``data.annotations`` and the service comes from one label. The fact id is the
fingerprint, the start of the alert and its status, so Alertmanager's repeated
notifications of the same alert are duplicates, while a new firing of the same alert
(a new ``startsAt``) is a new fact. The fact's time is the string Alertmanager sent
(nanoseconds and all; the engine works on its instant, cut to microseconds).

A group is placed alert by alert: Alertmanager does not retry a 4xx, so one alert that
cannot be placed (an unknown service label, a bad time) must not take its group's good
alerts with it. Only a payload that is not a version 4 webhook at all is refused whole.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from .facts import flatten_errors
from .fields import AnyField
from .values import format_instant, parse_rfc3339

SOURCE = "alertmanager"
ZERO_TIME = "0001-01-01T00:00:00Z"      # Go's zero time: "not set" in Alertmanager's JSON


class AlertTime(AnyField):
    """RFC 3339 (Alertmanager sends nanoseconds); Go's zero time loads as None."""

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> datetime | None:
        if not isinstance(value, str):
            raise ValidationError("expected an RFC 3339 time string")
        if value.startswith("0001-01-01"):
            return None
        try:
            return parse_rfc3339(value)
        except ValueError as err:
            raise ValidationError(str(err)) from None

    def _serialize(self, value: datetime | None, attr: str | None, obj: object, **kwargs: Any) -> str:
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
    def _times(self, alert: dict[str, Any], **kwargs: Any) -> None:
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
    truncatedAlerts = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))
    status = fields.String(required=True, validate=validate.OneOf(["firing", "resolved"]))
    receiver = fields.String(required=True)
    groupLabels = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    commonLabels = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    commonAnnotations = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    externalURL = fields.String(load_default=None)
    alerts = fields.List(fields.Raw(allow_none=True), required=True, validate=validate.Length(min=1, max=10_000),
                         metadata={"description": "the alerts (Alertmanager's `Alert` objects), each "
                                                  "placed or rejected on its own"})


_alert_schema = AlertSchema()


def alert_facts(payload: Mapping[str, Any], service_label: str = "service"
                ) -> tuple[list[dict[str, Any]], list[int], dict[int, dict[str, list[str]]]]:
    """The facts of a loaded webhook payload, in the order of its alerts: (facts, the
    alert each came from, alert → errors for the alerts that are no valid alert)."""
    facts, origins, bad = [], [], {}
    for index, raw in enumerate(payload["alerts"]):
        if not isinstance(raw, dict):
            bad[index] = {"_alert": ["expected a JSON object"]}
            continue
        try:
            alert = _alert_schema.load(raw)
        except ValidationError as err:
            bad[index] = flatten_errors(err.messages)    # a schema's errors: by field
            continue
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
            "time": raw["endsAt"] if resolved else raw["startsAt"],      # as sent (the fact schema checks it)
            "subject": alert["fingerprint"],
            "service": alert["labels"].get(service_label),
            "data": data,
        })
        origins.append(index)
    return facts, origins, bad


def alert_field(fact_field: str, resolved: bool, service_label: str) -> str:
    """The alert field a fact field came from, for naming it in a rejection."""
    head, _, rest = fact_field.partition(".")
    if head == "time":
        return "endsAt" if resolved else "startsAt"
    if head == "service":
        return f"labels.{service_label}"
    if head in ("id", "subject"):
        return "fingerprint"
    if head == "data" and rest:
        if rest == "_object":                  # data as a whole: labels and annotations together
            return "labels"
        if rest.startswith("annotations"):
            return rest
        return rest if rest in ("generatorURL", "startsAt") else f"labels.{rest}"
    return fact_field
