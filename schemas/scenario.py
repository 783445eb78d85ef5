"""Scenario files (docs/RULES.md, "Scenarios"): the rules' unit tests.

A misspelt field must be an error, not a silent no-op: an expectation compares only the
fields it gives, so ``{kind: met, targt: x}`` under ``absent`` would match nothing and
always pass. Errors are nested by the document's real keys so that each can be placed.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from difflib import get_close_matches
from typing import Any, cast

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema

from .api import DecisionSchema, NotificationSchema
from .fields import Instant, Text


def unknown_fields(data: object, known: Iterable[str], noun: str) -> dict[str, list[str]]:
    """An error for each key of ``data`` not in ``known``, listing the fields and the likeliest."""
    if not isinstance(data, dict):
        return {}
    known = sorted(known)
    errors: dict[str, list[str]] = {}
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
    def _no_unknown(self, data: dict[str, Any], original: object, **kwargs: Any) -> None:
        errors = unknown_fields(original, self.fields, self.noun)
        if errors:
            raise ValidationError(errors)


class Record(fields.Dict):
    """Some fields of a decision or notification, checked against the record's schema
    (names and value types) and kept as written: matching compares values loosely."""

    def __init__(self, schema: type[Schema], noun: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema, self.noun = schema, noun

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> dict[str, Any]:
        # marshmallow leaves Mapping._deserialize unannotated (a Dict field loads a dict)
        value = cast(dict[str, Any], super()._deserialize(value, attr, data, **kwargs))  # type: ignore[no-untyped-call]
        errors: dict[str, Any] = unknown_fields(value, self.schema().fields, self.noun)
        try:
            self.schema().load({k: v for k, v in value.items() if k not in errors}, partial=True)
        except ValidationError as err:
            errors.update(cast(dict[str, Any], err.messages))      # a schema's errors: by field
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
