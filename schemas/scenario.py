"""Scenario files (DESIGN §6): the rules' unit tests."""
from __future__ import annotations

from marshmallow import Schema, fields

from .fields import Instant, Text


class Strict(Schema):
    class Meta:
        unknown = "raise"


class ExpectationSchema(Strict):
    decisions = fields.List(fields.Dict(), load_default=list)
    notifications = fields.List(fields.Dict(), load_default=list)


class ScenarioSchema(Strict):
    name = Text(required=True)
    description = Text()
    rules = Text()
    facts = fields.List(fields.Dict(), load_default=list)
    until = Instant()
    # A missing section is an empty one; a bare ``dict`` default would skip the nested defaults.
    expect = fields.Nested(ExpectationSchema, load_default=lambda: ExpectationSchema().load({}))
    absent = fields.Nested(ExpectationSchema, load_default=lambda: ExpectationSchema().load({}))
