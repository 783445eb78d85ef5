"""Marshmallow fields for the value languages in schemas.values.

Errors are raised nested by the real keys of the document, so every message can be
placed at the exact YAML node it is about.
"""
from __future__ import annotations

import collections.abc
import re
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError, fields

from . import values

if TYPE_CHECKING:
    # marshmallow 4 types a field by the value it loads; 3.x, which the dependencies still
    # allow, has no such parameter, so a base class written Field[Any] would not import there
    AnyField = fields.Field[Any]
else:
    AnyField = fields.Field

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


class _Parsed(AnyField):
    """A field whose text is turned into a value by one of the parsers in schemas.values."""

    parser: staticmethod[[Any], object] = staticmethod(lambda value: value)

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> object:
        try:
            return self.parser(value)
        except ValueError as err:
            raise ValidationError(str(err)) from None


class Duration(_Parsed):
    parser: staticmethod[[Any], timedelta] = staticmethod(values.parse_duration)


class Percent(_Parsed):
    parser: staticmethod[[Any], Fraction] = staticmethod(values.parse_percent)


class Level(_Parsed):
    parser: staticmethod[[Any], values.Level] = staticmethod(values.parse_level)


class Date(_Parsed):
    parser: staticmethod[[Any], date] = staticmethod(values.parse_date)


class Instant(_Parsed):
    parser: staticmethod[[Any], datetime] = staticmethod(values.parse_instant)


class Name(fields.String):
    """An identifier: letters, digits, ``.``, ``_``, ``-``, ``/``."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> str:
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            raise ValidationError(f"{value!r} is not a valid identifier (letters, digits, . _ - /)")
        return value


class Text(fields.String):
    """A string; numbers are accepted as text (``version: 2``)."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class OneOrMany(AnyField):
    """A single item or a list of items, always loaded as a list."""

    def __init__(self, inner: fields.Field[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = inner

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> list[Any]:
        items = value if isinstance(value, list) else [value]
        result, errors = [], {}
        for index, item in enumerate(items):
            try:
                result.append(self.inner.deserialize(item))
            except ValidationError as err:
                errors[index if isinstance(value, list) else "_self"] = err.messages
        if "_self" in errors:
            raise ValidationError(errors["_self"])
        if errors:
            raise ValidationError(errors)
        return result


class Mapping(AnyField):
    """A mapping with free keys whose values share one field; errors keyed by the real key."""

    def __init__(self, values_field: fields.Field[Any], keys_field: fields.Field[Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values_field = values_field
        self.keys_field = keys_field

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError("expected a mapping of name: value")
        result, errors = {}, {}
        for key, item in value.items():
            try:
                if self.keys_field is not None:
                    self.keys_field.deserialize(key)
                result[key] = self.values_field.deserialize(item)
            except ValidationError as err:
                errors[key] = err.messages
        if errors:
            raise ValidationError(errors)
        return result


class Week(AnyField):
    """Calendar hours: ``{mon-fri: "08:00-18:00", sat: "09:00-12:30"}``."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> dict[int, list[tuple[int, int]]]:
        if not isinstance(value, dict) or not value:
            raise ValidationError('expected a mapping of days to hours, e.g. {mon-fri: "08:00-18:00"}')
        errors: dict[str, list[str]] = {}
        seen: dict[int, str] = {}
        for days, spans in value.items():
            try:
                for day in values.parse_days(days):
                    if day in seen:
                        raise ValueError(f"{values.DAY_NAMES[day]} is already given by '{seen[day]}'")
                    seen[day] = days
                values.parse_spans(spans)
            except ValueError as err:
                errors[days] = [str(err)]
        if errors:
            raise ValidationError(errors)
        return values.parse_week(value)


_OPERATORS = {"in", "gt", "gte", "lt", "lte", "ne", "matches", "exists"}


class Where(AnyField):
    """Conditions as data: ``field: value``, operator maps, ``any:``/``all:`` lists."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> object:
        errors: dict[str, Any] = {}
        check_where(value, errors)
        if errors:
            raise ValidationError(errors.pop("_self") if "_self" in errors else errors)
        return value


def check_where(value: object, errors: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        errors["_self"] = ["expected a mapping of field: condition"]
        return
    sub: dict[str, Any] | list[str]      # one key's errors: nested by key, or a list of messages
    for key, cond in value.items():
        if key in ("any", "all"):
            if not isinstance(cond, list) or not cond:
                errors[key] = [f"'{key}' takes a non-empty list of conditions"]
                continue
            for index, item in enumerate(cond):
                sub = {}
                check_where(item, sub)
                if sub:
                    errors.setdefault(key, {})[index] = sub.pop("_self") if "_self" in sub else sub
        elif isinstance(cond, dict):
            sub = {}
            for op, operand in cond.items():
                message = _check_operator(op, operand)
                if message:
                    sub[op] = [message]
            if not cond:
                sub = ["an operator map needs one of: " + ", ".join(sorted(_OPERATORS))]
            if sub:
                errors[key] = sub
        elif isinstance(cond, list):
            errors[key] = ["a list needs an operator: {in: [...]}"]


def _check_operator(op: str, operand: object) -> str | None:
    if op not in _OPERATORS:
        return f"unknown operator '{op}' (expected one of: {', '.join(sorted(_OPERATORS))})"
    if op == "in" and not (isinstance(operand, list) and operand):
        return "'in' takes a non-empty list"
    if op in ("gt", "gte", "lt", "lte") and (isinstance(operand, bool) or not isinstance(operand, (int, float, str))):
        return f"'{op}' takes a number or a string"
    if op == "exists" and not isinstance(operand, bool):
        return "'exists' takes true or false"
    if op == "matches":
        if not isinstance(operand, str):
            return "'matches' takes a regular expression"
        try:
            re.compile(operand)
        except re.error as err:
            return f"not a regular expression: {err}"
    return None
