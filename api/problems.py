"""Errors as RFC 9457 ``application/problem+json``, field by field.

Every error the API returns goes through :func:`problem`, so clients parse one shape:
``{type, title, status, detail, errors: {field: [messages]}, problems: [...]}``.
"""
from __future__ import annotations

import logging

from flask import current_app, json, make_response
from flask_smorest import Api
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from engine.lang.errors import FactError, RuleSetError
from engine.service.batch import FactConflict
from engine.service.state import NoEngineHere, NotReady, Standby
from engine.service.whatif import ReplayLimit
from engine.store.connection import one_line
from engine.store.store import DRIVER_ERRORS, DatabaseUnavailable, LeaseLost
from schemas.api import ProblemSchema

log = logging.getLogger("slm.api")
PROBLEM_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None, errors: dict | None = None,
            problems: list | None = None, headers: dict | None = None):
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    if problems is not None:
        body["problems"] = problems
    response = make_response(json.dumps(body), status, headers or {})
    response.mimetype = PROBLEM_TYPE
    return response


def flatten(messages, prefix: str = "") -> dict[str, list[str]]:
    """webargs' nested messages (``{"query": {"limit": [...]}}``) as ``{"query.limit": [...]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, (list, tuple)):
        if all(isinstance(m, str) for m in messages):
            return {prefix or "_body": list(messages)}
        for index, item in enumerate(messages):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    if not isinstance(messages, dict):
        return {prefix or "_body": [str(messages)]}
    for key, value in messages.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten(value, path))
    return out


def _invalid_facts(error: FactError):
    metrics = current_app.extensions.get("slm_metrics")
    if metrics is not None:
        metrics.facts.labels("rejected").inc()
    return problem(422, "Invalid facts", "nothing from this request was stored", errors=error.details)


def _lease_lost(error: LeaseLost):
    """Another process took the database over while this request was written: nothing of
    it was stored here, and this process stands by (engine.service.ownership)."""
    from .context import current_service
    retry = current_service().state.retry_after
    return problem(503, "Standby", f"{error}; nothing from this request was stored",
                   headers={"Retry-After": str(retry)})


DATABASE_RETRY_AFTER = 2       # seconds: about the store's longest backoff between connection attempts


def _database_unavailable(error: Exception):
    """The database could not be reached, or the connection broke under this request
    (engine/store/connection.py): the next request connects afresh. A write that met it
    may or may not be stored; retrying it is safe (facts are stored once per source and
    id), and the service rebuilds its engine from the store before its next write."""
    log.warning("database unavailable: %s", one_line(error))
    cause = str(error) if isinstance(error, DatabaseUnavailable) else f"database error: {one_line(error)}"
    return problem(503, "Database unavailable", f"{cause}; retry the request",
                   headers={"Retry-After": str(DATABASE_RETRY_AFTER)})


class SlmApi(Api):
    """flask-smorest's Api answering every error as problem details."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self):
        super()._register_error_handlers()
        app = self._app
        app.register_error_handler(FactError, _invalid_facts)
        app.register_error_handler(FactConflict, lambda e: problem(
            409, "Conflicting fact", "a fact with this source and id was stored before with another body; "
                                     "nothing from this request was stored", errors=e.details))
        app.register_error_handler(RuleSetError, lambda e: problem(
            422, "Invalid rule set", e.report().splitlines()[0] + " (the running rules stay in force)",
            problems=[p.as_dict() for p in e.problems]))
        app.register_error_handler(ReplayLimit, lambda e: problem(422, "Preview too large", str(e)))
        app.register_error_handler(NotReady, lambda e: problem(
            503, "Starting", f"rebuilding state from stored facts ({e.args[0]['replayed']} replayed so far)",
            headers={"Retry-After": "5"}))
        app.register_error_handler(NoEngineHere, lambda e: problem(503, "No engine on this node", str(e)))
        app.register_error_handler(Standby, lambda e: problem(
            503, "Standby", f"{e}; it takes writes once it owns the database (nothing from this request "
                            "was stored)", headers={"Retry-After": str(e.retry_after)}))
        app.register_error_handler(LeaseLost, _lease_lost)
        for error in (DatabaseUnavailable, *DRIVER_ERRORS):
            app.register_error_handler(error, _database_unavailable)

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        assert error.code is not None       # Flask returns an HTTPException without a code unhandled
        if error.code >= 500:
            log.error("%s: %s", error.name, error.description, exc_info=error.__cause__ or None)
        detail = data.get("message") or (error.description if error.code != 422 and not errors else
                                         "the request does not validate")
        headers = dict(data.get("headers") or {})
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(sorted(error.valid_methods))       # RFC 9110 §15.5.6
        return problem(error.code, error.name, detail,
                       errors=flatten(errors) if errors else None, headers=headers)
