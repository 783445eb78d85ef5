"""The clock book: every clock the engine keeps, found by key or subject, and the deadline
schedule across them.

A clock record is a clock (engine.eval.clock) plus what the engine needs around it: the
transitions it was given (so it can be rebuilt when a late fact arrives), the decisions
it issued, and its place in the schedule. The schedule is a heap of
``(deadline, counter, key)``; an entry is live only while it equals the record's
``scheduled``, so rescheduling never searches the heap.

While a write is in progress the book has a :class:`engine.eval.undo.Journal`: a record is
copied (:func:`record_image`) before the first change after a mark (the book hands out
records only through its methods, which keep them), and what the book itself changes
leaves its inverse there.
"""
from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.eval.clock import Clock, ReadingKey, Transition
from engine.eval.undo import Inverse, Journal
from engine.lang.model import Target
from schemas.records import Decision


@dataclass
class ClockRecord:
    key: str                  # "<target>/<subject>" or "<target>/<window label>"
    target: Target
    subject: str
    clock: Clock
    transitions: list[Transition] = field(default_factory=list)
    # window clocks: subject -> sorted (at, seq, action)
    signals: dict[str, list[tuple[datetime, int, str]]] = field(default_factory=dict)
    issued: dict[ReadingKey, Decision] = field(default_factory=dict)
    revisions: dict[ReadingKey, int] = field(default_factory=dict)     # reading key -> times superseded
    running_fact: dict[str, Any] | None = None          # its clock.running fact, while held for a join
    last_transition: datetime | None = None
    last_fired: datetime | None = None
    scheduled: tuple[datetime, int] | None = None       # (deadline, counter) of its live heap entry
    carried: bool = False                               # window clocks: the next window started down
    # The rule-set versions it ran under: (None, the version its start fact was applied
    # under), then (cut-over instant, version) for each rule change that repriced it.
    versions: list[tuple[datetime | None, str]] = field(default_factory=list)
    # A rolling budget's settled past (engine.eval.settle): the instant up to which its
    # transitions were folded, and its clock's state then (engine.eval.clockstate).
    settled: datetime | None = None
    base: dict[str, Any] | None = None

    @property
    def version(self) -> str:
        return self.versions[-1][1]

    def record_transition(self, transition: Transition) -> bool:
        """Keep a transition for rebuilding; whether it is late for this clock (before one
        already applied, or at or before a deadline that already fired)."""
        late = bool((self.last_transition and transition.at < self.last_transition)
                    or (self.last_fired and transition.at <= self.last_fired))
        self.transitions.append(transition)
        if self.last_transition is None or transition.at > self.last_transition:
            self.last_transition = transition.at
        if transition.subject is not None:
            bisect.insort(self.signals.setdefault(transition.subject, []),
                          (transition.at, transition.seq, transition.action))
        return late

    def changes_state(self, transition: Transition) -> bool:
        """False for a late window signal that leaves its subject as it was: an ``up`` for a
        subject already up then. Replaying the window would read exactly as it does now, so
        a late healthy sample (the common case: many monitors, slightly out of order) costs
        no replay of the window's whole history."""
        if transition.subject is None or transition.action != "up":
            return True
        history = self.signals[transition.subject]
        before = bisect.bisect_left(history, (transition.at, transition.seq, transition.action))
        return before > 0 and history[before - 1][2] == "down"

    def issue(self, key: ReadingKey, decision: Decision) -> None:
        self.issued[key] = decision
        if self.last_fired is None or decision.at > self.last_fired:
            self.last_fired = decision.at

    def finished_at(self) -> datetime | None:
        """When a stopped clock (or a closed window) was last touched; None while it runs."""
        if self.clock.running or self.scheduled is not None or self.running_fact is not None:
            return None
        window = self.clock.window
        return max(filter(None, [self.last_transition, self.last_fired, window and window.end]), default=None)


def record_image(record: ClockRecord) -> Inverse:
    """What puts ``record`` and its clock back as they are now. Containers are copied,
    except the append-only history: the transitions (and the window signals, which grow
    with them) are cut back to their length now, so a copy costs what the clock is, not
    how long it ran."""
    saved = record.__dict__.copy()
    saved["issued"], saved["revisions"], saved["versions"] = \
        record.issued.copy(), record.revisions.copy(), record.versions.copy()
    transitions, count = record.transitions, len(record.transitions)
    signals = record.signals
    subjects = set(signals) if signals else None
    clock = record.clock
    state = clock.attributes()

    def restore() -> None:
        for change in transitions[count:]:
            if change.subject is not None:
                history = signals[change.subject]
                del history[bisect.bisect_left(history, (change.at, change.seq, change.action))]
        del transitions[count:]
        for subject in [s for s in signals if subjects is None or s not in subjects]:
            del signals[subject]
        clock.__dict__.clear()
        clock.__dict__.update(state)
        record.__dict__.clear()
        record.__dict__.update(saved)
    return restore


class ClockBook:
    """The clocks by key and by subject, and the heap of their next deadlines."""

    journal: Journal | None = None          # set while a write is in progress (engine.eval.undo)

    def __init__(self) -> None:
        self.records: dict[str, ClockRecord] = {}
        self.by_subject: dict[str, list[str]] = {}
        self.heap: list[tuple[datetime, int, str]] = []     # (deadline, counter, key)
        self.counter = 0                                # tie-break of equal deadlines: scheduling order
        self.finished: list[tuple[datetime, str]] = []  # heap of (finished at, key): what to forget next
        self.live: set[str] = set()                     # keys of the clocks running now
        # Keys of the clocks added, changed or forgotten since a reader last took them, while
        # one tracks them (engine.service.clockview sets a set; None: nobody asks, nothing kept).
        self.touched: set[str] | None = None

    def _kept(self, record: ClockRecord) -> ClockRecord:
        """``record``, copied first if a write is in progress (it may change it)."""
        if self.journal is not None:
            self.journal.keep(record, lambda: record_image(record))
        return record

    def get(self, key: str) -> ClockRecord | None:
        record = self.records.get(key)
        return record if record is None or self.journal is None else self._kept(record)

    def add(self, record: ClockRecord, indexed: bool) -> ClockRecord:
        """Keep a new clock (a record made for it, never one kept before); ``indexed``:
        findable by its subject (duration clocks)."""
        journal = self.journal
        if journal is not None:
            journal.put(self.records, record.key)
            # rolling back past here takes the record out, so it is never copied before this
            # write's next mark: a batch that opens an incident and acknowledges it copies nothing
            journal.made(record)
        self.records[record.key] = record
        if self.touched is not None:
            self.touched.add(record.key)
        if record.clock.running:
            self._live(record.key, True)
        if indexed:
            if journal is not None:
                journal.appended(self.by_subject, record.subject)
            self.by_subject.setdefault(record.subject, []).append(record.key)
        return record

    def of_subject(self, subject: str) -> list[ClockRecord]:
        return [self._kept(self.records[key]) for key in self.by_subject.get(subject, ())]

    def _live(self, key: str, running: bool) -> None:
        live, journal = self.live, self.journal
        if running:
            if journal is not None:
                journal.add(live, key)
            live.add(key)
        elif key in live:
            if journal is not None:
                journal.undo(lambda: live.add(key))
            live.discard(key)

    def _push(self, heap: list[Any], entry: Any) -> None:
        if self.journal is not None:
            self.journal.undo(lambda: _unpush(heap, entry))
        heapq.heappush(heap, entry)

    def _pop(self, heap: list[Any]) -> Any:
        entry = heapq.heappop(heap)
        if self.journal is not None:
            self.journal.undo(lambda: heapq.heappush(heap, entry))
        return entry

    def next_count(self) -> int:
        self.counter += 1
        return self.counter

    def schedule(self, record: ClockRecord) -> None:
        """Put the record's next deadline on the heap (after every change to its clock)."""
        if self.touched is not None:
            self.touched.add(record.key)
        self._live(record.key, record.clock.running)
        deadline = record.clock.next_deadline()
        if deadline is None:
            record.scheduled = None
            finished = record.finished_at()
            if finished is not None:
                self._push(self.finished, (finished, record.key))
            return
        counter = self.next_count()
        record.scheduled = (deadline, counter)
        self._push(self.heap, (deadline, counter, record.key))

    def next_deadline(self) -> datetime | None:
        """The earliest live deadline (stale heap entries are dropped on the way)."""
        heap = self.heap
        while heap:
            deadline, counter, key = heap[0]
            record = self.records.get(key)             # None: a clock forgotten under ``retain``
            if record is not None and record.scheduled == (deadline, counter):
                return deadline
            self._pop(heap)
        return None

    def pop_due(self) -> ClockRecord:
        """Take the record whose deadline :meth:`next_deadline` just named off the schedule."""
        _, _, key = self._pop(self.heap)
        record = self._kept(self.records[key])
        record.scheduled = None
        return record

    def forget_finished(self, horizon: datetime) -> list[ClockRecord]:
        """Drop the clocks that finished before ``horizon``; the ones dropped. Looks only at
        the oldest finished clocks (a clock revived by a late fact is pushed again when it
        finishes again), so a sweep costs what it forgets, not the size of the book."""
        gone: list[ClockRecord] = []
        while self.finished and self.finished[0][0] < horizon:
            at, key = self._pop(self.finished)
            record = self.records.get(key)
            if record is None or record.finished_at() != at:
                continue                                    # forgotten already, revived, or touched since
            if not gone and self.journal is not None:
                self.journal.undo(self._image_of_maps())
            del self.records[key]
            if self.touched is not None:
                self.touched.add(key)
            keys = self.by_subject.get(record.subject)
            if keys and key in keys:
                keys.remove(key)
                if not keys:
                    del self.by_subject[record.subject]
            gone.append(record)
        return gone

    def _image_of_maps(self) -> Inverse:
        """What puts the records and the subject index back, in their order (before the
        first clock a sweep forgets)."""
        records, by_subject = self.records, self.by_subject
        saved, subjects = dict(records), {s: list(keys) for s, keys in by_subject.items()}

        def restore() -> None:
            records.clear()
            records.update(saved)
            by_subject.clear()
            by_subject.update(subjects)
        return restore

    def running_records(self, ordered: bool = True) -> list[ClockRecord]:
        """The records whose clocks run now (in key order, if ``ordered``): what a rule
        change looks at."""
        keys = sorted(self.live) if ordered else self.live
        return [self._kept(self.records[key]) for key in keys if key in self.records]

    def rebuild_finished(self) -> None:
        """The finished heap and the running set from the records (after a state is restored)."""
        self.live = {key for key, r in self.records.items() if r.clock.running}
        self.finished = [(at, key) for key, r in self.records.items() if (at := r.finished_at()) is not None]
        heapq.heapify(self.finished)

    def running(self) -> Iterator[ClockRecord]:
        """The clocks running a cycle now."""
        return (r for r in self.records.values() if r.clock.running and r.clock.cycle > 0)



def _unpush(heap: list[Any], entry: Any) -> None:
    """Take back an entry pushed on a heap (rolling a write back: rare, so a linear search)."""
    heap.remove(entry)
    heapq.heapify(heap)
