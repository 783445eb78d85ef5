"""The requests one group commit writes together, and what refuses one of them before the
engine sees it: a fact stored before with another body, a fact too late for its subject,
a fact exactly as one that failed in the engine before.

A refused request fails whole; a ``partial`` one (an Alertmanager group) sets the refused
fact aside with its reasons and goes on with the rest.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from engine.lang.errors import FactError
from engine.service.lateness import NewestTimes, late_problems
from engine.service.recorder import Ingested
from engine.store.encoding import canonical_json
from schemas.facts import POSTED_TIME, dump_fact
from schemas.limits import MAX_BATCH

FAILED_REMEMBERED = 1024     # facts that failed in the engine, refused on sight afterwards


class FactConflict(FactError):
    """A fact's ``(source, id)`` is stored already, with another body."""


@dataclass
class Job:
    """One ingestion request waiting for the write lock (see
    :meth:`engine.service.ingestion.FactIngestion.ingest`).

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


def sift(raws: list, validate: Callable[[list], list[dict]]) -> Job:
    """A partial request: each fact validated on its own; the bad ones set aside."""
    job = Job([], partial=True)
    if not isinstance(raws, list) or not raws or len(raws) > MAX_BATCH:
        validate(raws)                          # raises the request's own problem
    for position, raw in enumerate(raws):
        try:
            job.facts.extend(validate([raw]))
            job.positions.append(position)
        except FactError as err:
            job.set_aside[position] = err.details
    return job


class FactFailed(Exception):
    """Evaluating one fact raised: which request, which fact, why."""

    def __init__(self, job: Job, position: int, fact: dict, cause: BaseException):
        super().__init__(position, cause)
        self.job, self.position, self.fact, self.cause = job, position, fact, cause

    def reason(self) -> list[str]:
        cause = f"{type(self.cause).__name__}: {self.cause}"[:200]
        return [f"the engine could not evaluate this fact ({cause})"]

    def error(self) -> FactError:
        prefix = f"[{self.position}]." if len(self.job.facts) > 1 else ""
        return FactError({prefix + "_fact": [self.reason()[0] + "; nothing from this request was stored"]})


def refuse_conflicts(jobs: list[Job], stored: dict) -> list[Job]:
    """The jobs without a fact whose ``(source, id)`` is stored with another body: such
    a job fails whole (FactConflict, 409, naming the first outcome) before anything of it
    is evaluated; a fact repeated as it was stored stays a duplicate (its time may be
    written with another offset: the instant is what the fact says). A repeat earlier in
    the same request, or in a request written before it in the same transaction, is
    judged exactly so: with the same body a duplicate, with another a conflict."""
    kept = []
    posted: dict[tuple[str, str], dict] = {}        # facts of the jobs kept so far, by (source, id)
    for job in jobs:
        problems = {}
        own: dict[tuple[str, str], dict] = {}
        for index, fact in enumerate(job.facts):
            key = (fact["source"], fact["id"])
            record = stored.get(key)
            if record is not None:
                if _canonical(fact) != _said(record[1]):
                    problems[index] = [f"{fact['source']}/{fact['id']} was stored before with another body; "
                                       f"its outcome then: {', '.join(record[0] or []) or 'no decisions'}"]
                continue
            earlier = own.get(key) or posted.get(key)
            if earlier is not None and _canonical(fact) != _canonical(earlier):
                where = "earlier in this request" if key in own else "just before, by another request"
                problems[index] = [f"{fact['source']}/{fact['id']} was posted {where} with another body"]
            elif earlier is None:
                own[key] = fact
        if not job.refuse(problems, "id", FactConflict):
            kept.append(job)
            posted.update(own)                     # (a conflicting fact never enters ``own``)
    return kept


def _canonical(fact: dict) -> str:
    return canonical_json(dump_fact(fact))


def refuse_late(jobs: list[Job], stored: dict, newest_times: NewestTimes,
                max_lateness: timedelta | None) -> list[Job]:
    """The jobs without a new fact more than ``max_lateness`` behind its subject's newest
    event time (engine.service.lateness): such a job fails whole (FactError, 422), a
    partial one sets the fact aside. The newest times count the jobs before in the group."""
    if max_lateness is None:
        return jobs
    subjects = {f["subject"] for job in jobs for f in job.facts
                if f["subject"] is not None and (f["source"], f["id"]) not in stored}
    if not subjects:
        return jobs
    newest = newest_times.of(subjects)
    kept = []
    for job in jobs:
        new = [(index, fact) for index, fact in enumerate(job.facts) if (fact["source"], fact["id"]) not in stored]
        late = {new[at][0]: [why]
                for at, why in late_problems([f for _, f in new], newest, max_lateness).items()}
        if job.refuse(late, "time"):
            continue
        for fact in job.facts:
            subject = fact["subject"]
            if subject is not None and (subject not in newest or fact["time"] > newest[subject]):
                newest[subject] = fact["time"]
        kept.append(job)
    return kept


class FailedFacts:
    """The facts that failed in the engine lately (their digests): a client retrying one
    is refused on sight, so it cannot make the service rebuild again."""

    def __init__(self, size: int = FAILED_REMEMBERED):
        self._failed: dict[str, None] = {}
        self._size = size

    def remember(self, fact: dict) -> None:
        self._failed[_fingerprint(fact)] = None
        while len(self._failed) > self._size:
            self._failed.pop(next(iter(self._failed)))

    def refuse(self, job: Job) -> None:
        """Refuse, without touching the engine, a fact exactly as one that failed in it."""
        if not self._failed:
            return
        why = ["this fact failed in the engine when it was posted before; it is refused without a second attempt"]
        if job.refuse({index: why for index, fact in enumerate(job.facts) if _fingerprint(fact) in self._failed},
                      "_fact"):
            assert job.error is not None       # refuse() set it: the request failed
            raise job.error


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
