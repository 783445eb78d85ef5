"""What a write decided: stored with its notifications, then announced once committed.

Inside the write's transaction, each decision is stored with its outbox entries
(engine.notify); after the commit, the delivery worker is handed the new notifications and
the listeners (the metrics) are told what the write did.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.clock import utcnow
from engine.notify.inhibit import Inhibitions
from engine.notify.retract import followups
from engine.notify.route import REVIEW_PACK, outbox_entries
from engine.notify.silence import Silence, SilenceCache, silence
from engine.service.feed import feed_global
from engine.service.state import ServiceState
from schemas.records import Decision

log = logging.getLogger("slm.service")


@dataclass
class Ingested:
    """What one write (an ingestion request, a clock tick) did, fact by fact."""

    results: list[dict] = field(default_factory=list)      # {id, source, status, decisions}
    decisions: list[dict] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    rejected: dict[int, dict[str, list[str]]] = field(default_factory=dict)   # partial: position -> why

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.results if r["status"] == "accepted")


class DecisionRecorder:
    """Stores decisions and their notifications; tells the delivery worker and the
    listeners of each committed write."""

    def __init__(self, state: ServiceState, delivery=None):
        self.state = state
        self.silences = SilenceCache()          # (used under the write lock only)
        # engine.notify.worker.DeliveryWorker, or None: notifications are stored, not sent
        self.delivery = delivery
        # the text of a monthly review pack's notifications (engine.service.reviewpack), if set
        self.pack_text: Callable[[Decision], str] | None = None
        self.listeners: list[Callable[[Ingested], None]] = []   # told of every write (metrics)

    def record(self, decisions: list[Decision]) -> list[tuple[dict, list[dict]]]:
        """Store decisions and their outbox entries (engine.notify: routed through the RACI
        matrix and an escalation's ``call``, muted if shadow, if an active silence matches or
        while an inhibition's source holds), and feed those of the kinds cross-partition
        Rules match to ``global`` (engine.service.feed); a retraction cancels the retracted decision's unsent
        notifications and follows up the ones sent. Each decision's record with its
        notifications' records. Call inside the write's transaction."""
        store = self.state.store
        stored = [d.as_dict() for d in decisions]
        store.add_decisions(stored)            # first: an inhibition may rest on one of them
        records = []
        silences: list[Silence] | None = None       # read once per write, and only if something notifies
        inhibitions = Inhibitions(self.state.ruleset, store)
        for decision, record in zip(decisions, stored, strict=True):
            if decision.kind == REVIEW_PACK and self.pack_text is not None and decision.activity:
                decision = dataclasses.replace(decision, notice=self.pack_text(decision))
            routed = outbox_entries(decision, self.state.ruleset)
            if routed:
                if silences is None:
                    now = self.state.now()
                    silences = [s for s in self.silences.read(store).values() if s.state(now) == "active"]
                routed = inhibitions.inhibit(decision, silence(decision, routed, silences, self.state.now()))
            records.append((record, [n.as_dict() for n in routed]))
        feed_global(store, decisions, self.state.scope.fed_kinds(self.state.ruleset))
        due = None
        if self.delivery is not None:            # outbox time is real time, whatever the engine's
            due = utcnow() + self.delivery.group_wait
        store.add_notifications([n for _, notes in records for n in notes], due=due)
        retractions = [(d, notes) for d, (_, notes) in zip(decisions, records, strict=True)
                       if d.kind == "retracted" and d.data.get("retracts")]
        if retractions:
            told = store.cancel_for([d.data["retracts"] for d, _ in retractions])
            for decision, notes in retractions:
                more = [n.as_dict() for n in followups(decision, told.get(decision.data["retracts"], []))]
                store.add_notifications(more, due=due)
                notes.extend(more)
        return records

    def announce(self, result: Ingested) -> None:
        """After the commit: hand the new notifications to the delivery worker, tell the
        listeners; a listener that fails does not fail the write."""
        if self.delivery is not None:            # committed: the worker may send them now
            self.delivery.handoff([n["id"] for n in result.notifications if n.get("status") == "pending"])
        for listener in self.listeners:
            try:
                listener(result)
            except Exception:
                log.exception("a listener failed (the write itself succeeded)")
