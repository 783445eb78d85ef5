"""Reads that need the live engine: the running clocks, the compliance report and service
review, a clock's timeline.

Each says which way it reaches the engine: the clocks and the report's window readings
come from the read model the writer publishes after each commit and never wait for the
write lock; the review's window figures, a clock's timeline and the posted maintenance of
a report copy a clock's transitions from the engine, under the write lock. So they are
answered only by the process that holds the engine; a standby refuses them (Standby).
"""
from __future__ import annotations

from datetime import datetime

from engine.eval.clock import month_span
from engine.service.clockview import ClockView
from engine.service.reports import UnknownName, compliance, customers
from engine.service.restatements import in_force as restated_months
from engine.service.review import review as review_targets
from engine.service.state import API, NoEngineHere, ServiceState
from engine.service.storereads import StoreReads
from engine.service.timeline import build as build_timeline
from engine.service.waivers import in_effect
from engine.store.base import every
from schemas.values import format_instant, report_months


class EngineReads:
    """The clocks and the reports over them, read from the engine or its read model."""

    def __init__(self, state: ServiceState, stored: StoreReads):
        self.state, self.stored = state, stored

    def clock_view(self) -> ClockView:
        """The clocks as the last committed write left them (the read model the engine's
        writer publishes); never waits for the write lock."""
        return self.state.readmodel.view

    def clocks(self, service: str | None = None, target: str | None = None,
               subject: str | None = None) -> list[dict]:
        """Running clocks now (at the wall clock), optionally of one service, target or subject:
        read from the clocks read model, never under the write lock."""
        return self.clock_page(service, target, subject)[0]

    def clock_page(self, service: str | None = None, target: str | None = None, subject: str | None = None,
                   limit: int | None = None) -> tuple[list[dict], int]:
        """The first ``limit`` running clocks (in key order) of :meth:`clocks`, and how many run."""
        state = self.state
        if state.node == API:
            raise NoEngineHere("reading the running clocks")
        state.require_ready()
        now = state.now()
        as_of = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        clocks, total = state.readmodel.view.page(now, service, target, subject, limit)
        for clock in clocks:
            clock["as_of"] = as_of
        return clocks, total

    def budgets(self, service: str | None = None) -> list[dict]:
        """Every running error budget now (optionally of one service), in clock key order:
        its ``error_budget`` as ``GET /v1/clocks`` shows it and its burn-down over the window
        (engine.eval.budget.BudgetReader.burn_down), read from the clocks read model."""
        state = self.state
        if state.node == API:
            raise NoEngineHere("reading the error budgets")
        state.require_ready()
        view = state.readmodel.view
        now = state.now()
        at = view.reading_instant(now)
        out = []
        for clock, reading in view.budgets(now):
            if service is not None and clock.service != service:
                continue
            frozen = clock.error_budget
            assert frozen is not None          # (view.budgets gives only clocks that keep one)
            out.append({"clock": clock.key, "target": clock.target, "service": clock.service,
                        "shadow": clock.shadow, "at": at, "error_budget": reading,
                        "burn_down": frozen.burn_down(at), "look_ahead": frozen.look_ahead(at)})
        return out

    def reading_instant(self) -> datetime:
        """The instant readings are taken at: the wall clock, but not past a deadline that
        is due and not fired yet (the scheduler is about to fire it; a reading beyond it
        would count time the engine has not decided on). Call under the write lock."""
        now = self.state.now()
        engine = self.state.engine
        deadline = engine.next_deadline() if engine else None
        return min(now, deadline) if deadline else now

    def compliance(self, service: str, period: str, customer: str | None = None) -> dict:
        """The compliance report for one service over a month or a range of months, of one
        customer's agreements if ``customer`` is given (UnknownName for an unknown service or
        customer, ValueError for a period that is not one): the decisions from the store,
        the window readings from the read model, and the posted maintenance (of targets that
        exclude it) from the engine."""
        state, stored = self.state, self.stored
        if state.node == API:                      # no clocks to read windows from here
            raise NoEngineHere("the compliance report")
        state.require_owner()                      # nor on a standby
        ruleset = state.ruleset
        if service not in ruleset.services:
            raise UnknownName("service", f"unknown service {service!r} "
                                         f"(services: {', '.join(sorted(ruleset.services))})")
        if customer is not None and customer not in customers(ruleset):
            named = ", ".join(repr(c) for c in sorted(customers(ruleset))) or "none"
            raise UnknownName("customer", f"no agreement in force names the customer {customer!r} "
                                          f"(customers: {named})")
        months = report_months(period)
        start, end = month_span(months[0])[0], month_span(months[-1])[1]
        decisions = stored.month_decisions(service, start, end)
        spanned = [{"version": v["version"], "from": format_instant(v["at"])} for v in stored.versions_in(start, end)]
        view = state.readmodel.view              # window readings from the read model: no write lock
        at = view.reading_instant(state.now())
        window = (lambda target, label: view.window_reading(target, label, at)) if view.ruleset else None
        return compliance(ruleset, decisions, service, period, window, spanned, state.versions.get,
                          lambda target, a, b: self._posted_maintenance(target, a, b, at), customer,
                          in_effect(state.store.waivers()),
                          restated_months(state.store.restatements(service=service)),
                          lambda target, label: self._down_spans(target, label, at))

    def _down_spans(self, target: str, label: str, at) -> list | None:
        """When a window counted down time (asked only for a target with a waived period in
        the month): read from the engine's transitions, under the write lock."""
        with self.state.write_lock:
            engine = self.state.engine
            return engine.window_down_spans(target, label, at) if engine else None

    def _posted_maintenance(self, target: str, start, end, at) -> list:
        """Posted maintenance windows of a target's window clocks (asked only for targets that
        exclude maintenance): read from the engine's transitions, under the write lock."""
        with self.state.write_lock:
            engine = self.state.engine
            return engine.maintenance_spans(target, start, end, at) if engine else []

    def review(self, service: str, period: str) -> dict:
        """The compliance report with the figures of a service review (engine.service.review);
        each target's window figures from the engine, under the write lock."""
        state = self.state
        report = self.compliance(service, period)
        start, end = month_span(period)
        decisions = self.stored.month_decisions(service, start, end)
        windows = {}
        with state.write_lock:
            now = self.reading_instant()
            for row in report["targets"]:
                record = state.engine.window_record(row["target"], period) if state.engine else None
                if record is not None:
                    windows[row["target"]] = ([(t.at, t.action, t.fact, t.subject) for t in record.transitions],
                                              record.clock.budget, now)
        return {**report, "targets": review_targets(state.ruleset, decisions, report, windows)}

    def clock_timeline(self, target_id: str, subject: str):
        """The timeline of clock ``<target>/<subject>`` (engine.service.timeline); None if the
        target is unknown or nothing about this clock is known. The clock's transitions come
        from the engine, under the write lock; its decisions (and facts) from the store."""
        state = self.state
        if state.node == API:
            raise NoEngineHere("a clock's timeline")
        state.require_owner()
        target = state.ruleset.targets.get(target_id)
        if target is None:
            return None
        with state.write_lock:
            now = self.reading_instant()
            record = state.engine.clock_record(f"{target_id}/{subject}") if state.engine else None
            transitions = None if record is None else [(t.at, t.action, t.fact, t.subject)
                                                       for t in record.transitions]
        decisions = state.store.with_retractions(list(every(state.store.list_decisions, target=target_id,
                                                            subject=subject)))
        facts = []
        if transitions is None and target.measure == "duration":
            facts = [item["fact"] for item in every(state.store.list_facts, subject=subject,
                                                     service=target.service)]
        return build_timeline(target, subject, now, transitions, decisions, facts)
