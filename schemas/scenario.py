"""Scenario files (docs/RULES.md, "Scenarios"): the rules' unit tests.

A misspelt field must be an error, not a silent no-op: an expectation compares only the
fields it gives, so ``{kind: met, targt: x}`` under ``absent`` would match nothing and
always pass. Errors are nested by the document's real keys so that each can be placed.
"""
from __future__ import annotations

from difflib import get_close_matches

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema

from .api import DecisionSchema, NotificationSchema
from .fields import Instant, Text


def unknown_fields(data, known, noun: str) -> dict[str, list[str]]:
    """An error for each key of ``data`` not in ``known``, listing the fields and the likeliest."""
    if not isinstance(data, dict):
        return {}
    known = sorted(known)
    errors = {}
    for key in data:
        if key not in known:
            close = get_close_matches(str(key), known, n=1)
            errors[key] = [f"unknown field {key!r} in {noun} (fields: {', '.join(known)})"
                           + (f"; did you mean {close[0]!r}?" if close else "")]
    return errors


class Strict(Schema):
    """Unknown keys are errors that name the fields allowed (and the nearest one)."""

    noun = "a mapping"

    class Meta:
        unknown = EXCLUDE

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _no_unknown(self, data, original, **kwargs):
        errors = unknown_fields(original, self.fields, self.noun)
        if errors:
            raise ValidationError(errors)


class Record(fields.Dict):
    """Some fields of a decision or notification, checked against the record's schema
    (names and value types) and kept as written: matching compares values loosely."""

    def __init__(self, schema: type[Schema], noun: str, **kwargs):
        super().__init__(**kwargs)
        self.schema, self.noun = schema, noun

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        errors = unknown_fields(value, self.schema().fields, self.noun)
        try:
            self.schema().load({k: v for k, v in value.items() if k not in errors}, partial=True)
        except ValidationError as err:
            errors.update(err.messages)
        if errors:
            raise ValidationError(errors)
        return value


class ExpectSchema(Strict):
    noun = "'expect'"
    decisions = fields.List(Record(DecisionSchema, "an expected decision"), load_default=list)
    notifications = fields.List(Record(NotificationSchema, "an expected notification"), load_default=list)


class AbsentSchema(Strict):
    noun = "'absent'"
    decisions = fields.List(Record(DecisionSchema, "a decision under 'absent'"), load_default=list)
    notifications = fields.List(Record(NotificationSchema, "a notification under 'absent'"), load_default=list)


class ScenarioSchema(Strict):
    noun = "a scenario"
    name = Text(required=True)
    description = Text()
    rules = Text()
    facts = fields.List(fields.Dict(), load_default=list)
    until = Instant()
    # A missing section is an empty one; a bare ``dict`` default would skip the nested defaults.
    expect = fields.Nested(ExpectSchema, load_default=lambda: ExpectSchema().load({}))
    absent = fields.Nested(AbsentSchema, load_default=lambda: AbsentSchema().load({}))
