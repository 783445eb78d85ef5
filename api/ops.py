"""Liveness, readiness and Prometheus metrics: no token needed."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, g, jsonify, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)

disable_created_metrics()     # the *_created series only add noise to every counter

bp = Blueprint("ops", __name__)


class Metrics:
    """The service's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self, service):
        self.registry = registry = CollectorRegistry()
        self.facts = Counter("slm_facts", "Facts received, by outcome", ["outcome"], registry=registry)
        self.decisions = Counter("slm_decisions", "Decisions recorded, by kind", ["kind"], registry=registry)
        self.notifications = Counter("slm_notifications", "Notifications recorded", registry=registry)
        self.latency = Histogram("slm_request_seconds", "Request latency by endpoint", ["endpoint", "method"],
                                 registry=registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        ready = Gauge("slm_ready", "1 once state is rebuilt and the service takes facts", registry=registry)
        ready.set_function(lambda: 1.0 if service.ready.is_set() else 0.0)
        clocks = Gauge("slm_next_deadline_seconds", "Seconds until the next clock deadline (-1: none)",
                       registry=registry)
        clocks.set_function(lambda: _seconds_until(service))

    def record(self, result) -> None:
        """Count one write of the service (an ingestion or a clock tick)."""
        accepted = result.accepted
        if accepted:
            self.facts.labels("accepted").inc(accepted)
        if len(result.results) > accepted:
            self.facts.labels("duplicate").inc(len(result.results) - accepted)
        for decision in result.decisions:
            self.decisions.labels(decision["kind"]).inc()
        if result.notifications:
            self.notifications.inc(len(result.notifications))


def _seconds_until(service) -> float:
    deadline = service.next_deadline() if service.ready.is_set() else None
    return -1.0 if deadline is None else max((deadline - service.now()).total_seconds(), 0.0)


@bp.route("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    service = current_app.extensions["slm"]
    body = {"status": "ready" if service.ready.is_set() else "starting", **service.progress(),
            "ruleset": service.ruleset.version}
    return jsonify(body), 200 if service.ready.is_set() else 503


@bp.route("/metrics")
def metrics():
    return generate_latest(current_app.extensions["slm_metrics"].registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def start_timer():
    g.started = time.perf_counter()


def observe(response):
    started = g.pop("started", None)
    if started is not None and request.url_rule is not None:
        current_app.extensions["slm_metrics"].latency.labels(request.url_rule.rule, request.method).observe(
            time.perf_counter() - started)
    return response
