"""The Flask application: wires the service (engine + store) to HTTP.

``create_app(service)`` takes a started or starting :class:`engine.service.SlmService`;
the app itself holds no state of its own beyond metrics.
"""
from __future__ import annotations

import swagger_ui_bundle
from flask import Flask, send_from_directory

from engine.notify.acklink import AckLinks
from engine.service.live import SlmService
from engine.service.state import WORKER
from engine.service.workers import PartitionWorkers
from schemas.api import WAIVER_FORMS
from schemas.facts import FACT_VALUE, FactSchema, FactTime
from schemas.limits import MAX_BODY

from . import ack, document, explain, facts, ops, records, restatements, rules, silences, ui, waivers
from .auth import BASIC_SCHEME, SECURITY_SCHEME, TokenCache
from .context import EXTENSION
from .document import API_VERSION
from .problems import PROBLEM_TYPE, SlmApi
from .throttle import REFUSALS_BEFORE_SLOWING, RefusalThrottle

DOCS_ASSETS = "/docs/assets/"      # Swagger UI served from the installed package: no CDN needed


def create_app(service: SlmService, *, alert_service_label: str = "service", max_body: int = MAX_BODY,
               secret_key: str | None = None, cookie_secure: bool = False,
               workers: PartitionWorkers | None = None,
               slow_after: int = REFUSALS_BEFORE_SLOWING, ack_links: AckLinks | None = None) -> Flask:
    """The WSGI app over ``service``. ``secret_key`` signs the console's cookies (made per
    process if None); ``cookie_secure`` marks them Secure even on plain http (behind a
    TLS-terminating proxy). ``workers``: a worker's partitions (``service`` is the first of
    them), whose readiness and metrics the app reports. ``slow_after``: refused fact
    requests in a row before a token is slowed (api/throttle.py; 0: never). ``ack_links``:
    signs the links that acknowledge escalations from their messages (api/ack.py)."""
    app = Flask("slm", static_folder=None)     # the console serves its own assets (api/ui)
    app.config.update(
        API_TITLE="slm — Service Level Management policy service",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=DOCS_ASSETS,
        MAX_CONTENT_LENGTH=max_body,            # 413 before reading more (api/body.py)
        SLM_ALERT_SERVICE_LABEL=alert_service_label,
        JSON_SORT_KEYS=False,
        SECRET_KEY=secret_key,
        SESSION_COOKIE_SECURE=cookie_secure,
    )
    app.extensions[EXTENSION] = service
    app.extensions["slm_tokens"] = TokenCache(service.store.digest_grant)
    app.extensions[facts.THROTTLE] = RefusalThrottle(service.now, after=slow_after)
    metrics = ops.Metrics(service, workers)
    app.extensions["slm_metrics"] = metrics
    for each in workers.services.values() if workers is not None else [service]:
        each.recorder.listeners.append(metrics.record)
    if workers is not None:
        app.extensions[ops.WORKERS] = workers
    if service.state.node == WORKER:           # serves no API: health, readiness and metrics only
        app.register_blueprint(ops.bp)
        return app

    api = SlmApi(app, spec_kwargs={"info": {"description": __doc__.strip().splitlines()[0]}})
    api.spec.components.security_scheme("bearerAuth", SECURITY_SCHEME)
    api.spec.components.security_scheme("basicAuth", BASIC_SCHEME)
    api.register_field(FactTime, "string", "date-time")
    api.ma_plugin.converter.add_attribute_function(document.dict_lengths)
    api.spec.components.schema("FactValue", FACT_VALUE)
    api.spec.components.schema("Fact", schema=FactSchema)
    for blueprint in (facts.blp, explain.blp, records.blp, rules.blp, silences.blp, waivers.blp, restatements.blp):
        api.register_blueprint(blueprint)
    for response in api.spec.components.responses.values():   # errors are problem details (RFC 9457)
        if "application/json" in response.get("content", {}):
            response["content"] = {PROBLEM_TYPE: response["content"].pop("application/json")}
    spec = api.spec.to_dict()
    spec["components"]["schemas"]["WaiverRequest"]["oneOf"] = WAIVER_FORMS     # what OpenAPI 3.0 says with oneOf
    document.serve(app, spec)                          # per rule set, from the rules in force
    app.register_blueprint(ops.bp)
    app.add_url_rule(DOCS_ASSETS + "<path:filename>", "docs_assets",
                     lambda filename: send_from_directory(swagger_ui_bundle.swagger_ui_path, filename))
    ui.register(app, service.store)
    app.extensions[ack.LINKS] = ack_links
    app.register_blueprint(ack.bp)
    app.before_request(ops.start_timer)
    app.after_request(ops.observe)
    return app

