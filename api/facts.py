"""Facts in: plain JSON, CloudEvents (structured, batch, binary), Alertmanager webhooks and
any tool's webhook through a ``kind: Mapping`` of the rules.

Every form becomes a list of fact objects that the service validates as a whole before
storing any of them.
"""
from __future__ import annotations

import functools
from urllib.parse import unquote

from flask import current_app, g, request
from flask_smorest import abort

from engine.webhooks.signatures import SignatureError, verify
from engine.webhooks.translate import translate
from schemas.alertmanager import WebhookSchema, alert_facts, alert_field
from schemas.api import (
    AlertIngestResponseSchema,
    FactArgs,
    FactPageSchema,
    IngestArgs,
    IngestResponseSchema,
    MappingIngestResponseSchema,
)
from schemas.limits import MAX_BATCH

from .auth import MONITOR, READER, refuse_foreign_sources, requires
from .body import BoundedBlueprint, parse, read_json
from .context import current_service
from .filters import check_known

blp = BoundedBlueprint("facts", __name__, url_prefix="/v1",
                       description="Facts posted by monitoring and ticketing tools")

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
CE_HEADER = "ce-"
FACTS = {"type": "array", "items": {"$ref": "#/components/schemas/Fact"}, "minItems": 1, "maxItems": MAX_BATCH}
FACT_BODY = {
    "required": True,
    "description": "One fact, a JSON array of facts, a CloudEvent (structured mode, "
                   f"`{STRUCTURED}`), a batch (`{BATCH}`), or binary mode (`ce-*` headers, data as body).",
    "content": {
        "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Fact"}, FACTS]}},
        STRUCTURED: {"schema": {"$ref": "#/components/schemas/Fact"}},
        BATCH: {"schema": FACTS},
    },
}


THROTTLE = "slm_refusals"
SLOWED = {429: {"description": "this token's facts were refused many times in a row; retry after "
                               "`Retry-After` seconds (api/throttle.py)"}}


def unless_slowed(view):
    """429 with ``Retry-After`` before anything of the request is read, if its token has
    had too many refusals in a row (api/throttle.py)."""

    @functools.wraps(view)
    def slowed(*args, **kwargs):
        wait = current_app.extensions[THROTTLE].wait(g.grant.name)
        if wait is not None:
            abort(429, message=f"the facts of token {g.grant.name!r} were refused many times in a row; "
                               f"retry in {wait} s (nothing from this request was read)",
                  headers={"Retry-After": str(wait)})
        return view(*args, **kwargs)
    return slowed


@blp.after_request
def _count_refusals(response):
    """A fact request answered 4xx counts against its token (not 401: no token; nor 429)."""
    grant = g.get("grant")
    if grant is not None and request.method == "POST" and response.status_code not in (401, 429):
        current_app.extensions[THROTTLE].note(grant.name, 400 <= response.status_code < 500)
    return response


@blp.route("/facts", methods=["POST"])
@requires(blp, MONITOR)
@blp.arguments(IngestArgs, location="query", as_kwargs=True)
@unless_slowed
@blp.doc(requestBody=FACT_BODY, responses=SLOWED)
@blp.response(200, IngestResponseSchema)
@blp.alt_response(202, schema=IngestResponseSchema, description="Stored; some facts are not evaluated yet "
                  "(an API node, `--role api`, answered before the partition's owner evaluated them)")
def post_facts(wait=None):
    """Post facts; each is stored and evaluated once (a repeated source+id is a duplicate).

    A node that evaluates facts itself answers with what they decided. An API node (`--role
    api`) stores them for the partition's owner and answers 202 at once, or, with `?wait=`,
    once the owner evaluated them (200) or the wait ran out (202)."""
    refuse_foreign_sources(facts := _facts_of_request())
    answer = _answer(current_service().facts.ingest(facts, wait=wait))
    pending = any(not entry.get("evaluated", True) for entry in answer["results"])
    return answer, 202 if pending else 200


@blp.route("/ingest/alertmanager", methods=["POST"])
@requires(blp, MONITOR)
@unless_slowed
@blp.doc(responses=SLOWED)
@blp.arguments(WebhookSchema, location="json")
@blp.response(200, AlertIngestResponseSchema)
def post_alertmanager(payload):
    """Alertmanager webhook receiver (payload version 4): each alert becomes a fact.

    The group's alerts are placed one by one: the good ones are stored, and those that could
    not be placed (not a valid alert, an unknown service label, too late, …) are listed in
    ``rejected`` with the reasons per field, in a 200, since Alertmanager does not retry a
    4xx and a refusal would lose the good alerts too. Only a payload that is no version 4
    webhook is refused (422)."""
    label = current_app.config["SLM_ALERT_SERVICE_LABEL"]
    facts, origins, bad = alert_facts(payload, label)
    if facts:
        refuse_foreign_sources(facts)          # the token's limits: a 403 for the whole group
        outcome = current_service().facts.ingest(facts, partial=True)
        answer = _answer(outcome)
    else:
        answer, outcome = {"accepted": 0, "duplicates": 0, "results": [], "decisions": []}, None
    for position, problems in (outcome.rejected if outcome else {}).items():
        resolved = facts[position]["type"] == "alert.resolved"
        bad[origins[position]] = {alert_field(name, resolved, label): why for name, why in problems.items()}
    answer["rejected"] = [{"alert": index, "fingerprint": _fingerprint(payload["alerts"][index]), "errors": bad[index]}
                          for index in sorted(bad)]
    if bad:
        _metrics_rejected(len(bad))
    return answer


@blp.route("/ingest/<string:mapping>", methods=["POST"])
@requires(blp, MONITOR, basic=True)
@unless_slowed
@blp.doc(requestBody={"required": True, "description": "the tool's webhook payload, as it sends it",
                      "content": {"application/json": {"schema": {}}}},
         responses={**SLOWED, 404: {"description": "no mapping of this name in the rules in force"}})
@blp.response(200, MappingIngestResponseSchema)
@blp.alt_response(202, schema=MappingIngestResponseSchema, description="Stored; some facts are not evaluated yet "
                  "(an API node, `--role api`, answered before the partition's owner evaluated them)")
def post_mapped(mapping):
    """A tool's webhook, turned into facts by the rules' ``kind: Mapping`` of that name
    (docs/RULES.md, "Webhook mappings"); its signature verified first (401 if bad, nothing
    stored). The facts are stored as posted ones are, all or nothing; a payload that maps
    to no fact is answered 200 with the reasons."""
    found = current_service().state.ruleset.mappings.get(mapping)
    if found is None:
        abort(404, message=f"no mapping {mapping!r} in the rules in force")
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        abort(415, message=f"send the webhook as JSON (application/json), not {request.mimetype or 'no content type'}")
    raw = request.get_data(cache=False)
    if found.signature is not None:
        try:
            verify(found.signature, {k.lower(): v for k, v in request.headers.items()}, raw,
                   current_service().state.now())
        except SignatureError as err:
            abort(401, message=f"bad signature for mapping {mapping!r}: {err}; nothing from this request was stored")
    translation = translate(found, parse(raw))
    if not translation.facts:
        return {"mapping": mapping, "accepted": 0, "duplicates": 0, "results": [], "decisions": [],
                "reasons": translation.reasons}
    refuse_foreign_sources(translation.facts)
    answer = _answer(current_service().facts.ingest(translation.facts))
    pending = any(not entry.get("evaluated", True) for entry in answer["results"])
    return {"mapping": mapping, **answer, "reasons": translation.reasons}, 202 if pending else 200


def _fingerprint(alert) -> str | None:
    value = alert.get("fingerprint") if isinstance(alert, dict) else None
    return value if isinstance(value, str) else None


def _metrics_rejected(count: int) -> None:
    metrics = current_app.extensions.get("slm_metrics")
    if metrics is not None:
        metrics.facts.labels("rejected").inc(count)


@blp.route("/facts", methods=["GET"])
@requires(blp, READER)
@blp.arguments(FactArgs, location="query")
@blp.response(200, FactPageSchema)
def list_facts(args):
    """Stored facts, oldest first, with the decisions each caused; each as stored, its time
    in UTC and ``time_posted`` the string as posted (facts stored before it was kept have none)."""
    check_known(args)
    limit, cursor = args.pop("limit"), args.pop("cursor", None)
    items, after = current_service().store.list_facts(**args, cursor=cursor, limit=limit)
    return {"items": items, "next": after}


def _answer(outcome) -> dict:
    return {"accepted": outcome.accepted, "duplicates": len(outcome.results) - outcome.accepted,
            "results": outcome.results, "decisions": outcome.decisions}


def _facts_of_request() -> list:
    """The posted facts as a list of objects, from whichever content mode was used."""
    if any(name.lower().startswith(CE_HEADER) for name in request.headers.keys()):
        return [_binary_event()]
    body = _json_body()
    mimetype = request.mimetype
    if mimetype == STRUCTURED and not isinstance(body, dict):
        abort(400, message=f"{STRUCTURED} carries one event as a JSON object")
    if mimetype == BATCH and not isinstance(body, list):
        abort(400, message=f"{BATCH} carries a JSON array of events")
    return body if isinstance(body, list) else [body]


def _json_body():
    if request.mimetype not in ("application/json", STRUCTURED, BATCH) and not request.mimetype.endswith("+json"):
        abort(415, message=f"send JSON (application/json, {STRUCTURED} or {BATCH}), "
                           f"not {request.mimetype or 'no content type'}")
    return read_json()


def _binary_event() -> dict:
    """CloudEvents binary mode: attributes in ``ce-*`` headers, the data as the body."""
    event = {}
    for name, value in request.headers.items():
        if name.lower().startswith(CE_HEADER) and len(name) > len(CE_HEADER):
            try:            # percent-encoding of UTF-8 (CloudEvents HTTP binding, 3.1.3.2)
                event[name[len(CE_HEADER):].lower()] = unquote(value, errors="strict")
            except UnicodeDecodeError as err:
                abort(400, message=f"header {name} is not percent-encoded UTF-8 (byte {err.object[err.start]:#04x} "
                                   "at its place); nothing from this request was stored",
                      errors={f"header.{name.lower()}": [f"{value!r} does not decode as UTF-8"]})
    raw = request.get_data(cache=False)
    if raw:
        # no Content-Type: the CloudEvents spec reads absent datacontenttype as JSON (and the
        # official SDK sends binary mode so by default)
        if request.mimetype and request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
            abort(415, message="binary-mode data must be JSON (Content-Type: application/json)")
        event["data"] = parse(raw, "the body (the event's data)")
    return event


