"""Facts in: each request validated whole, then evaluated and stored with what it decided.

Single writer: every fact is applied to the engine under the write lock and stored in the
same database transaction as the decisions it caused, so what the store holds is exactly
what the engine has decided. Requests that wait for the lock together are written together
(group commit); a request that fails fails alone, and what it changed in the engine is
undone (engine.eval.undo).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from engine.service.batch import FactFailed, FailedFacts, Job, refuse_conflicts, refuse_late, sift
from engine.service.collector import collector_held
from engine.service.deadlines import Deadlines
from engine.service.explain import nearest_reasons
from engine.service.keeper import EngineKeeper
from engine.service.lateness import DEFAULT_MAX_LATENESS, NewestTimes
from engine.service.recorder import DecisionRecorder, Ingested
from engine.service.state import ServiceState
from engine.service.validation import DEFAULT_SKEW, validate_facts
from engine.store.store import DatabaseUnavailable, LeaseLost
from schemas.facts import load_stored, stored_fact
from schemas.records import Decision, fact_ref

log = logging.getLogger("slm.service")


def attribute(decisions: list[Decision], fact_refs: list[str]) -> dict[str, int]:
    """Decision id → the position in ``fact_refs`` (``fact:<source>#<id>``,
    schemas.records.fact_ref) of the fact it rests on: the latest of
    those facts its ``because`` names, directly or through a decision it rests on. A
    decision that rests on none of them (a deadline of an older clock that fell due) is
    left out."""
    position = {ref: index for index, ref in enumerate(fact_refs)}
    owner: dict[str, int] = {}
    for decision in decisions:
        best = None
        for ref in decision.because:
            kind, _, key = ref.partition(":")
            index = position.get(ref) if kind == "fact" else owner.get(key) if kind == "decision" else None
            if index is not None and (best is None or index > best):
                best = index
        if best is not None:
            owner[decision.id] = best
    return owner


class FactIngestion:
    """Validates, evaluates and stores posted facts. Needs the engine: for the process
    that holds it."""

    def __init__(self, state: ServiceState, keeper: EngineKeeper, deadlines: Deadlines,
                 recorder: DecisionRecorder, *, wake: Callable[[], None], skew: timedelta = DEFAULT_SKEW,
                 max_lateness: timedelta | None = DEFAULT_MAX_LATENESS):
        self.state, self.keeper, self.deadlines, self.recorder = state, keeper, deadlines, recorder
        self.wake = wake                        # tells the deadline scheduler to look again
        self.skew = skew
        self.max_lateness = max_lateness        # None: facts may be any amount late
        self.newest = NewestTimes(state.store.newest_fact_times)
        self.failed = FailedFacts()
        self._queue_lock = threading.Lock()
        self._queue: list[Job] = []             # requests waiting to be written together

    def validate(self, raws: list) -> list[dict]:
        """Check every fact of a request; FactError names each bad field as ``[i].field``
        (engine.service.validation). Neither the engine nor the write lock is needed."""
        return validate_facts(raws, self.state.ruleset, self.state.now, self.skew)

    def queued(self) -> int:
        """How many requests wait for the write lock, to be written together."""
        with self._queue_lock:
            return len(self._queue)

    def ingest(self, raws: list, partial: bool = False, wait: timedelta | None = None) -> Ingested:
        """Validate all, then evaluate each fact and store facts and decisions in one
        transaction: all or nothing. A repeated (source, id) returns its first outcome.

        ``partial`` (an Alertmanager group, whose sender does not retry a refusal): a fact
        that does not validate, is too late or fails in the engine is set aside with its
        reasons (``Ingested.rejected``, by position) and the rest is stored.

        Group commit: requests that arrive while another one is being written wait for the
        write lock together, and the first of them to get it writes them all in one
        transaction (in arrival order), so concurrent clients share a commit. A request
        that fails in the engine or the store fails alone (see :meth:`_write_apart`).

        ``wait`` is for an API node (engine.service.intake): here every fact is evaluated
        before the answer, so there is nothing to wait for."""
        state = self.state
        state.require_ready()
        job = sift(raws, self.validate) if partial else Job(self.validate(raws))
        self.failed.refuse(job)
        with self._queue_lock:
            self._queue.append(job)
        try:
            with state.write_lock, self.keeper.guarded():
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
                    state.publish()
        except BaseException:
            self._withdraw(job)
            raise
        if job.error is not None:
            raise job.error
        assert job.result is not None       # a write leaves every job it took a result or an error
        job.result.rejected = dict(sorted(job.set_aside.items()))
        self.wake()
        self.recorder.announce(job.result)
        return job.result

    def _withdraw(self, job: Job) -> None:
        """A request refused before anyone wrote it (this process stood by, or could not
        rebuild) leaves the queue: nobody writes it later for a client told it failed."""
        with self._queue_lock:
            self._queue = [queued for queued in self._queue if queued is not job]

    def evaluate_stored(self, stored: list[tuple[int, dict]]) -> Job:
        """Evaluate facts an API node stored (``(seq, stored body)``, in seq order) and
        settle them in the same transaction as what they decided (engine.service.backlog).
        They were validated and checked against the store when they were stored. One that
        fails in the engine is set aside (``Job.set_aside``, by position) and the rest is
        written. Under the write lock, guarded."""
        job = Job([load_stored(body) for _, body in stored], partial=True, positions=list(range(len(stored))))
        self._write_apart([job], settle={(body["source"], body["id"]): seq for seq, body in stored})
        return job

    def _write_apart(self, jobs: list[Job], settle: dict[tuple[str, str], int] | None = None) -> None:
        """Write the group; if that fails, no neighbour pays for it. A fact the engine
        could not evaluate fails its request alone with a FactError naming it (422), is
        remembered (:class:`engine.service.batch.FailedFacts`: a client retrying it is
        refused on sight), and the rest of the group is written without it. Any other
        failure (the store refused something) is narrowed down by writing the requests one
        by one. Each failure is undone in the engine (engine.service.keeper.EngineKeeper.undo),
        which then stands where it stood before the group, as the store does: the rest is
        written on it, with no rebuild and no moment of not being ready. Only what cannot be
        undone exactly is rebuilt from the store before the next attempt. A lost lease is no
        such failure, nor a lost database connection (whether the group was committed is
        unknown): either fails every request of the group at once
        (engine.service.keeper.EngineKeeper.guarded), and nothing is retried.

        ``settle``: the facts are stored already (by seq): settle them, don't add them."""
        with collector_held():
            self._write_apart_held(jobs, settle)

    def _write_apart_held(self, jobs: list[Job], settle: dict[tuple[str, str], int] | None) -> None:
        state, keeper = self.state, self.keeper
        pending = list(jobs)
        while pending:
            for job in pending:
                job.result = job.error = None       # what a failed attempt left is not an outcome
            if state.engine_ahead:
                keeper.restore()
            mark = keeper.begin()
            try:
                self._write(pending, settle)
            except (LeaseLost, DatabaseUnavailable):
                keeper.end()
                raise                               # another owner, or no database: never retried here
            except Exception as exc:
                keeper.undo(mark)
                failure = exc
            except BaseException:
                keeper.end()
                raise
            else:
                keeper.end()
                return
            if isinstance(failure, FactFailed):
                self.failed.remember(failure.fact)
                log.warning("fact %r of source %r failed in the engine: %r", failure.fact["id"],
                            failure.fact["source"], failure.cause)
                if failure.job.partial:
                    failure.job.put_aside(failure.position, {"_fact": failure.reason()})
                else:
                    failure.job.error = failure.error()
                    pending = [job for job in pending if job is not failure.job]
                continue
            if len(pending) == 1:
                pending[0].result, pending[0].error = None, failure
                return
            for job in pending:
                job.result = None
            for job in pending:
                self._write_apart_held([job], settle)
            return

    def _write(self, jobs: list[Job], settle: dict[tuple[str, str], int] | None = None) -> None:
        """Evaluate every new fact of the waiting requests, fire the deadlines due by the
        wall clock, and store it all in one transaction. Each decision is attributed to
        the fact it rests on (see :func:`attribute`), also when its deadline fired in the
        catch-up: a P1 posted 20 minutes late lists its breach under that fact."""
        state, store, engine = self.state, self.state.store, self.state.engine
        assert engine is not None           # the start's rebuild set it, before any write
        with store.transaction():
            known: dict[tuple[str, str], list | None] = {}
            if settle is None:                      # stored facts were checked when they were stored
                stored = store.find_fact_records({(f["source"], f["id"]) for job in jobs for f in job.facts})
                known = {key: outcome for key, (outcome, _) in stored.items()}
                jobs = refuse_late(refuse_conflicts(jobs, stored), known, self.newest, self.max_lateness)
            new: list[tuple[dict, dict, Ingested]] = []        # (fact, its result entry, its request)
            decided: list[Decision] = []
            for job in jobs:
                job.result = Ingested()
                for position, fact in enumerate(job.facts):
                    key = (fact["source"], fact["id"])
                    entry = {"id": fact["id"], "source": fact["source"], "status": "accepted", "decisions": []}
                    job.result.results.append(entry)
                    if key in known:            # stored, or earlier in this group: its outcome
                        entry.update(status="duplicate", decisions=known[key] if known[key] is not None else [])
                        continue
                    known[key] = []
                    try:
                        applied = engine.apply_loaded(fact)
                    except Exception as exc:
                        raise FactFailed(job, position, fact, exc) from exc
                    decided += applied.decisions
                    if not applied.moved:         # matched nothing: only then is explaining paid for
                        entry.update(matched=[], reasons=nearest_reasons(engine, fact))
                    new.append((fact, entry, job.result))
            reached, caught = self.deadlines.fire_due()
            decided += caught
            owner = attribute(decided, [fact_ref(fact["source"], fact["id"]) for fact, _, _ in new])
            owned: dict[int, list[str]] = {}
            for decision in decided:
                if decision.id in owner:
                    owned.setdefault(owner[decision.id], []).append(decision.id)
            for index, (fact, entry, _) in enumerate(new):
                entry["decisions"] = known[(fact["source"], fact["id"])]    # shared with a repeat's entry
                entry["decisions"].extend(owned.get(index, []))
                if entry["decisions"]:
                    entry.pop("matched", None), entry.pop("reasons", None)
            if new and settle is not None:
                state.last_fact_seq = store.settle_facts([(settle[(f["source"], f["id"])], e["decisions"])
                                                          for f, e, _ in new])
            elif new:
                state.last_fact_seq = store.add_facts([(stored_fact(f), e["decisions"]) for f, e, _ in new])
            if reached is not None:
                state.last_tick_seq = store.add_tick(state.last_fact_seq, reached)
            records = self.recorder.record(decided)
            for decision, record in zip(decided, records, strict=True):
                owning = owner.get(decision.id)
                result = new[owning][2] if owning is not None else (jobs[-1].result if jobs else Ingested())
                assert result is not None       # every job in ``jobs`` took one above
                result.decisions.append(record[0])
                result.notifications.extend(record[1])
        for fact, _, _ in new:                     # committed: the newest times move
            if fact["subject"] is not None:
                self.newest.note(fact["subject"], fact["time"])
        self.keeper.applied(len(new))
