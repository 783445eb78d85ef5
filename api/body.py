"""Reading a JSON request body without letting its size or shape cost the server.

Three bounds, checked before the body is parsed: its length (Flask's
``MAX_CONTENT_LENGTH``, enforced by Werkzeug on ``Content-Length`` and on chunked
streams alike, 413), the number of JSON values it can hold at most (a cheap count of
``,``, ``[`` and ``{`` over the raw bytes: ``[{},{},…]`` expands about 25 times in
memory when parsed, so a body is refused by what it would cost, not by its length
alone; 413), and then the parse itself, where malformed JSON at any depth (including
nesting deeper than the parser's recursion limit, which raises ``RecursionError``, not
``ValueError``) is a 400, never a 500.

Non-finite numbers (``NaN``, ``Infinity``, ``1e400``) parse here as floats so that the
fact schema can refuse them naming the field; nothing reads them back unchecked.
"""
from __future__ import annotations

import json

from flask import current_app, request
from flask_smorest import Blueprint, abort
from webargs.flaskparser import FlaskParser, is_json_request

from schemas.facts import text_problem
from schemas.limits import MAX_VALUES


def parse(raw: bytes, what: str = "the body"):
    """``raw`` as JSON, after the value count; 400/413 problems otherwise."""
    limit = current_app.config.get("SLM_MAX_VALUES", MAX_VALUES)
    most = raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1
    if most > limit:
        abort(413, message=f"{what} holds up to {most} JSON values; at most {limit} are accepted "
                           "in one request (split it)")
    try:
        return json.loads(raw or b"")
    except RecursionError:
        abort(400, message=f"{what} is not JSON the server can read: nested too deeply")
    except ValueError as err:            # JSONDecodeError and UnicodeDecodeError
        abort(400, message=f"{what} is not JSON: {err}")


def read_json(what: str = "the body"):
    """The request's body as JSON (see the module's docstring)."""
    return parse(request.get_data(cache=False), what)


class BoundedParser(FlaskParser):
    """webargs' parser for ``location="json"`` arguments, reading the body through
    :func:`parse` (webargs' own parse lets a ``RecursionError`` through as a 500); and for
    query strings, strict: a parameter the route does not know (``servise=email``) is a 400
    listing the ones it does, not silently ignored, and so is a value no database can
    hold (a NUL character, a lone surrogate)."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            abort(415, message=f"send the body as JSON (application/json), not {req.mimetype or 'no content type'}")
        return parse(req.get_data(cache=True))

    def load_querystring(self, req, schema):
        allowed = sorted(f.data_key or name for name, f in schema.fields.items() if not f.dump_only)
        errors = {}
        for name in req.args:
            if name not in allowed:
                hint = " (a page's `next` is passed as `cursor`)" if name == "next" and "cursor" in allowed else ""
                errors[f"query.{name}"] = [f"unknown parameter{hint} (allowed: {', '.join(allowed) or 'none'})"]
        for name, value in req.args.items(multi=True):
            if (problem := text_problem(value)) and name in allowed:
                errors[f"query.{name}"] = [problem]
        if errors:
            abort(400, message="unknown or unusable query parameters", errors=errors)
        return super().load_querystring(req, schema)


class BoundedBlueprint(Blueprint):
    """flask-smorest's Blueprint whose ``location="json"`` arguments use :class:`BoundedParser`.

    A query string that does not validate is a 400 (documented so): the request itself is
    malformed, whereas a body that does not validate stays a 422."""

    ARGUMENTS_PARSER = BoundedParser()

    def arguments(self, schema, *, location="json", **kwargs):
        if location == "query":
            kwargs.setdefault("error_status_code", 400)
        return super().arguments(schema, location=location, **kwargs)
