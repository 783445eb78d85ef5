"""Facts in on an API node (``slm serve --role api``), which holds no engine: validated
and checked against the store as the owner checks them, then stored for the partition's
owner to evaluate (engine.service.backlog).

The answer gives each fact's fate as far as it is known: ``accepted`` (stored now, with
its ``seq``), ``duplicate`` (stored before; its decisions, if it was evaluated) or, in a
partial request, set aside. With ``wait`` the node waits, up to that long, for the owner
to evaluate the facts and lists their decisions as the owner would have; facts that are
still pending when the wait runs out are marked ``evaluated: false``.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from engine.lang.errors import FactError
from engine.lang.partitions import PartitionError, PartitionMap
from engine.service.batch import Job, refuse_conflicts, refuse_late, sift
from engine.service.lateness import DEFAULT_MAX_LATENESS, NewestTimes
from engine.service.recorder import Ingested
from engine.service.state import ServiceState
from engine.service.validation import DEFAULT_SKEW, fact_field, validate_facts
from engine.store.facts import DECIDED_CHANNEL
from engine.store.listen import Listener
from schemas.facts import stored_fact

log = logging.getLogger("slm.service")

MAX_WAIT = timedelta(seconds=30)   # ?wait= at most this long
RULES_CHECK_SECONDS = 5.0          # how often the rule set the owner put in force is looked up
POLL_SECONDS = 0.5                 # a notification may be lost: look again at least this often


class FactIntake:
    """Stores posted facts unevaluated; optionally waits for their outcome."""

    def __init__(self, state: ServiceState, *, skew: timedelta = DEFAULT_SKEW,
                 max_lateness: timedelta | None = DEFAULT_MAX_LATENESS, partitions: PartitionMap | None = None):
        self.state = state
        self.partitions = partitions or PartitionMap.single()    # where each fact's owner is
        self.skew, self.max_lateness = skew, max_lateness
        self.newest = NewestTimes(state.store.newest_fact_times)
        self.settled = Settled(state)
        self._rules_checked = float("-inf")

    def validate(self, raws: list) -> list[dict]:
        self._follow_rules()
        facts = validate_facts(raws, self.state.ruleset, self.state.now, self.skew)
        unplaced: dict[str, list[str]] = {}
        for index, fact in enumerate(facts):        # the partition whose owner evaluates it
            try:
                self.partitions.partition_of(fact.get("service"))
            except PartitionError as err:
                unplaced[fact_field(index, len(facts), "service")] = [str(err)]
        if unplaced:
            raise FactError(unplaced)
        return facts

    def _follow_rules(self) -> None:
        """Validate against the rule set the owner last put in force (the newest cut-over),
        looked up every few seconds: a reload on the owner reaches every API node."""
        now = time.monotonic()
        if now - self._rules_checked < RULES_CHECK_SECONDS:
            return
        self._rules_checked = now
        state = self.state
        cutovers = state.store.cutovers()
        if cutovers and cutovers[-1]["ruleset"] != state.ruleset.version:
            ruleset = state.versions.get(cutovers[-1]["ruleset"])
            if ruleset is not None:
                log.info("validating against rule set %s…, put in force by the owner", ruleset.version[:19])
                state.ruleset = ruleset

    def queued(self) -> int:
        return 0                               # nothing waits for a write lock here

    def ingest(self, raws: list, partial: bool = False, wait: timedelta | None = None) -> Ingested:
        """Validate all, refuse conflicts and late facts as the owner would, and store the
        new ones (all or nothing, but for a ``partial`` request's facts set aside)."""
        self.state.require_ready()
        job = sift(raws, self.validate) if partial else Job(self.validate(raws))
        store = self.state.store
        with store.transaction():
            stored = store.find_fact_records({(f["source"], f["id"]) for f in job.facts})
            known = {key: outcome for key, (outcome, _) in stored.items()}
            refuse_late(refuse_conflicts([job], stored), known, self.newest, self.max_lateness)
            if job.error is not None:
                raise job.error
            fresh, seen = [], set(known)
            for fact in job.facts:
                key = (fact["source"], fact["id"])
                if key not in seen:
                    seen.add(key)
                    fresh.append(fact)
            seqs: dict[tuple[str, str], int] = {}
            for partition, facts in self._by_partition(fresh).items():
                seqs.update(store.add_pending_facts([stored_fact(f) for f in facts], partition=partition,
                                                    known=set(known)))
            seqs.update(store.fact_seqs([key for key in known if key not in seqs]))
        result = Ingested(rejected=dict(sorted(job.set_aside.items())))
        new = set(seqs) - set(known)
        firsts: set[tuple[str, str]] = set()
        for fact in job.facts:
            key = (fact["source"], fact["id"])
            fresh_here = key in new and key not in firsts
            firsts.add(key)
            outcome = known.get(key)
            result.results.append({"id": fact["id"], "source": fact["source"], "seq": seqs.get(key),
                                   "status": "accepted" if fresh_here else "duplicate",
                                   "decisions": list(outcome or []), "evaluated": outcome is not None})
        for fact in fresh:
            if fact["subject"] is not None:
                self.newest.note(fact["subject"], fact["time"])
        if wait:
            self.settled.fill(result, min(wait, MAX_WAIT))
        return result

    def _by_partition(self, facts: list[dict]) -> dict[str, list[dict]]:
        """The facts grouped by the partition whose owner evaluates them, in order."""
        grouped: dict[str, list[dict]] = {}
        for fact in facts:
            grouped.setdefault(self.partitions.partition_of(fact.get("service")), []).append(fact)
        return grouped


class Settled:
    """Waits for the owner to settle stored facts, woken by ``NOTIFY slm_decided`` (one
    listening thread per process, started on first use) and polling the store."""

    def __init__(self, state: ServiceState):
        self.state = state
        self._changed = threading.Condition()
        self._listening: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def fill(self, result: Ingested, wait: timedelta) -> None:
        """Wait up to ``wait`` for every fact of ``result`` to be evaluated (or refused) and
        fill in what the owner decided."""
        entries = {entry["seq"]: entry for entry in result.results if not entry["evaluated"] and entry["seq"]}
        waited = list(entries.values())       # their decisions are listed, as a node that evaluates lists them
        if not entries:
            return
        self._listen()
        store = self.state.store
        deadline = time.monotonic() + wait.total_seconds()
        while True:
            states = store.fact_states(list(entries))
            for seq, found in states.items():
                if found["refused"] is not None:
                    entries[seq].update(status="refused", evaluated=True, reasons=[found["refused"]])
                elif found["pseq"] is not None:
                    entries[seq].update(evaluated=True, decisions=list(found["outcome"] or []))
            entries = {seq: entry for seq, entry in entries.items() if not entry["evaluated"]}
            left = deadline - time.monotonic()
            if not entries or left <= 0:
                break
            with self._changed:
                self._changed.wait(min(left, POLL_SECONDS))
        ids = [d for entry in waited for d in entry["decisions"]]
        found_decisions = store.decisions_by_id(ids)
        result.decisions = [found_decisions[d] for d in dict.fromkeys(ids) if d in found_decisions]

    def _listen(self) -> None:
        with self._start_lock:
            if self._listening is None or not self._listening.is_alive():
                self._listening = threading.Thread(target=self._run, name="slm-decided", daemon=True)
                self._listening.start()

    def _run(self) -> None:
        listener = Listener(self.state.store.db, (DECIDED_CHANNEL,))
        try:
            while True:
                if listener.wait(5.0):
                    with self._changed:
                        self._changed.notify_all()
        finally:
            listener.close()
