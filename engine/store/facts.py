"""The fact log: every fact accepted, once per ``(source, id)``, in arrival order, with the
decision ids it caused (its outcome, returned again when the fact is re-posted).

Append-only, and chained (chain.py: each fact with its outcome). Restarts replay it in
seq order (with the ticks) to rebuild the engine.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from engine.store.audit import AuditChains, fact_text
from engine.store.base import CHUNK, between, chunks, equal, where
from engine.store.encoding import canonical_json, instant_text, loads, now_text, required_text
from schemas.records import fact_key
from schemas.values import parse_instant


class FactLog(AuditChains):
    """Facts: written by the service's single writer, read by replay and the API."""

    def find_facts(self, keys) -> dict[tuple[str, str], list | None]:
        """The stored outcome of each ``(source, id)`` in ``keys`` that is already stored."""
        return {key: outcome for key, (outcome, _) in self.find_fact_records(keys).items()}

    def find_fact_records(self, keys) -> dict[tuple[str, str], tuple[list | None, str]]:
        """(Outcome, canonical JSON as stored) of each ``(source, id)`` already stored."""
        F = self.m.Fact
        by_source: dict[str, set[str]] = {}
        found: dict[tuple[str, str], tuple[list | None, str]] = {}
        for source, fid in keys:
            by_source.setdefault(source, set()).add(fid)
        for source, ids in by_source.items():
            for chunk in chunks(sorted(ids)):
                rows = self._select(F, "id, outcome, body",
                                    f"source = {self.db.param} AND id IN ({self._params(chunk)})",
                                    [source, *chunk])
                found.update(((source, fid), (loads(outcome), body)) for fid, outcome, body in rows)
        return found

    def add_facts(self, records: list[tuple[dict, list[str]]]) -> int:
        """Append new facts, each with the decision ids it caused, in the order given; the
        seq of the last. For the single writer: a fact already stored is an IntegrityError."""
        now = now_text()
        rows = [dict(source=required_text(fact, "source", "a fact"), id=required_text(fact, "id", "a fact"),
                     type=required_text(fact, "type", "a fact"), subject=fact.get("subject"),
                     service=fact.get("service"), time=instant_text(fact.get("time"), "fact time"),
                     body=canonical_json(fact), received_at=now, outcome=canonical_json(list(outcome)))
                for fact, outcome in records]
        with self.transaction():
            head = self._locked_head("facts")
            self._link(head, rows, fact_text)
            self._insert(self.m.Fact, rows)
            last = self.last_fact_seq()
            self._save_head(head, last)
            return last

    def facts(self, after_seq: int = 0, limit: int | None = None) -> Iterator[dict]:
        """Stored facts in seq order (arrival order), read in chunks: for rebuilding state."""
        F, left = self.m.Fact, limit
        while left is None or left > 0:
            size = CHUNK if left is None else min(left, CHUNK)
            rows = list(F.select().where((F.seq > after_seq) & self._in_chain("facts", F))
                        .order_by(F.seq).limit(size))
            for row in rows:
                yield _stored_fact(row)
            if len(rows) < size:
                return
            after_seq = rows[-1].seq
            left = None if left is None else left - len(rows)

    def newest_fact_times(self, subjects) -> dict[str, datetime]:
        """The newest event time stored for each of ``subjects`` that has a fact."""
        found: dict[str, datetime] = {}
        for chunk in chunks(sorted(subjects)):
            rows = self._select(self.m.Fact, "subject, MAX(time)", f"subject IN ({self._params(chunk)})", chunk,
                                tail=" GROUP BY subject")
            found.update((subject, parse_instant(newest)) for subject, newest in rows)
        return found

    def last_fact_seq(self) -> int:
        return self._select(self.m.Fact, "MAX(seq)")[0][0] or 0

    def fact(self, source: str, id: str) -> dict | None:
        """The fact ``(source, id)`` as stored, if it is in the fact log's chain."""
        F = self.m.Fact
        row = F.select(F.body).where((F.source == source) & (F.id == id) & self._in_chain("facts", F)).first()
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
                F.select().where((F.id == id) & self._in_chain("facts", F)).order_by(F.seq)]

    def list_facts(self, service=None, subject=None, type=None, since=None, until=None,
                   cursor=None, limit=None) -> tuple[list[dict], str | None]:
        """A page of stored facts, oldest first; since/until bound event time [since, until)."""
        F = self.m.Fact
        query = where(F.select(), equal(F, service=service, subject=subject, type=type)
                      + between(F.time, since, until))
        return self._page(query, F.seq, cursor, limit, _stored_fact)


def _stored_fact(row) -> dict:
    return {"seq": row.seq, "received_at": row.received_at, "outcome": loads(row.outcome),
            "fact": json.loads(row.body)}
