"""The running service without HTTP: one Engine, one Store, live time.

Single writer: every change to the engine goes through ``self._lock`` and is stored in
the same database transaction as the fact (or clock tick) that caused it, so what the
store holds is exactly what the engine has decided. If a transaction fails after the
engine moved, the engine is rebuilt from the store before the next write.

Restart recovery replays stored facts and ticks in their original order (see
:meth:`Store.ticks`): deterministic decision ids make the replay re-derive what is
already stored, and deadlines missed while the service was down fire afterwards.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from marshmallow import ValidationError

from engine.clock import utcnow
from engine.eval.clock import month_span
from engine.eval.engine import Engine
from engine.eval.trace import Lookup, derivation
from engine.lang.catalogue import refusals
from engine.lang.errors import FactError
from engine.lang.loader import load_rules, load_texts
from engine.lang.model import RuleSet
from engine.notify.retract import followups
from engine.notify.route import outbox_entries
from engine.service.clockview import ClockReadModel, ClockView
from engine.service.explain import explain_stored, nearest_reasons
from engine.service.lateness import DEFAULT_MAX_LATENESS, NewestTimes, late_problems
from engine.service.recovery import Versions, rebuild, save_snapshot, settle_heap
from engine.service.reports import SPAN_MARGIN, compliance
from engine.service.review import review as review_targets
from engine.service.scheduler import DeadlineScheduler
from engine.service.timeline import build as build_timeline
from engine.service.vocabulary import Vocabulary, in_force_and_before
from engine.service.whatif import Bounds, default_period, what_if
from engine.store.base import every
from engine.store.encoding import canonical_json
from engine.store.store import Store
from schemas.facts import POSTED_TIME, FactSchema, dump_fact, flatten_errors, stored_fact
from schemas.records import Decision
from schemas.values import format_instant, format_whole_duration

log = logging.getLogger("slm.service")

DEFAULT_SKEW = timedelta(minutes=5)
MAX_BATCH = 10_000
PREVIEW_BOUNDS = Bounds(max_facts=200_000, max_seconds=60.0)   # what one preview request may replay
SNAPSHOT_EVERY = 20_000     # facts between engine snapshots: bounds what a restart replays
FAILED_REMEMBERED = 1024     # facts that failed in the engine, refused on sight afterwards
RETAIN = timedelta(days=35)  # a finished clock is kept (for late facts) this long, then forgotten


_schemas = threading.local()


def load_fact(raw: dict) -> dict:
    """One fact checked against the schema; FactError names each bad field."""
    schema = getattr(_schemas, "fact", None) or FactSchema()
    _schemas.fact = schema
    try:
        return schema.load(raw)
    except ValidationError as err:
        raise FactError(flatten_errors(err.messages)) from None


def attribute(decisions: list[Decision], fact_ids: list[str]) -> dict[str, int]:
    """Decision id → the position in ``fact_ids`` of the fact it rests on: the latest of
    those facts its ``because`` names, directly or through a decision it rests on. A
    decision that rests on none of them (a deadline of an older clock that fell due) is
    left out."""
    position = {fid: index for index, fid in enumerate(fact_ids)}
    owner: dict[str, int] = {}
    for decision in decisions:
        best = None
        for ref in decision.because:
            kind, _, key = ref.partition(":")
            index = position.get(key) if kind == "fact" else owner.get(key) if kind == "decision" else None
            if index is not None and (best is None or index > best):
                best = index
        if best is not None:
            owner[decision.id] = best
    return owner


class FactConflict(FactError):
    """A fact's ``(source, id)`` is stored already, with another body."""


class NotReady(Exception):
    """The service is still rebuilding its state from the store."""


@dataclass
class Ingested:
    """What one ingestion request did, fact by fact."""

    results: list[dict] = field(default_factory=list)      # {id, source, status, decisions}
    decisions: list[dict] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    rejected: dict[int, dict[str, list[str]]] = field(default_factory=dict)   # partial: position -> why

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.results if r["status"] == "accepted")


@dataclass
class _Job:
    """One ingestion request waiting for the write lock (see :meth:`SlmService.ingest`).

    A ``partial`` request (an Alertmanager group) sets a fact that cannot be placed aside
    with its reasons, by its position in the request, and stores the rest."""

    facts: list[dict]
    result: Ingested | None = None
    error: BaseException | None = None
    partial: bool = False
    positions: list[int] = field(default_factory=list)             # partial: each fact's position
    set_aside: dict[int, dict[str, list[str]]] = field(default_factory=dict)

    def put_aside(self, index: int, problems: dict[str, list[str]]) -> None:
        """Take ``self.facts[index]`` out of a partial request, with why."""
        self.set_aside[self.positions.pop(index)] = problems
        self.facts.pop(index)

    def refuse(self, problems: dict[int, list[str]], name: str, error: type[FactError] = FactError) -> bool:
        """Facts of this request refused before evaluation, by index, with why (under field
        ``name``): a partial request sets them aside and goes on; any other fails whole
        (``self.error``, each named ``[i].name``). True if the request failed."""
        if not problems:
            return False
        if self.partial:
            for index in sorted(problems, reverse=True):
                self.put_aside(index, {name: problems[index]})
            return False
        prefix = (lambda index: f"[{index}].") if len(self.facts) > 1 else (lambda index: "")
        self.result, self.error = None, error({prefix(i) + name: why for i, why in problems.items()})
        return True


class _FactFailed(Exception):
    """Evaluating one fact raised: which request, which fact, why."""

    def __init__(self, job: _Job, position: int, fact: dict, cause: BaseException):
        super().__init__(position, cause)
        self.job, self.position, self.fact, self.cause = job, position, fact, cause

    def reason(self) -> list[str]:
        cause = f"{type(self.cause).__name__}: {self.cause}"[:200]
        return [f"the engine could not evaluate this fact ({cause})"]

    def error(self) -> FactError:
        prefix = f"[{self.position}]." if len(self.job.facts) > 1 else ""
        return FactError({prefix + "_fact": [self.reason()[0] + "; nothing from this request was stored"]})


def _fingerprint(fact: dict) -> str:
    """A digest of a validated fact as it would be stored."""
    return hashlib.sha256(json.dumps(dump_fact(fact), sort_keys=True, default=str).encode()).hexdigest()


def _said(body: str) -> str:
    """A stored fact's canonical JSON without the time string as posted: what it says."""
    if POSTED_TIME not in body:
        return body
    fact = json.loads(body)
    fact.pop(POSTED_TIME, None)
    return canonical_json(fact)


class SlmService:
    """Facts in, decisions stored; clocks fired on time; state rebuilt on start."""

    def __init__(self, store: Store, rules_dir: str | Path, *, skew: timedelta = DEFAULT_SKEW,
                 now: Callable[[], datetime] = utcnow, history: bool = False,
                 snapshot_every: int = SNAPSHOT_EVERY, retain: timedelta | None = RETAIN,
                 freeze_heap: bool = False, delivery=None,
                 max_lateness: timedelta | None = DEFAULT_MAX_LATENESS):
        self.store = store
        # engine.notify.worker.DeliveryWorker, or None: notifications are stored, not sent
        self.delivery = delivery
        self.history = history        # keep the engine's in-memory record too (tests inspect it)
        self.rules_dir = Path(rules_dir)
        self.skew = skew
        self.max_lateness = max_lateness      # None: facts may be any amount late
        self.newest = NewestTimes(store.newest_fact_times)
        self.now = now
        self.listeners: list[Callable[[Ingested], None]] = []   # told of every write (metrics)
        self.ruleset: RuleSet = load_rules(self.rules_dir)    # RuleSetError stops start-up
        self.versions = Versions(store, self.ruleset)          # every version the store has seen
        self.engine: Engine | None = None
        self.ready = threading.Event()
        self.replayed = 0
        self.rebuild_seconds: float | None = None
        self.reload_held_seconds: float | None = None
        self.last_fact_seq = self.last_tick_seq = 0
        self.snapshot_every = snapshot_every   # new facts between engine snapshots; 0: never
        self.retain = retain                   # finished clocks are forgotten this long after
        self.freeze_heap = freeze_heap         # see _settle_heap (for the process that serves)
        self._since_snapshot = 0
        self.failure: BaseException | None = None
        self._lock = threading.RLock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Job] = []                 # requests waiting to be written together
        self.scheduler = DeadlineScheduler(self.next_deadline, self.tick, self.now)
        self._dirty = False
        self._failed: dict[str, None] = {}         # fingerprints of facts the engine failed on
        self._vocabulary: Vocabulary | None = None  # see vocabulary(); reset by each cut-over
        self._threads: list[threading.Thread] = []
        self.readmodel = ClockReadModel()          # the clocks as the last write left them: read lock-free

    # ---- life cycle ---------------------------------------------------------------------
    def start(self, background: bool = True, on_failure: Callable[[BaseException], None] | None = None) -> None:
        """Rebuild state (in a thread if ``background``) and start the deadline scheduler.

        If rebuilding fails in the background, ``on_failure`` gets the exception (the
        CLI exits: a service that cannot rebuild its state must not look alive)."""
        if background:
            def run():
                try:
                    self._start()
                except Exception as exc:
                    self.failure = exc
                    if on_failure:
                        on_failure(exc)
            self._spawn(run, "slm-rebuild")
        else:
            self._start()

    def _start(self) -> None:
        try:
            with self._lock:
                self.engine = self._rebuild(self.ruleset)
                with self.store.transaction():      # a tick and its decisions: stored together
                    self._catch_up()
                if not self.store.cutovers() or self.engine.ruleset.version != self.ruleset.version:
                    self._cut_over(self.ruleset)    # first start, or started with changed files
                self._maybe_snapshot()
                self._settle_heap()
                self._publish()
            self.ready.set()
            self._spawn(self.scheduler.run, "slm-scheduler")
            if self.delivery is not None:       # picks up what a previous run left queued
                self.delivery.start()
        except Exception:
            log.exception("rebuilding state failed; the service stays not ready")
            raise

    def load_state(self) -> None:
        """Rebuild the engine from the store and write nothing: for a reader beside the
        running server (``slm report``). The state stands where the last stored fact or
        tick left it; deadlines due since then are the server's to fire."""
        with self._lock:
            self.engine = self._rebuild(self.ruleset)
            self._publish()

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop the scheduler and delivery; snapshot what was applied since the last snapshot."""
        self.scheduler.stop()
        if self.delivery is not None:
            self.delivery.stop()
        if self.ready.is_set():
            with self._lock:
                try:
                    self._maybe_snapshot(force=True)
                except Exception:
                    log.exception("the snapshot at stop failed (the next start replays more)")
        self.scheduler.wake()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def _rebuild(self, ruleset: RuleSet) -> Engine:
        """The engine as the store leaves it (see engine.service.recovery)."""
        def progress(count: int) -> None:
            self.replayed = count
        rebuilt = rebuild(self.store, ruleset, history=self.history, retain=self.retain,
                          snapshots=bool(self.snapshot_every), progress=progress, versions=self.versions)
        self.last_fact_seq, self.last_tick_seq = rebuilt.last_fact_seq, rebuilt.last_tick_seq
        self._since_snapshot = rebuilt.replayed
        self.rebuild_seconds = rebuilt.seconds
        return rebuilt.engine

    def _maybe_snapshot(self, force: bool = False) -> None:
        """Snapshot the engine (under the write lock) every ``snapshot_every`` new facts."""
        if not self.snapshot_every or self.engine is None or self._dirty:
            return
        if self._since_snapshot < self.snapshot_every and not (force and self._since_snapshot):
            return
        save_snapshot(self.store, self.engine, self.last_fact_seq, self.last_tick_seq)
        self._since_snapshot = 0
        self._settle_heap()

    def _settle_heap(self, released: bool = False) -> None:
        """Keep the engine's state out of the garbage collector's sight, in the process
        that serves (see :func:`engine.service.recovery.settle_heap`)."""
        if self.freeze_heap:
            settle_heap(released)

    # ---- writing ------------------------------------------------------------------------
    def validate(self, raws: list) -> list[dict]:
        """Check every fact of a request; FactError names each bad field as ``[i].field``."""
        if not isinstance(raws, list) or not raws:
            raise FactError({"_body": ["expected a fact object or a non-empty array of facts"]})
        if len(raws) > MAX_BATCH:
            raise FactError({"_body": [f"{len(raws)} facts in one request; at most {MAX_BATCH}"]})
        limit = self.now() + self.skew
        problems: dict[str, list[str]] = {}
        facts = []
        for index, raw in enumerate(raws):
            prefix = f"[{index}]." if len(raws) > 1 else ""
            if not isinstance(raw, dict):
                problems[prefix + "_fact"] = ["expected a JSON object"]
                continue
            try:
                fact = load_fact(raw)
            except FactError as err:
                problems.update({prefix + k: v for k, v in err.details.items()})
                continue
            if fact["time"] > limit:
                ahead = format_whole_duration(fact["time"] - self.now())
                problems[prefix + "time"] = [f"is {ahead} ahead of the server clock; facts may be at "
                                             f"most {format_whole_duration(self.skew)} in the future"]
            problems.update({prefix + k: v for k, v in refusals(self.ruleset, fact).items()})
            facts.append(fact)
        if problems:
            raise FactError(problems)
        return facts

    def ingest(self, raws: list, partial: bool = False) -> Ingested:
        """Validate all, then evaluate each fact and store facts and decisions in one
        transaction: all or nothing. A repeated (source, id) returns its first outcome.

        ``partial`` (an Alertmanager group, whose sender does not retry a refusal): a fact
        that does not validate, is too late or fails in the engine is set aside with its
        reasons (``Ingested.rejected``, by position) and the rest is stored.

        Group commit: requests that arrive while another one is being written wait for the
        write lock together, and the first of them to get it writes them all in one
        transaction (in arrival order), so concurrent clients share a commit. A request
        that fails in the engine or the store fails alone (see :meth:`_write_apart`)."""
        if not self.ready.is_set():
            raise NotReady(self.progress())
        job = self._sift(raws) if partial else _Job(self.validate(raws))
        self._refuse_failed(job)
        with self._queue_lock:
            self._queue.append(job)
        with self._lock, self._guarded():
            if job.result is None and job.error is None:
                with self._queue_lock:
                    jobs, self._queue = self._queue, []
                try:
                    self._write_apart(jobs)
                except BaseException as exc:
                    for other in jobs:
                        if other.result is None and other.error is None:
                            other.error = exc
                    raise
                self._publish()
        if job.error is not None:
            raise job.error
        job.result.rejected = dict(sorted(job.set_aside.items()))
        self.scheduler.wake()
        self._announce(job.result)
        return job.result

    def _sift(self, raws: list) -> _Job:
        """A partial request: each fact validated on its own; the bad ones set aside."""
        job = _Job([], partial=True)
        if not isinstance(raws, list) or not raws or len(raws) > MAX_BATCH:
            self.validate(raws)                 # raises the request's own problem
        for position, raw in enumerate(raws):
            try:
                job.facts.extend(self.validate([raw]))
                job.positions.append(position)
            except FactError as err:
                job.set_aside[position] = err.details
        return job

    def _write_apart(self, jobs: list[_Job]) -> None:
        """Write the group; if that fails, no neighbour pays for it. A fact the engine
        could not evaluate fails its request alone with a FactError naming it (422), is
        remembered (:meth:`_refuse_failed`: a client retrying it cannot make the service
        rebuild again), and the rest of the group is written without it. Any other failure
        (the store refused something) is narrowed down by writing the requests one by one.
        Each failure leaves the engine possibly ahead of the store, so it is rebuilt from
        the store before the next attempt (``close`` frees the replaced one's rulesets)."""
        pending = list(jobs)
        while pending:
            for job in pending:
                job.result = job.error = None       # what a failed attempt left is not an outcome
            if self._dirty:
                self._restore()
            try:
                self._write(pending)
                return
            except _FactFailed as failed:
                self._dirty = True
                self._remember_failed(failed.fact)
                log.warning("fact %r of source %r failed in the engine: %r", failed.fact["id"],
                            failed.fact["source"], failed.cause)
                if failed.job.partial:
                    failed.job.put_aside(failed.position, {"_fact": failed.reason()})
                else:
                    failed.job.error = failed.error()
                    pending = [job for job in pending if job is not failed.job]
            except Exception as exc:
                self._dirty = True
                if len(pending) == 1:
                    pending[0].result, pending[0].error = None, exc
                    return
                for job in pending:
                    job.result = None
                for job in pending:
                    self._write_apart([job])
                return

    @staticmethod
    def _refuse_conflicts(jobs: list[_Job], stored: dict) -> list[_Job]:
        """The jobs without a fact whose ``(source, id)`` is stored with another body: such
        a job fails whole (FactConflict, 409, naming the first outcome) before anything of it
        is evaluated; a fact repeated as it was stored stays a duplicate (its time may be
        written with another offset: the instant is what the fact says)."""
        kept = []
        for job in jobs:
            problems = {}
            for index, fact in enumerate(job.facts):
                record = stored.get((fact["source"], fact["id"]))
                if record is not None and canonical_json(dump_fact(fact)) != _said(record[1]):
                    problems[index] = [f"{fact['source']}/{fact['id']} was stored before with another body; "
                                       f"its outcome then: {', '.join(record[0] or []) or 'no decisions'}"]
            if not job.refuse(problems, "id", FactConflict):
                kept.append(job)
        return kept

    def _refuse_late(self, jobs: list[_Job], stored: dict) -> list[_Job]:
        """The jobs without a new fact more than ``max_lateness`` behind its subject's newest
        event time (engine.service.lateness): such a job fails whole (FactError, 422), a
        partial one sets the fact aside. The newest times count the jobs before in the group."""
        if self.max_lateness is None:
            return jobs
        subjects = {f["subject"] for job in jobs for f in job.facts
                    if f["subject"] is not None and (f["source"], f["id"]) not in stored}
        if not subjects:
            return jobs
        newest = self.newest.of(subjects)
        kept = []
        for job in jobs:
            new = [(index, fact) for index, fact in enumerate(job.facts) if (fact["source"], fact["id"]) not in stored]
            late = {new[at][0]: [why]
                    for at, why in late_problems([f for _, f in new], newest, self.max_lateness).items()}
            if job.refuse(late, "time"):
                continue
            for fact in job.facts:
                subject = fact["subject"]
                if subject is not None and (subject not in newest or fact["time"] > newest[subject]):
                    newest[subject] = fact["time"]
            kept.append(job)
        return kept

    def _refuse_failed(self, job: _Job) -> None:
        """Refuse, without touching the engine, a fact exactly as one that failed in it."""
        if not self._failed:
            return
        why = ["this fact failed in the engine when it was posted before; it is refused without a second attempt"]
        if job.refuse({index: why for index, fact in enumerate(job.facts) if _fingerprint(fact) in self._failed},
                      "_fact"):
            raise job.error

    def _remember_failed(self, fact: dict) -> None:
        self._failed[_fingerprint(fact)] = None
        while len(self._failed) > FAILED_REMEMBERED:
            self._failed.pop(next(iter(self._failed)))

    def _write(self, jobs: list[_Job]) -> None:
        """Evaluate every new fact of the waiting requests, fire the deadlines due by the
        wall clock, and store it all in one transaction. Each decision is attributed to
        the fact it rests on (see :func:`attribute`), also when its deadline fired in the
        catch-up: a P1 posted 20 minutes late lists its breach under that fact."""
        with self.store.transaction():
            stored = self.store.find_fact_records({(f["source"], f["id"]) for job in jobs for f in job.facts})
            known = {key: outcome for key, (outcome, _) in stored.items()}
            jobs = self._refuse_late(self._refuse_conflicts(jobs, stored), known)
            new: list[tuple[dict, dict, Ingested]] = []        # (fact, its result entry, its request)
            decided: list[Decision] = []
            for job in jobs:
                job.result = Ingested()
                for position, fact in enumerate(job.facts):
                    key = (fact["source"], fact["id"])
                    entry = {"id": fact["id"], "source": fact["source"], "status": "accepted", "decisions": []}
                    job.result.results.append(entry)
                    if key in known:
                        entry.update(status="duplicate", decisions=known[key] or [])
                        continue
                    known[key] = []
                    try:
                        applied = self.engine.apply_loaded(fact)
                    except Exception as exc:
                        raise _FactFailed(job, position, fact, exc) from exc
                    decided += applied.decisions
                    if not applied.moved:         # matched nothing: only then is explaining paid for
                        entry.update(matched=[], reasons=nearest_reasons(self.engine, fact))
                    new.append((fact, entry, job.result))
            reached, caught = self._fire_due()
            decided += caught
            owner = attribute(decided, [fact["id"] for fact, _, _ in new])
            owned: dict[int, list[str]] = {}
            for decision in decided:
                if decision.id in owner:
                    owned.setdefault(owner[decision.id], []).append(decision.id)
            for index, (fact, entry, _) in enumerate(new):
                entry["decisions"] = known[(fact["source"], fact["id"])] = owned.get(index, [])
                if entry["decisions"]:
                    entry.pop("matched", None), entry.pop("reasons", None)
            if new:
                self.last_fact_seq = self.store.add_facts([(stored_fact(f), e["decisions"]) for f, e, _ in new])
            if reached is not None:
                self.last_tick_seq = self.store.add_tick(self.last_fact_seq, reached)
            records = self._store(decided)
            for decision, record in zip(decided, records, strict=True):
                index = owner.get(decision.id)
                result = new[index][2] if index is not None else (jobs[-1].result if jobs else Ingested())
                result.decisions.append(record[0])
                result.notifications.extend(record[1])
        for fact, _, _ in new:                     # committed: the newest times move
            if fact["subject"] is not None:
                self.newest.note(fact["subject"], fact["time"])
        self._since_snapshot += len(new)
        self._maybe_snapshot()

    def _store(self, decisions: list[Decision]) -> list[tuple[dict, list[dict]]]:
        """Store decisions and their outbox entries (engine.notify: routed through the RACI
        matrix and an escalation's ``call``, muted if shadow); a retraction cancels the
        retracted decision's unsent notifications and follows up the ones sent. Each
        decision's record with its notifications' records."""
        records = []
        for decision in decisions:
            records.append((decision.as_dict(), [n.as_dict() for n in outbox_entries(decision, self.ruleset)]))
        self.store.add_decisions([r for r, _ in records])
        due = None
        if self.delivery is not None:            # outbox time is real time, whatever the engine's
            due = utcnow() + self.delivery.group_wait
        self.store.add_notifications([n for _, notes in records for n in notes], due=due)
        retractions = [(d, notes) for d, (_, notes) in zip(decisions, records, strict=True)
                       if d.kind == "retracted" and d.data.get("retracts")]
        if retractions:
            told = self.store.cancel_for([d.data["retracts"] for d, _ in retractions])
            for decision, notes in retractions:
                more = [n.as_dict() for n in followups(decision, told.get(decision.data["retracts"], []))]
                self.store.add_notifications(more, due=due)
                notes.extend(more)
        return records

    def tick(self) -> Ingested:
        """Fire every deadline that is due by the wall clock; store what it decided."""
        result = Ingested()
        if not self.ready.is_set():
            return result
        with self._lock, self._guarded():
            with self.store.transaction():
                self._catch_up(result)
            self._publish()
        self._announce(result)
        return result

    def _announce(self, result: Ingested) -> None:
        if self.delivery is not None:            # committed: the worker may send them now
            self.delivery.handoff([n["id"] for n in result.notifications if n.get("status") == "pending"])
        for listener in self.listeners:
            try:
                listener(result)
            except Exception:
                log.exception("a listener failed (the write itself succeeded)")

    def _fire_due(self) -> tuple[datetime | None, list[Decision]]:
        """Fire every deadline due by the wall clock: advance deadline by deadline (not
        straight to now), so a fact a few seconds late is only late for the engine if a
        deadline really fired in between. (The instant reached, if the engine's time
        moved; what was decided.)"""
        now = self.now()
        reached = None
        decided: list[Decision] = []
        while (deadline := self.engine.next_deadline()) is not None and deadline <= now:
            decided += self.engine.advance(deadline).decisions
            reached = deadline
            if self.engine.next_deadline() == deadline:
                raise RuntimeError(f"the engine did not move past the deadline {deadline}")
        return reached, decided

    def _catch_up(self, result: Ingested | None = None) -> None:
        """Fire what is due and store it. Every catch-up that moved the engine's time is
        stored as one tick, decisions or not: where the engine's time stood when the next
        fact came decides how that fact is reconciled, so a replay must stand there too."""
        reached, decided = self._fire_due()
        if reached is None:
            return
        self.last_tick_seq = self.store.add_tick(self.last_fact_seq, reached)
        for record, notes in self._store(decided):
            if result is not None:
                result.decisions.append(record)
                result.notifications.extend(notes)

    class _Guard:
        def __init__(self, service):
            self.service = service

        def __enter__(self):
            if self.service._dirty:
                self.service._restore()

        def __exit__(self, exc_type, exc, tb):
            if exc_type is not None and not issubclass(exc_type, (FactError, NotReady)):
                self.service._dirty = True      # the engine may be ahead of the store
            return False

    def _guarded(self):
        return self._Guard(self)

    def _restore(self) -> None:
        log.warning("a write failed after the engine moved; rebuilding from the store")
        self.ready.clear()                          # /readyz says so while it rebuilds
        try:
            replaced, self.engine = self.engine, self._rebuild(self.ruleset)
            if replaced is not None:
                replaced.close()
            self._dirty = False
            self._settle_heap(released=True)
            self._publish()
        finally:
            self.ready.set()

    # ---- rules ----------------------------------------------------------------------------
    def preview(self, files: dict[str, str], since: datetime | None = None,
                until: datetime | None = None) -> dict:
        """What uploaded rules would have decided over the stored history (RuleSetError if
        they do not load, ReplayLimit past :data:`PREVIEW_BOUNDS`); reads only, no lock."""
        ruleset = load_texts(files, root="upload")
        start, end = default_period(self.now())
        return what_if(self.store, ruleset, since or start, until or end, bounds=PREVIEW_BOUNDS)

    def check(self, files: dict[str, str], with_rules_in_force: bool = False) -> RuleSet:
        """Validate uploaded rule files without changing anything (RuleSetError if bad).

        ``with_rules_in_force``: the uploads are checked together with the rules in force,
        an upload replacing the file of the same path (relative to the rules directory), so
        one changed file can be checked against the calendars, RACI and escalations it
        relies on without uploading them all."""
        if with_rules_in_force:
            files = {**self.ruleset.files, **files}
        return load_texts(files, root="upload")

    def reload(self) -> RuleSet:
        """Load the rules directory and put it in force now; a bad set changes nothing.

        Nothing is replayed: the running clocks carry on under the version they started
        with (or take the new definition, as their targets say), so a reload holds writers
        back for what the running clocks cost (docs/RULES.md, "Rule changes")."""
        ruleset = load_rules(self.rules_dir)
        if not self.ready.is_set():
            raise NotReady(self.progress())
        with self._lock, self._guarded():
            held = time.perf_counter()
            if ruleset.version != self.engine.ruleset.version:
                self._cut_over(ruleset)
                self._settle_heap(released=True)    # the replaced network is garbage now
            self.ruleset = ruleset
            self._publish()
            self.reload_held_seconds = time.perf_counter() - held    # how long writers waited (bench/reload.py)
        self.scheduler.wake()
        return ruleset

    def _cut_over(self, ruleset: RuleSet) -> None:
        """Fire what is due, then put ``ruleset`` in force at the wall clock's now, after the
        last stored fact and tick; the change and what it decided stored together."""
        with self.store.transaction():
            self._catch_up()
            self.store.save_ruleset(ruleset.version, ruleset.files)
            at = self.now()
            decided = self.engine.cut_over(ruleset, at).decisions
            self.store.add_cutover(ruleset.version, at, self.last_fact_seq, self.last_tick_seq)
            self._store(decided)
        self.versions.add(ruleset)
        self.ruleset = ruleset
        self._vocabulary = None
        log.info("rule set %s in force from %s", ruleset.version[:19], at.isoformat())

    # ---- reading ------------------------------------------------------------------------
    def _publish(self) -> None:
        """Publish the clocks as the write just committed left them (under the write lock);
        an engine that may be ahead of the store publishes nothing until it is rebuilt."""
        if self.engine is not None and not self._dirty:
            self.readmodel.publish(self.engine)

    def clock_view(self) -> ClockView:
        """The clocks as the last committed write left them; never waits for the write lock."""
        return self.readmodel.view

    def progress(self) -> dict:
        return {"ready": self.ready.is_set(), "replayed": self.replayed,
                "rebuild_seconds": self.rebuild_seconds}

    def clocks(self, service: str | None = None, target: str | None = None,
               subject: str | None = None) -> list[dict]:
        """Running clocks now (at the wall clock), optionally of one service, target or subject:
        read from the clocks read model, never under the write lock."""
        return self.clock_page(service, target, subject)[0]

    def clock_page(self, service: str | None = None, target: str | None = None, subject: str | None = None,
                   limit: int | None = None) -> tuple[list[dict], int]:
        """The first ``limit`` running clocks (in key order) of :meth:`clocks`, and how many run."""
        if not self.ready.is_set():
            raise NotReady(self.progress())
        now = self.now()
        as_of = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        clocks, total = self.readmodel.view.page(now, service, target, subject, limit)
        for clock in clocks:
            clock["as_of"] = as_of
        return clocks, total

    def definition(self, rule: dict | None) -> str | None:
        """The YAML text of the definition a decision's ``rule`` names, as the version that
        made the decision has it (None if that version or place is unknown)."""
        if not rule or not rule.get("file"):
            return None
        ruleset = self.versions.get(rule.get("ruleset") or self.ruleset.version)
        return None if ruleset is None else ruleset.source(rule["file"], rule.get("line") or 0)

    def trace(self, decision_id: str) -> dict:
        """The derivation tree of a stored decision (KeyError if there is none), each
        definition as the version that decided had it."""
        return derivation(decision_id, Lookup(self.store.decision, self.store.fact_by_id, self.versions.get))

    def explain_fact(self, fact_id: str, source: str | None = None) -> dict:
        """Which clocks a stored fact moved and why it left the others, as the engine stood
        when it arrived (engine.service.explain; UnknownFact, AmbiguousFact, ReplayLimit).
        Replays into a throwaway engine: reads only, no lock."""
        return explain_stored(self.store, fact_id, source, ruleset=self.ruleset, versions=self.versions,
                              retain=self.retain, bounds=PREVIEW_BOUNDS)

    def compliance(self, service: str, period: str) -> dict:
        """The month's compliance report for one service (ValueError for an unknown service)."""
        if service not in self.ruleset.services:
            raise ValueError(f"unknown service {service!r} (services: {', '.join(sorted(self.ruleset.services))})")
        start, end = month_span(period)
        decisions = self._month_decisions(service, start, end)
        spanned = [{"version": v["version"], "from": format_instant(v["at"])} for v in self._versions_in(start, end)]
        view = self.readmodel.view              # window readings from the read model: no write lock
        at = view.reading_instant(self.now())
        window = (lambda target, label: view.window_reading(target, label, at)) if view.ruleset else None
        return compliance(self.ruleset, decisions, service, period, window, spanned, self.versions.get,
                          lambda target, a, b: self._posted_maintenance(target, a, b, at))

    def _posted_maintenance(self, target: str, start, end, at) -> list:
        """Posted maintenance windows of a target's window clocks (asked only for targets that
        exclude maintenance): read from the engine's transitions, under the write lock."""
        with self._lock:
            engine = self.engine
            return engine.maintenance_spans(target, start, end, at) if engine else []

    def vocabulary(self) -> Vocabulary:
        """Services, targets and decision kinds of every rule set put in force: what a
        stored record can name (engine.service.vocabulary)."""
        known = self._vocabulary
        if known is None:
            versions = [c["ruleset"] for c in self.store.cutovers()]
            known = self._vocabulary = in_force_and_before(self.ruleset, versions, self.versions.get)
        return known

    def rule_versions(self) -> list[dict]:
        """Every rule set put in force, oldest first: ``{version, at, after_fact, in_force}``
        (the last cut-over is the version in force)."""
        changes = self.store.cutovers()
        return [{"version": c["ruleset"], "at": c["at"], "after_fact": c["after_fact"],
                 "in_force": n == len(changes) - 1} for n, c in enumerate(changes)]

    def _versions_in(self, start: datetime, end: datetime) -> list[dict]:
        """The versions in force at some time in [start, end), oldest first."""
        versions = self.rule_versions()
        return [v for n, v in enumerate(versions)
                if v["at"] < end and (n + 1 == len(versions) or versions[n + 1]["at"] > start)]

    def reading_instant(self) -> datetime:
        """The instant readings are taken at: the wall clock, but not past a deadline that
        is due and not fired yet (the scheduler is about to fire it; a reading beyond it
        would count time the engine has not decided on). Call under ``self._lock``."""
        now = self.now()
        deadline = self.engine.next_deadline() if self.engine else None
        return min(now, deadline) if deadline else now

    def _month_decisions(self, service: str, start: datetime, end: datetime) -> list[dict]:
        """A service's decisions of a month (widened by SPAN_MARGIN, since each target takes
        the month in its own timezone), and every retraction: what a report reads."""
        decisions = list(every(self.store.list_decisions, service=service, since=start - SPAN_MARGIN,
                               until=end + SPAN_MARGIN))
        return decisions + list(every(self.store.list_decisions, service=service, kind="retracted"))

    def review(self, service: str, period: str) -> dict:
        """The compliance report with the figures of a service review (engine.service.review)."""
        report = self.compliance(service, period)
        start, end = month_span(period)
        decisions = self._month_decisions(service, start, end)
        windows = {}
        with self._lock:
            now = self.reading_instant()
            for row in report["targets"]:
                record = self.engine.window_record(row["target"], period) if self.engine else None
                if record is not None:
                    windows[row["target"]] = ([(t.at, t.action, t.fact, t.subject) for t in record.transitions],
                                              record.clock.budget, now)
        return {**report, "targets": review_targets(self.ruleset, decisions, report, windows)}

    def clock_timeline(self, target_id: str, subject: str):
        """The timeline of clock ``<target>/<subject>`` (engine.service.timeline); None if the
        target is unknown or nothing about this clock is known."""
        target = self.ruleset.targets.get(target_id)
        if target is None:
            return None
        with self._lock:
            now = self.reading_instant()
            record = self.engine.clock_record(f"{target_id}/{subject}") if self.engine else None
            transitions = None if record is None else [(t.at, t.action, t.fact, t.subject)
                                                       for t in record.transitions]
        decisions = list(every(self.store.list_decisions, target=target_id, subject=subject))
        facts = []
        if transitions is None and target.measure == "duration":
            facts = [item["fact"] for item in every(self.store.list_facts, subject=subject,
                                                     service=target.service)]
        return build_timeline(target, subject, now, transitions, decisions, facts)

    def next_deadline(self) -> datetime | None:
        with self._lock:
            return self.engine.next_deadline() if self.engine else None
