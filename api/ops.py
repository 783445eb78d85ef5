"""Liveness, readiness and Prometheus metrics: no token needed."""
from __future__ import annotations

import logging
import threading
import time

from flask import Blueprint, current_app, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from engine.clock import utcnow
from engine.service.state import API, OWNER, STANDBY
from engine.store.connection import one_line
from engine.store.models import DEFAULT_PARTITION
from engine.store.store import DRIVER_ERRORS, DatabaseUnavailable

from .context import current_service

disable_created_metrics()     # the *_created series only add noise to every counter

bp = Blueprint("ops", __name__)
WORKERS = "slm_workers"     # app.extensions: a worker's partitions (engine.service.workers), if it has a map
log = logging.getLogger("slm.metrics")


class Metrics:
    """The service's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self, service, workers=None):
        """``workers`` (engine.service.workers.PartitionWorkers): a worker's partitions,
        whose leases and lag are reported each by its partition; ``service`` is then the
        first of them."""
        services = list(workers.services.values()) if workers is not None else [service]
        self.registry = registry = CollectorRegistry()
        self.facts = Counter("slm_facts", "Facts received, by outcome", ["outcome"], registry=registry)
        self.decisions = Counter("slm_decisions", "Decisions recorded, by kind", ["kind"], registry=registry)
        self.notifications = Counter("slm_notifications", "Notifications recorded", registry=registry)
        self.latency = Histogram("slm_request_seconds", "Request latency by endpoint", ["endpoint", "method"],
                                 registry=registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        ready = Gauge("slm_ready", "1 once state is rebuilt and the service takes facts", registry=registry)
        ready.set_function(lambda: 1.0 if _ready(service, workers) else 0.0)
        clocks = Gauge("slm_next_deadline_seconds", "Seconds until the next clock deadline (-1: none)",
                       registry=registry)
        clocks.set_function(lambda: _seconds_until(service))
        labels = ["service", "target"]              # never the subject: cardinality stays the rule set's
        self.breaches = Counter("slm_target_breaches", "Breach decisions recorded, per target", labels,
                                registry=registry)
        self.met = Counter("slm_target_met", "Met decisions recorded, per target", labels, registry=registry)
        if service.state.node != API and workers is None:   # an API node has no clocks to report on,
            registry.register(TargetGauges(service))        # a worker's are split over its partitions
            registry.register(BurnRateGauges(service))
        if service.state.node != API:
            registry.register(EngineMetrics(services))
        if service.store.postgres:                  # only there do API nodes store facts for an owner
            registry.register(LagMetrics(service, services))
        self.delivered = Counter("slm_notifications_delivered",
                                 "Delivery attempts' outcomes, in notifications: sent, retrying (to be "
                                 "retried), failed, undeliverable", ["outcome"], registry=registry)
        for outcome in ("sent", "retrying", "failed", "undeliverable"):
            self.delivered.labels(outcome)
        queue = Gauge("slm_notification_queue", "Notifications pending or retrying", registry=registry)
        age = Gauge("slm_notification_queue_age_seconds",
                    "Age of the oldest notification pending or retrying (0: none)", registry=registry)
        stats = _QueueStats(service)
        queue.set_function(lambda: stats()["queued"])
        age.set_function(lambda: stats()["oldest_age"])
        for each in services:
            if each.delivery is not None:
                each.delivery.listeners.append(lambda outcome, count: self.delivered.labels(outcome).inc(count))
        owning = [each for each in services if each.ownership is not None]
        if owning:
            registry.register(LeaseMetrics(owning))

    def record(self, result) -> None:
        """Count one write of the service (an ingestion or a clock tick)."""
        accepted = result.accepted
        if accepted:
            self.facts.labels("accepted").inc(accepted)
        if len(result.results) > accepted:
            self.facts.labels("duplicate").inc(len(result.results) - accepted)
        for decision in result.decisions:
            self.decisions.labels(decision["kind"]).inc()
            if decision["kind"] in ("breach", "met") and decision.get("target") and not decision.get("shadow"):
                counter = self.breaches if decision["kind"] == "breach" else self.met
                counter.labels(decision.get("service") or "", decision["target"]).inc()
        if result.notifications:
            self.notifications.inc(len(result.notifications))


class EngineMetrics:
    """Failed writes: undone in the engine (engine.eval.undo), or followed by a rebuild of
    the engine from the store (where undoing could not be exact: the service is not ready
    while it rebuilds)."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        from prometheus_client.core import CounterMetricFamily
        yield CounterMetricFamily("slm_engine_writes_undone", "Failed writes undone in the engine",
                                  value=sum(s.state.undone for s in self.services))
        yield CounterMetricFamily("slm_engine_rebuilds", "Failed writes after which the engine was rebuilt "
                                  "from the store", value=sum(s.state.rebuilds for s in self.services))
        yield CounterMetricFamily("slm_snapshots_stored", "Engine snapshots stored",
                                  value=sum(s.keeper.snapshots.stored for s in self.services))
        yield CounterMetricFamily("slm_snapshots_failed", "Engine snapshots made beside the writer that were not "
                                  "stored (their process killed, their transaction failed)",
                                  value=sum(s.keeper.snapshots.failures for s in self.services))


class LeaseMetrics:
    """Whether this process owns each partition's lease, and how often it took one over (a
    database shared by owners and standbys; engine.service.ownership)."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        owner = GaugeMetricFamily("slm_lease_owner", "1 while this process owns the partition's lease and writes, "
                                  "0 while it stands by", labels=["partition"])
        takeovers = CounterMetricFamily("slm_lease_takeovers", "Times this process took the partition's lease "
                                        "(its first acquisition included)", labels=["partition"])
        for service in self.services:
            ownership = service.ownership
            owner.add_metric([ownership.partition], 1.0 if service.state.role == OWNER else 0.0)
            takeovers.add_metric([ownership.partition], ownership.takeovers)
        yield owner
        yield takeovers


class LagMetrics:
    """Facts stored but not evaluated yet (the evaluation lag, read from the database once
    per scrape) and, on a node that evaluates them, how many it evaluated and refused."""

    def __init__(self, service, services):
        self.service, self.services = service, services

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        pending = GaugeMetricFamily("slm_facts_pending", "Facts stored (by API nodes) and not evaluated yet by the "
                                    "partition's owner", labels=["partition"])
        try:
            counts = {DEFAULT_PARTITION: 0, **self.service.store.pending_counts()}
            for partition, count in sorted(counts.items()):
                pending.add_metric([partition], float(count))
        except Exception:            # a metrics scrape must not fail with the database
            pass
        yield pending
        backlogs = [(s.store.partition, s.backlog) for s in self.services if s.backlog is not None]
        if backlogs:
            evaluated = CounterMetricFamily("slm_facts_settled", "Facts stored by API nodes that this process "
                                            "evaluated (evaluated) or could not evaluate (refused)",
                                            labels=["outcome", "partition"])
            for partition, backlog in backlogs:
                evaluated.add_metric(["evaluated", partition], backlog.evaluated)
                evaluated.add_metric(["refused", partition], backlog.refused)
            yield evaluated


class TargetGauges:
    """This month's compliance and availability budget per target, from the same report as
    ``/v1/reports/compliance`` (ongoing outages counted to now), at most once per ``every``
    seconds. Only the first scrape computes them; later ones answer with the last figures
    and, once those are ``every`` old, have them recomputed in the background: a scrape
    never waits for the month's decisions to be read."""

    def __init__(self, service, every: float = 30.0, clock=time.monotonic):
        self.service, self.every, self.clock = service, every, clock
        self._cached: tuple[float, list] | None = None
        self._refreshing = threading.Lock()

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        rows = self._rows()
        compliance = GaugeMetricFamily("slm_target_compliance_ratio",
                                       "Share of this month's settled cycles that met the target (0-1)",
                                       labels=["service", "target"])
        budget = GaugeMetricFamily("slm_target_availability_budget_remaining_ratio",
                                   "Share of this month's downtime budget not yet used (availability and "
                                   "threshold targets; negative once breached)", labels=["service", "target"])
        for service, row in rows:
            if row["compliance"] is not None:
                compliance.add_metric([service, row["target"]], row["compliance"] / 100)
            if row["availability"] is not None and row["goal_ratio"] and row["goal_ratio"] < 1:
                used = (100 - row["availability"]) / 100 / (1 - row["goal_ratio"])
                budget.add_metric([service, row["target"]], 1 - used)
        yield compliance
        yield budget

    def _rows(self) -> list:
        service = self.service
        if not service.state.ready.is_set():
            return []
        now = self.clock()
        if self._cached is None:
            return self._refresh(now)
        if now - self._cached[0] >= self.every and self._refreshing.acquire(blocking=False):
            threading.Thread(target=self._refresh_apart, args=(now,), name="slm-metrics", daemon=True).start()
        return self._cached[1]

    def _refresh_apart(self, now: float) -> None:
        try:
            self._refresh(now)
        except Exception:
            log.exception("recomputing the per-target gauges failed (the last figures stay)")
        finally:
            self._refreshing.release()

    def _refresh(self, now: float) -> list:
        service = self.service
        period = service.now().strftime("%Y-%m")
        rows = []
        for sid in sorted(service.state.ruleset.services):
            for row in service.engine_reads.compliance(sid, period)["targets"]:
                if row["shadow"]:
                    continue
                target = service.state.ruleset.targets[row["target"]]
                ratio = float(target.goal) if target.measure != "duration" else None
                rows.append((sid, {**row, "goal_ratio": ratio}))
        self._cached = (now, rows)
        return rows


class BurnRateGauges:
    """The burn rate of every error budget now, per window read (the budget's own, each
    burn-rate level's long and short window, the forecast's look-back), from the clocks read
    model at each scrape: a few series per target, never waiting for the write lock."""

    def __init__(self, service):
        self.service = service

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        gauge = GaugeMetricFamily("slm_target_burn_rate", "Error budget burn rate per window: the window's bad share "
                                  "over 1 - goal (1 spends the budget exactly over the window)",
                                  labels=["service", "target", "window"])
        state = self.service.state
        rates: dict[tuple[str, str, str], float] = {}
        if state.ready.is_set():
            for clock, reading in state.readmodel.view.budgets(state.now()):
                if not clock.shadow:          # (key order: a target's latest calendar window last)
                    for window, rate in reading["burn_rates"].items():
                        rates[(clock.service, clock.target, window)] = rate
        for labels, rate in rates.items():
            gauge.add_metric(list(labels), rate)
        yield gauge


class _QueueStats:
    """The outbox's queue, read once per scrape (both gauges share the reading)."""

    def __init__(self, service):
        self.service, self.read_at, self.value = service, 0.0, {"queued": 0, "oldest_age": 0.0}

    def __call__(self) -> dict:
        if time.monotonic() - self.read_at > 1.0:
            try:
                self.value = self.service.store.queue_stats(utcnow())
            except Exception:         # a metrics scrape must not fail with the database
                pass
            self.read_at = time.monotonic()
        return self.value


def _seconds_until(service) -> float:
    ready = service.state.ready.is_set()
    deadline = service.engine_reads.clock_view().next_deadline if ready else None   # no write lock
    return -1.0 if deadline is None else max((deadline - service.now()).total_seconds(), 0.0)


def _ready(service, workers) -> bool:
    return workers.status()["status"] == "ready" if workers is not None else service.state.ready.is_set()


@bp.route("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """Ready (200), or 503: starting (rebuilding its state), or a standby (another process
    owns the database; ``lease`` says which and until when), or the database does not
    answer (``database`` says why; every probe asks it with ``SELECT 1``, and waits for
    the answer a few seconds at most: engine.store.probe)."""
    service = current_service()
    state = service.state
    try:
        service.store.probe()
    except (DatabaseUnavailable, *DRIVER_ERRORS) as error:
        return jsonify({"status": "unavailable", **state.progress(), "ready": False,
                        "database": one_line(error), "ruleset": state.ruleset.version}), 503
    workers = current_app.extensions.get(WORKERS)
    if workers is not None:                 # a worker's partitions, each owned or stood by on its own
        body = {"node": state.node, "ruleset": state.ruleset.version, **workers.status()}
        return jsonify(body), 200 if body["status"] == "ready" else 503
    ownership = state.ownership()
    standby = ownership is not None and ownership["role"] == STANDBY
    ready = state.ready.is_set() and not standby
    status = "ready" if ready else "standby" if standby else "starting"
    body = {"status": status, "node": state.node, **state.progress(), "ruleset": state.ruleset.version,
            **(ownership or {})}
    if standby:
        body["ready"] = False
    return jsonify(body), 200 if ready else 503


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
