"""The decision ledger: every decision once, hash-chained so tampering is found.

Every decision is stored as its canonical JSON and chained: ``hash = sha256(prev_hash +
canonical_json(decision))``, the first ``prev_hash`` being :data:`GENESIS` (64 zeros), so an
edited, deleted or re-hashed record is found by :meth:`Ledger.verify_chain`. A row of the
``chain_head`` table holds the last record's seq, id and hash: appends lock it (``BEGIN
IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE`` on PostgreSQL) so concurrent writers never
fork the chain, and it reveals records cut off the end of the log.

``chain_head`` is keyed by name. There is one chain today, in the ``default`` partition
(models.py), and its head row is named ``decisions``. When the service runs one engine per
partition, each partition's chain gets its own head row named after the partition (the
``default`` partition's included: see docs/SCALING.md).
"""
from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

from engine.store.base import CHUNK, StoreBase, between, chunks, equal, where
from engine.store.encoding import canonical_json, instant_text, required_text

GENESIS = "0" * 64
CHAIN = "decisions"          # the chain head row's name


def chain_hash(prev_hash: str, body: str) -> str:
    """The hash of a decision record whose canonical JSON is ``body``."""
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


class Ledger(StoreBase):
    """Decisions: appended in chain order, read by id or in pages, verified end to end."""

    def _start_chain(self) -> None:
        """The chain head row of an empty chain, unless there is one."""
        (self.m.ChainHead.insert(name=CHAIN, seq=0, last_id=None, hash=GENESIS)
         .on_conflict_ignore().execute())

    def add_decisions(self, decisions) -> list[str]:
        """Append the decisions not yet stored, chained in the order given; their ids."""
        decisions = list(decisions)
        rows = [self._decision_row(d) for d in decisions]
        if not rows:
            return []
        D = self.m.Decision
        with self.transaction():
            head = self._lock_chain()
            known = self._existing(D, [r["id"] for r in rows])
            seq, prev, fresh = head.seq, head.hash, []
            for row in rows:
                if row["id"] in known:
                    continue
                known.add(row["id"])
                seq += 1
                row.update(seq=seq, prev_hash=prev, hash=chain_hash(prev, row["body"]))
                prev = row["hash"]
                fresh.append(row)
            self._insert(D, fresh)
            if fresh:
                (self.m.ChainHead.update(seq=seq, last_id=fresh[-1]["id"], hash=prev)
                 .where(self.m.ChainHead.name == CHAIN).execute())
        return [row["id"] for row in fresh]

    @staticmethod
    def _decision_row(decision: dict) -> dict:
        rule = decision.get("rule") or {}
        return dict(id=required_text(decision, "id", "a decision"),
                    kind=required_text(decision, "kind", "a decision"),
                    target=decision.get("target"), subject=decision.get("subject"),
                    service=decision.get("service"), agreement=decision.get("agreement"),
                    at=instant_text(decision.get("at"), "decision at"),
                    ruleset=rule.get("ruleset") if isinstance(rule, dict) else None,
                    body=canonical_json(decision))

    def _lock_chain(self) -> SimpleNamespace:
        """The chain head, locked until the transaction ends (SQLite: BEGIN IMMEDIATE)."""
        (seq, hash), = self._select(self.m.ChainHead, "seq, hash", f"name = {self.db.param}", [CHAIN],
                                    " FOR UPDATE" if self.postgres else "")
        return SimpleNamespace(seq=seq, hash=hash)

    def decision(self, id: str) -> dict | None:
        D = self.m.Decision
        row = D.select(D.body).where(D.id == id).first()
        return None if row is None else json.loads(row.body)

    def decisions_by_id(self, ids) -> dict[str, dict]:
        """The stored decisions among ``ids``, by id (one query per chunk)."""
        D, found = self.m.Decision, {}
        for chunk in chunks(sorted(set(ids))):
            found.update((r.id, json.loads(r.body)) for r in D.select(D.id, D.body).where(D.id.in_(chunk)))
        return found

    def list_decisions(self, service=None, target=None, subject=None, kind=None, since=None,
                       until=None, cursor=None, limit=None) -> tuple[list[dict], str | None]:
        """A page of decisions in log order; since/until bound ``at`` as [since, until)."""
        D = self.m.Decision
        query = where(D.select(D.seq, D.body),
                      equal(D, service=service, target=target, subject=subject, kind=kind)
                      + between(D.at, since, until))
        return self._page(query, D.seq, cursor, limit, lambda r: json.loads(r.body))

    def decision_count(self) -> int:
        return self.m.Decision.select().count()

    def verify_chain(self) -> dict:
        """Recompute the chain from the stored JSON up to the head; report the first break."""
        D = self.m.Decision
        head = self.m.ChainHead.select().where(self.m.ChainHead.name == CHAIN).first()
        if head is None:
            return _broken(0, None, None, "the chain head record is missing")
        prev, expected, checked = GENESIS, 1, 0
        while expected <= head.seq:
            rows = list(D.select().where((D.seq >= expected) & (D.seq <= head.seq))
                        .order_by(D.seq).limit(CHUNK))
            if not rows:
                break
            for row in rows:
                reason = _check(row, prev, expected)
                if reason:
                    return _broken(checked, row.seq, row.id, reason)
                prev, expected, checked = row.hash, row.seq + 1, checked + 1
        if expected <= head.seq:
            return _broken(checked, head.seq, head.last_id,
                           f"records {expected}..{head.seq} are missing from the end of the log")
        if prev != head.hash:
            return _broken(checked, head.seq, head.last_id,
                           "the last record's hash differs from the chain head")
        return {"ok": True, "checked": checked, "first_broken": None}


def _check(row, prev: str, expected_seq: int) -> str | None:
    """Why a decision record breaks the chain, or None."""
    if chain_hash(row.prev_hash, row.body) != row.hash:
        return "hash does not match the record's contents (record or hash edited)"
    if row.prev_hash != prev:
        missing = (f"; records {expected_seq}..{row.seq - 1} are missing"
                   if row.seq != expected_seq else "")
        return f"prev_hash does not match the preceding record's hash{missing}"
    if row.seq != expected_seq:
        return f"seq {row.seq} follows seq {expected_seq - 1}"
    try:
        record = json.loads(row.body)
    except ValueError:
        return "stored JSON does not parse"
    for column in ("id", "kind", "target", "subject", "service"):
        if record.get(column) != getattr(row, column):
            return f"column {column!r} disagrees with the stored record"
    try:
        at = instant_text(record.get("at"), "at")
    except ValueError:
        at = None
    return None if at == row.at else "column 'at' disagrees with the stored record"


def _broken(checked: int, seq, id, reason: str) -> dict:
    return {"ok": False, "checked": checked,
            "first_broken": {"seq": seq, "id": id, "reason": reason}}
