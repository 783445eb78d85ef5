"""The store's side of the audit chains (chain.py): head rows locked while records are
appended, and verification of every chain, optionally against a signed checkpoint.

Appends lock the chain's head row (``BEGIN IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE``
on PostgreSQL) so concurrent writers never fork a chain. Writers take the heads in one
order (facts, decisions, notifications, deliveries), and the deliveries head before any
notification row they change, so they never wait on each other in a circle.

The deliveries chain says what delivery did to each notification; verifying it also
checks that every notification's delivery columns (status, attempts, last error, message
id, next attempt) are what its last chained outcome says, so a ``failed`` turned into
``sent`` in the database is named.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

from engine.store.base import CHUNK, StoreBase
from engine.store.chain import CHAINS, GENESIS, AuditKeyError, Head, checkpoint, checkpoint_problem, extend, link
from engine.store.encoding import instant_text, now_text


def fact_text(row) -> str:
    """What a fact's link covers: the fact and the decisions it caused."""
    # a row's fields are untyped: a dict about to be inserted, or a peewee row
    get: Callable[[str], Any] = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return get("body") + "\n" + (get("outcome") or "null")


def body_text(row) -> str:
    return row["body"] if isinstance(row, dict) else row.body


class ChainCheck(TypedDict):
    """What verifying one chain found (:meth:`AuditChains.verify_audit`)."""

    ok: bool
    checked: int                                # records walked
    count: int | None                           # records the head counts
    first_seq: int | None
    last_seq: int | None
    keyed_from: int | None
    macs_checked: bool                          # False: keyed links not checked (no key)
    first_broken: dict[str, object] | None      # seq, id, reason
    checkpoint_ok: NotRequired[bool]            # with a checkpoint


class AuditChains(StoreBase):
    """Heads, appends and verification of the decision, fact, notification and delivery chains."""

    audit_key: bytes | None = None

    def _start_chain(self) -> None:
        """A head row for each chain that has none (a new database)."""
        H = self.m.ChainHead
        for name in CHAINS:
            if H.select().where(H.name == name).exists():
                continue
            start = 1 if name == "decisions" else (self._select(self._chained(name), f"MAX({_order(name)})")[0][0]
                                                   or 0) + 1
            head = Head(name, start - 1, 0, GENESIS, None, start, None, None)
            head.seal(None)
            H.insert(**_row(head)).on_conflict_ignore().execute()

    def _chained(self, name: str):
        return {"decisions": self.m.Decision, "facts": self.m.Fact, "notifications": self.m.Notification,
                "deliveries": self.m.Delivery}[name]

    def _head(self, name: str, lock: bool = False) -> Head | None:
        rows = self._select(self.m.ChainHead, "name, seq, count, hash, last_id, chained_from, keyed_from, mac",
                            f"name = {self.db.param}", [name], " FOR UPDATE" if lock and self.postgres else "")
        return Head(*rows[0]) if rows else None

    def _locked_head(self, name: str) -> Head:
        """The chain's head, locked until the transaction ends."""
        head = self._head(name, lock=True)
        if head is None:
            raise AuditKeyError(f"the {name} chain has no head row")
        return head

    def _advance(self, head: Head, rows: list[dict], text, seq: int) -> None:
        """Link ``rows`` after ``head`` (they are inserted next) and store the head as moved
        to ``seq``, sealed."""
        self._link(head, rows, text)
        self._save_head(head, seq)

    def _link(self, head: Head, rows: list[dict], text) -> None:
        extend(head, self.audit_key, rows, text)

    def _save_head(self, head: Head, seq: int) -> None:
        head.seq = seq
        head.seal(self.audit_key)
        H = self.m.ChainHead
        H.update(**_row(head)).where(H.name == head.name).execute()

    # ---- verification -------------------------------------------------------------------
    def audit_checkpoint(self) -> dict:
        """The heads of every chain, signed with the audit key (AuditKeyError without one)."""
        if self.audit_key is None:
            raise AuditKeyError("a checkpoint is signed with the audit key (--audit-key-file)")
        heads = {name: self._head(name) for name in CHAINS}
        return checkpoint({n: h for n, h in heads.items() if h is not None}, self.audit_key, now_text())

    def verify_audit(self, point: dict | None = None) -> dict:
        """Every chain walked from its first record to its head; with ``point`` (a
        checkpoint), also that each chain still holds, unchanged, the record it ended at.
        Per chain: ok, records checked, the head's count and first and last seq, whether the
        keyed links were checked (they need the key), and the first broken record."""
        problem = checkpoint_problem(point, self.audit_key) if point is not None else None
        chains = {}
        for name in CHAINS:
            pin = (point or {}).get("chains", {}).get(name) if problem is None else None
            chains[name] = self._verify_chain(name, pin)
        ok = problem is None and all(c["ok"] for c in chains.values())
        out = {"ok": ok, "chains": chains}
        if point is not None:
            out["checkpoint"] = {"ok": problem is None and all(c.get("checkpoint_ok", True) for c in chains.values()),
                                 "at": point.get("at") if isinstance(point, dict) else None,
                                 "problem": problem}
        return out

    def _verify_chain(self, name: str, pin: dict | None) -> ChainCheck:
        model, key = self._chained(name), self.audit_key
        text = fact_text if name == "facts" else body_text
        head = self._head(name)
        result: ChainCheck = {"ok": True, "checked": 0, "count": None, "first_seq": None, "last_seq": None,
                              "keyed_from": None, "macs_checked": True, "first_broken": None}
        if head is None:
            return _broken(result, 0, None, "the chain head record is missing")
        result["count"], result["keyed_from"] = head.count, head.keyed_from
        if head.keyed_from is not None and key is None:
            result["macs_checked"] = False
        prev, expected = GENESIS, head.chained_from
        pinned = None
        after = head.chained_from - 1
        order = getattr(model, _order(name))        # facts: the log's order, not arrival
        while True:
            rows = list(model.select().where(order > after).order_by(order).limit(CHUNK))
            for row in rows:
                seq = getattr(row, order.name)
                if seq > head.seq:
                    return _broken(result, seq, _ident(row), f"a record after the chain head (seq {head.seq}): "
                                                             "added outside the service")
                reason = _check(row, seq, prev, expected if name == "decisions" else seq,
                                head.key_for(seq, key), text, name,
                                result["macs_checked"] or seq < (head.keyed_from or 0))
                if reason:
                    return _broken(result, seq, _ident(row), reason)
                prev, expected = row.hash, seq + 1
                result["checked"] += 1
                result["first_seq"] = result["first_seq"] or seq
                result["last_seq"] = seq
                if pin and seq == pin.get("seq"):
                    pinned = (row.hash, result["checked"])
            if len(rows) < CHUNK:
                break
            after = getattr(rows[-1], order.name)
        if result["checked"] < head.count or (result["last_seq"] or head.chained_from - 1) < head.seq:
            return _broken(result, head.seq, head.last_id,
                           f"records {result['checked'] + 1}..{head.count} of the chain are missing from the end "
                           f"of the log (the head ends at seq {head.seq})")
        if prev != head.hash:
            return _broken(result, head.seq, head.last_id, "the last record's hash differs from the chain head")
        if result["checked"] != head.count:
            return _broken(result, head.seq, head.last_id,
                           f"the head counts {head.count} records, the chain holds {result['checked']}")
        if not head.sealed(key) and not (head.keyed_from is not None and key is None):
            return _broken(result, head.seq, head.last_id, "the chain head's seal does not verify "
                                                           "(the head was edited, or this is another audit key)")
        if pin:
            _against(result, pin, pinned, head)
        if name == "deliveries" and result["ok"]:
            self._check_outbox(result)
        return result

    def _check_outbox(self, result: ChainCheck) -> None:
        """Each notification's delivery columns against its last chained outcome (the
        notifications stored before outcomes were chained have none until they change).
        A page of notifications at a time, their last outcomes looked up by the index on
        ``deliveries.notification``: a correlated MAX per row let PostgreSQL scan the whole
        delivery log once per notification."""
        p, after = self.db.param, 0
        while True:
            notes = self.db.execute_sql(
                f'SELECT seq, id, status, attempts, last_error, message_id, next_attempt_at FROM "notifications" '
                f"WHERE seq > {p} ORDER BY seq LIMIT {CHUNK}", [after]).fetchall()
            last = self._last_outcomes([nid for _, nid, *_ in notes])
            for _, nid, *columns in notes:
                if nid in last:
                    seq, body = last[nid]
                    reason = _disagreement(nid, dict(zip(DELIVERY_STATE, columns, strict=True)), seq, body)
                    if reason:
                        _broken(result, seq, nid, reason)
                        return
            if len(notes) < CHUNK:
                return
            after = notes[-1][0]

    def _last_outcomes(self, ids: list[str]) -> dict[str, tuple[int, str]]:
        """Notification id -> (seq, body) of its newest delivery outcome, for those that have one."""
        if not ids:
            return {}
        rows = self.db.execute_sql(
            f'SELECT notification, seq, body FROM "deliveries" WHERE seq IN '
            f'(SELECT MAX(seq) FROM "deliveries" WHERE notification IN ({", ".join([self.db.param] * len(ids))}) '
            f"GROUP BY notification)", ids).fetchall()
        return {nid: (seq, body) for nid, seq, body in rows}


def _order(name: str) -> str:
    """The column a chain is linked in: a fact's place in its partition's log (``pseq``,
    facts.py), every other record's ``seq``."""
    return "pseq" if name == "facts" else "seq"


def _check(row, seq: int, prev: str, expected_seq: int, key, text, name: str, check_mac: bool) -> str | None:
    """Why a record (at ``seq`` in its chain's order) breaks its chain, or None."""
    if check_mac and link(key, row.prev_hash, text(row)) != row.hash:
        return "hash does not match the record's contents (record or hash edited)"
    if row.prev_hash != prev:
        missing = (f"; records {expected_seq}..{seq - 1} are missing"
                   if seq != expected_seq else "")
        return f"prev_hash does not match the preceding record's hash{missing}"
    if seq != expected_seq:
        return f"seq {seq} follows seq {expected_seq - 1}"
    try:
        record = json.loads(row.body)
    except ValueError:
        return "stored JSON does not parse"
    columns = {"decisions": ("id", "kind", "target", "subject", "service"),
               "facts": ("id", "source", "type", "subject", "service"),
               "notifications": ("id", "recipient"),
               "deliveries": ("notification", "event", "status", "at")}[name]
    for column in columns:
        if record.get(column) != getattr(row, column):
            return f"column {column!r} disagrees with the stored record"
    if name == "notifications":
        return (None if record.get("decision") == row.decision_id
                else "column 'decision' disagrees with the stored record")
    if name == "deliveries":
        return None
    field, column = ("at", row.at) if name == "decisions" else ("time", row.time)
    try:
        at = instant_text(record.get(field), field)
    except ValueError:
        at = None
    return None if at == column else f"column {field!r} disagrees with the stored record"


DELIVERY_STATE = ("status", "attempts", "last_error", "message_id", "next_attempt_at")


def _disagreement(nid: str, columns: dict, seq: int, body: str) -> str | None:
    """Why notification ``nid``'s delivery columns are not what its last outcome says."""
    try:
        chained = json.loads(body)
    except ValueError:
        return "stored JSON does not parse"
    for field in DELIVERY_STATE:
        if (columns[field] or None) != (chained.get(field) or None):
            return (f"notification {nid}: its {field} is {columns[field]!r}, its last chained delivery outcome "
                    f"(seq {seq}, {chained.get('event')}) says {chained.get(field)!r}: the delivery columns "
                    "were changed outside the service")
    return None


def _ident(row) -> str | None:
    """What names a chained record: its id (a delivery outcome: its notification's)."""
    return getattr(row, "id", None) if not hasattr(row, "notification") else row.notification


def _against(result: ChainCheck, pin: dict, pinned, head: Head) -> None:
    """The checkpoint's record of this chain still there, unchanged, with as many before it."""
    seq = pin.get("seq") or 0
    result["checkpoint_ok"] = True
    if seq < head.chained_from:
        return
    if pinned is None:
        result["checkpoint_ok"] = False
        _broken(result, seq, None, f"the checkpoint's record (seq {seq}) is gone: the log was cut back "
                                   f"(it now ends at seq {head.seq})")
    elif pinned[0] != pin.get("hash"):
        result["checkpoint_ok"] = False
        _broken(result, seq, None, "the record at the checkpoint was rewritten (its hash differs)")
    elif pinned[1] != pin.get("count"):
        result["checkpoint_ok"] = False
        _broken(result, seq, None, f"{pin.get('count')} records led up to the checkpoint, {pinned[1]} do now")


def _broken(result: ChainCheck, seq, id, reason: str) -> ChainCheck:
    result["ok"], result["first_broken"] = False, {"seq": seq, "id": id, "reason": reason}
    return result


def _row(head: Head) -> dict:
    return dict(name=head.name, seq=head.seq, count=head.count, hash=head.hash, last_id=head.last_id,
                chained_from=head.chained_from, keyed_from=head.keyed_from, mac=head.mac)
