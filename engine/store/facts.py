"""The fact log: every fact accepted, once per ``(source, id)``, with the decision ids it
caused (its outcome, returned again when the fact is re-posted).

A fact has two numbers. ``seq`` is its place in arrival order (the API's paging). ``pseq``
is its place in its partition's log: the order the partition's owner evaluated it in,
given by the owner in the transaction that stores what the fact decided. The owner that
evaluates a fact as it is posted stores it with both (:meth:`FactLog.add_facts`). An API
node that holds no engine stores it with ``pseq`` NULL (:meth:`FactLog.add_pending_facts`,
telling the owner on PostgreSQL with ``NOTIFY slm_facts``); the owner reads those in
``seq`` order (:meth:`FactLog.pending_facts`) and settles them (:meth:`FactLog.settle_facts`).
``seq`` cannot be the log's order: PostgreSQL hands it out at insert, not at commit, so
with several API nodes fact 101 can be visible before fact 100 (docs/SCALING.md section 1).

Append-only, and chained in ``pseq`` order (chain.py: each fact with its outcome). Restarts
replay it in ``pseq`` order (with the ticks) to rebuild the engine.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import orjson
import peewee as pw

from engine.store.audit import AuditChains, fact_chain, fact_text
from engine.store.base import CHUNK, between, chunks, equal, where
from engine.store.encoding import canonical_json, instant_text, loads, now_text, required_text
from schemas.records import fact_key
from schemas.values import parse_instant

FACTS_CHANNEL = "slm_facts"         # NOTIFY'd with the partition when an API node stores facts
DECIDED_CHANNEL = "slm_decided"     # NOTIFY'd with the partition when its owner settled facts


class FactLog(AuditChains):
    """Facts: written by the service's single writer, read by replay and the API."""

    def find_facts(self, keys) -> dict[tuple[str, str], list | None]:
        """The stored outcome of each ``(source, id)`` in ``keys`` that is already stored."""
        return {key: outcome for key, (outcome, _) in self.find_fact_records(keys).items()}

    def find_fact_records(self, keys) -> dict[tuple[str, str], tuple[list | None, str]]:
        """(Outcome, canonical JSON as stored) of each ``(source, id)`` already stored."""
        return {key: (loads(outcome), body) for key, (outcome, body) in self._by_key(keys, "outcome, body")}

    def _by_key(self, keys, columns: str, where: str = "") -> Iterator[tuple[tuple[str, str], tuple]]:
        """``columns`` of each stored fact among ``keys`` (``(source, id)`` pairs, with
        ``where`` as a further condition), as ``((source, id), row)``: one statement per
        source and chunk of ids, which the unique index answers."""
        by_source: dict[str, set[str]] = {}
        for source, fid in keys:
            by_source.setdefault(source, set()).add(fid)
        for source, ids in by_source.items():
            for chunk in chunks(sorted(ids)):
                for fid, *row in self._select(self.m.Fact, f"id, {columns}",
                                              f"source = {self.db.param} AND id IN ({self._params(chunk)})" + where,
                                              [source, *chunk]):
                    yield (source, fid), tuple(row)

    def _notify(self, channel: str, partition: str) -> None:
        """Tell listeners (on PostgreSQL, at commit) that ``partition``'s facts changed."""
        if self.postgres:
            self.db.execute_sql("SELECT pg_notify(%s, %s)", (channel, partition))

    def add_facts(self, records: list[tuple[dict, list[str]]]) -> int:
        """Append new facts, evaluated, each with the decision ids it caused, in the order
        given; the ``pseq`` of the last. For the partition's owner: a fact already stored
        is an IntegrityError."""
        now = now_text()
        rows = [dict(_columns(fact), received_at=now, outcome=canonical_json(list(outcome)), partition=self.partition)
                for fact, outcome in records]
        with self.transaction():
            head = self._locked_head(fact_chain(self.partition))
            for place, row in enumerate(rows, start=head.seq + 1):
                row["pseq"] = place
            self._link(head, rows, fact_text)
            self._insert(self.m.Fact, rows)
            return self._moved(head, rows[-1]["pseq"] if rows else head.seq)

    def add_pending_facts(self, facts: list[dict], partition: str | None = None,
                          known: set[tuple[str, str]] | None = None) -> dict[tuple[str, str], int]:
        """Store facts for the owner of ``partition`` (default: this store's) to evaluate (an
        API node, which holds no engine); a fact whose ``(source, id)`` is stored already is left as it is. The seq of
        each fact this call stored, by ``(source, id)``. On PostgreSQL the owner is told at
        commit (``NOTIFY slm_facts``); without it, it finds them at its next poll.
        ``known``: the keys already stored, as the caller read them in this transaction
        (they are not looked up again)."""
        now, partition = now_text(), partition or self.partition
        rows = [dict(_columns(fact), received_at=now, partition=partition) for fact in facts]
        if not rows:
            return {}
        F = self.m.Fact
        with self.transaction():
            before = known if known is not None else set(self.find_fact_records({(r["source"], r["id"])
                                                                                    for r in rows}))
            self._insert(F, rows, skip_existing=True)
            fresh = [(r["source"], r["id"]) for r in rows if (r["source"], r["id"]) not in before]
            stored = self.fact_seqs(fresh, pending_only=True)
            if stored:
                self._notify(FACTS_CHANNEL, partition)
        return stored

    def logged_partitions(self) -> list[str]:
        """The partitions whose logs hold evaluated facts, sorted."""
        rows = self._select(self.m.Fact, "DISTINCT partition", "pseq IS NOT NULL")
        return sorted(str(partition) for partition, in rows)

    def fact_partition(self, source: str, id: str) -> str | None:
        """The partition whose log holds the stored fact ``(source, id)`` (None: not stored)."""
        for _, (partition,) in self._by_key([(source, id)], "partition"):
            return str(partition)
        return None

    def fact_seqs(self, keys: list[tuple[str, str]], pending_only: bool = False) -> dict[tuple[str, str], int]:
        """The seq of each of ``keys`` stored (``pending_only``: and not yet evaluated)."""
        return {key: seq for key, (seq,) in self._by_key(keys, "seq", " AND pseq IS NULL" if pending_only else "")}

    def pending_facts(self, limit: int = CHUNK) -> list[tuple[int, dict]]:
        """The oldest facts of this store's partition stored but not yet evaluated, in seq
        order: ``(seq, stored body)``. A fact the owner refused is not pending."""
        rows = self._select(self.m.Fact, "seq, body",
                            f"partition = {self.db.param} AND pseq IS NULL AND refused IS NULL",
                            [self.partition], f" ORDER BY seq LIMIT {int(limit)}")
        return [(seq, json.loads(body)) for seq, body in rows]

    def pending_count(self) -> int:
        """How many facts wait for their partitions' owners, in all."""
        return sum(self.pending_counts().values())

    def pending_counts(self) -> dict[str, int]:
        """How many facts of each partition wait for their owner: the evaluation lag (a
        partition with none waiting is left out)."""
        return dict(self._select(self.m.Fact, "partition, COUNT(*)", "pseq IS NULL AND refused IS NULL",
                                 tail=" GROUP BY partition"))

    def settle_facts(self, settled: list[tuple[int, list[str]]]) -> int:
        """Record that the owner evaluated stored facts (by seq), in the order given, each
        with the decision ids it caused: each gets the next ``pseq`` of its partition and
        its link in the chain. The ``pseq`` of the last. A fact that is not pending (another
        owner settled it) is a LookupError: nothing is written."""
        partition = self.partition
        if not settled:
            return self.last_fact_seq()
        F = self.m.Fact
        with self.transaction():
            bodies: dict[int, tuple[str, str]] = {}
            for chunk in chunks([seq for seq, _ in settled]):
                bodies.update((seq, (fid, body)) for seq, fid, body in self._select(
                    F, "seq, id, body", f"seq IN ({self._params(chunk)}) AND pseq IS NULL "
                                        f"AND partition = {self.db.param}", [*chunk, partition]))
            missing = [seq for seq, _ in settled if seq not in bodies]
            if missing:
                raise LookupError(f"facts {missing[:5]} are not pending in partition {partition!r}")
            head = self._locked_head(fact_chain(partition))
            last = head.seq + len(settled)
            rows = [dict(seq=seq, id=bodies[seq][0], body=bodies[seq][1], outcome=canonical_json(list(outcome)),
                         pseq=place) for place, (seq, outcome) in enumerate(settled, start=head.seq + 1)]
            self._link(head, rows, fact_text)
            self.db.cursor().executemany(
                f'UPDATE "facts" SET pseq = {self.db.param}, outcome = {self.db.param}, '
                f"prev_hash = {self.db.param}, hash = {self.db.param} WHERE seq = {self.db.param}",
                [(r["pseq"], r["outcome"], r["prev_hash"], r["hash"], r["seq"]) for r in rows])
            self._notify(DECIDED_CHANNEL, partition)
            return self._moved(head, last)

    def refuse_pending(self, refused: dict[int, str]) -> None:
        """Mark stored facts (by seq) that the owner's engine could not evaluate, with why:
        they are no longer pending, have no place in the log and are never replayed."""
        if refused:
            with self.transaction():
                self.db.cursor().executemany(
                    f'UPDATE "facts" SET refused = {self.db.param} WHERE seq = {self.db.param} AND pseq IS NULL',
                    [(why[:500], seq) for seq, why in refused.items()])
                self._notify(DECIDED_CHANNEL, self.partition)

    def fact_states(self, seqs) -> dict[int, dict]:
        """What became of stored facts (by seq): ``{pseq, outcome, refused}`` of each."""
        found: dict[int, dict] = {}
        for chunk in chunks(sorted(set(seqs))):
            for seq, pseq, outcome, refused in self._select(
                    self.m.Fact, "seq, pseq, outcome, refused", f"seq IN ({self._params(chunk)})", chunk):
                found[seq] = {"pseq": pseq, "outcome": loads(outcome), "refused": refused}
        return found

    def _moved(self, head, last: int) -> int:
        self._save_head(head, last)
        return last

    def facts(self, after_seq: int = 0, limit: int | None = None) -> Iterator[dict]:
        """Evaluated facts of this store's partition in log order (``pseq``), each with
        ``seq`` its place in the log, read in chunks: for rebuilding state."""
        F, left, chain = self.m.Fact, limit, fact_chain(self.partition)
        while left is None or left > 0:
            size = CHUNK if left is None else min(left, CHUNK)
            rows = list(F.select().where(self._in_chain(chain, F, after_seq))
                        .order_by(F.pseq).limit(size))
            for row in rows:
                yield {**_stored_fact(row), "seq": row.pseq}
            if len(rows) < size:
                return
            after_seq = rows[-1].pseq
            left = None if left is None else left - len(rows)

    def replayed_facts(self, after_seq: int = 0) -> Iterator[dict]:
        """What a replay reads of :meth:`facts`: ``{"seq": pseq, "fact": stored body}``,
        in log order, in chunks, without the columns and row objects the API's reads
        build (a fifth of a restart's replay went there)."""
        chain, p = fact_chain(self.partition), self.db.param
        while True:          # the rows of _in_chain(chain, after_seq), as plain SQL: peewee's rows cost 5 %
            head = self._head(chain)
            rows = self._select(self.m.Fact, "pseq, body", f"pseq BETWEEN {p} AND {p} AND partition = {p}",
                                [max(1, after_seq + 1), head.seq if head is not None else 0, self.partition],
                                tail=f" ORDER BY pseq LIMIT {CHUNK}")
            for pseq, body in rows:
                yield {"seq": pseq, "fact": orjson.loads(body)}
            if len(rows) < CHUNK:
                return
            after_seq = rows[-1][0]

    def newest_fact_times(self, subjects) -> dict[str, datetime]:
        """The newest event time stored for each of ``subjects`` that has a fact."""
        found: dict[str, datetime] = {}
        for chunk in chunks(sorted(subjects)):
            rows = self._select(self.m.Fact, "subject, MAX(time)", f"subject IN ({self._params(chunk)})", chunk,
                                tail=" GROUP BY subject")
            found.update((subject, parse_instant(newest)) for subject, newest in rows)
        return found

    def last_fact_seq(self) -> int:
        """The place of the last evaluated fact in this store's partition's log (its ``pseq``)."""
        return self._select(self.m.Fact, "MAX(pseq)", f"partition = {self.db.param}", [self.partition])[0][0] or 0

    def fact(self, source: str, id: str) -> dict | None:
        """The fact ``(source, id)`` as stored, if it is in the fact log's chain."""
        F = self.m.Fact
        row = F.select(F.body).where((F.source == source) & (F.id == id) & self._in_fact_chains(F)).first()
        return None if row is None else json.loads(row.body)

    def fact_by_ref(self, key: str) -> dict | None:
        """The fact a decision's ``because`` names (``key`` follows ``fact:``): by source
        and id (schemas.records.fact_key). A decision stored before references carried
        the source names the id alone: that is the fact only if one source posted the id."""
        source, fid = fact_key(key)
        if source is not None and (found := self.fact(source, fid)) is not None:
            return found
        legacy = self.facts_with_id(key)
        return legacy[0]["fact"] if len(legacy) == 1 else None

    def facts_with_id(self, id: str) -> list[dict]:
        """Every stored fact with this id (one per source that posted it), oldest first,
        each with its seq and outcome."""
        F = self.m.Fact
        return [_stored_fact(row) for row in
                F.select().where((F.id == id) & self._in_fact_chains(F)).order_by(F.seq)]

    def unended_facts(self, types: list[str], ends: list[str], at: datetime, service: str | None = None,
                      subject: str | None = None) -> list[dict]:
        """Facts of ``types`` at or before ``at`` (of ``service`` and ``subject`` when given)
        whose subject has no fact of ``ends`` after them, up to ``at``: what may hold an
        inhibition then (engine/notify/inhibit.py), newest first. Facts without a subject
        cannot end and are left out."""
        F, E = self.m.Fact, self.m.Fact.alias("e")
        moment = instant_text(at, "at")
        ended = E.select(E.seq).where((E.subject == F.subject) & E.type.in_(ends) & (E.time > F.time)
                                      & (E.time <= moment) & self._in_fact_chains(E))
        query = where(F.select(F.body), equal(F, service=service, subject=subject)
                      + [F.type.in_(types), F.time <= moment, F.subject.is_null(False), ~pw.fn.EXISTS(ended),
                         self._in_fact_chains(F)])
        return [json.loads(row.body) for row in query.order_by(F.time.desc(), F.seq.desc())]

    def facts_between(self, types: list[str], after: datetime, at: datetime, service: str | None = None) -> list[dict]:
        """Facts of ``types`` (and ``service`` when given) after ``after``, up to ``at``, in event-time order."""
        F = self.m.Fact
        query = where(F.select(F.body), equal(F, service=service)
                      + [F.type.in_(types), F.time > instant_text(after, "after"), F.time <= instant_text(at, "at"),
                         self._in_fact_chains(F)])
        return [json.loads(row.body) for row in query.order_by(F.time, F.seq)]

    def list_facts(self, service=None, subject=None, type=None, since=None, until=None,
                   cursor=None, limit=None) -> tuple[list[dict], str | None]:
        """A page of stored facts, oldest first; since/until bound event time [since, until)."""
        F = self.m.Fact
        query = where(F.select(), equal(F, service=service, subject=subject, type=type)
                      + between(F.time, since, until))
        return self._page(query, F.seq, cursor, limit, _stored_fact)


def _columns(fact: dict) -> dict:
    """A fact's row, but for where it stands in the log."""
    return dict(source=required_text(fact, "source", "a fact"), id=required_text(fact, "id", "a fact"),
                type=required_text(fact, "type", "a fact"), subject=fact.get("subject"),
                service=fact.get("service"), time=instant_text(fact.get("time"), "fact time"),
                body=canonical_json(fact))


def _stored_fact(row) -> dict:
    """A fact as read: ``evaluated`` false while it waits for its partition's owner (its
    ``outcome`` is then null), ``refused`` why the owner could not evaluate it."""
    stored = {"seq": row.seq, "received_at": row.received_at, "outcome": loads(row.outcome),
              "fact": json.loads(row.body), "evaluated": row.pseq is not None}
    if row.refused is not None:
        stored["refused"] = row.refused
    return stored
