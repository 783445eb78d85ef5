"""The store's side of the audit chains (chain.py): head rows locked while records are
appended, and verification of every chain, optionally against a signed checkpoint.

A row is a link of its chain when its seq lies between the chain's first and its head's
(facts and notifications stored before chaining, from seq 1, are served but reported as
predating it). Verification names every other row (a seq of 0 or less, one past the
head), and reads serve none of them (:meth:`AuditChains._in_chain`). Verified with an
audit key, a chain that holds records must be keyed by it: one re-linked with plain
SHA-256 and its ``keyed_from`` cleared would otherwise pass.

The cut-over chain records each rule set put in force (its version, the hash of its
files), when, where in the log and by whom; verifying it also checks that every stored
rule set's files still hash to its version, so an old version's text edited in the
database is named.

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

import functools
import json
import operator
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

import peewee as pw

from engine.store.base import CHUNK, StoreBase
from engine.store.chain import CHAINS, GENESIS, AuditKeyError, Head, checkpoint, checkpoint_problem, extend, link
from engine.store.encoding import instant_text, now_text
from engine.store.models import DEFAULT_PARTITION


def fact_text(row) -> str:
    """What a fact's link covers: the fact and the decisions it caused."""
    # a row's fields are untyped: a dict about to be inserted, or a peewee row
    get: Callable[[str], Any] = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return get("body") + "\n" + (get("outcome") or "null")


def body_text(row) -> str:
    return row["body"] if isinstance(row, dict) else row.body


MAX_NAMED = 100             # rows outside a chain named one by one (the count says how many in all)
OUTSIDE = "not a link of the chain: added outside the service"


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
    outside: list[dict[str, object]]            # rows that are not links of the chain: seq, id
    outside_count: int


class AuditChains(StoreBase):
    """Heads, appends and verification of the decision, fact, notification and delivery chains."""

    audit_key: bytes | None = None

    def _start_chain(self) -> None:
        """A head row for each chain that has none (a new database)."""
        H = self.m.ChainHead
        for name in (*CHAINS, fact_chain(self.partition)):
            if H.select().where(H.name == name).exists():
                continue
            if name == "cutovers":
                self._start_cutover_chain()
                continue
            model = self._chained(name)
            start = 1 if name == "decisions" else (model.select(pw.fn.MAX(getattr(model, _order(name))))
                                                   .where(self._of_chain(name, model)).scalar() or 0) + 1
            head = Head(name, start - 1, 0, GENESIS, None, start, None, None)
            head.seal(None)
            H.insert(**_row(head)).on_conflict_ignore().execute()

    def _start_cutover_chain(self) -> None:
        """The cut-over chain's head, linking the cut-overs already stored (a database of
        schema version 8 or before: their bodies were filled in by the upgrade) in order,
        with the audit key if this store has it."""
        C = self.m.Cutover
        rows = [{"seq": r.seq, "body": r.body, "id": r.ruleset}
                for r in C.select(C.seq, C.body, C.ruleset).order_by(C.seq)]
        head = Head("cutovers", 0, 0, GENESIS, None, 1, None, None)
        self._link(head, rows, body_text)
        for row in rows:
            C.update(prev_hash=row["prev_hash"], hash=row["hash"]).where(C.seq == row["seq"]).execute()
        head.seq = rows[-1]["seq"] if rows else 0
        head.seal(self.audit_key)
        self.m.ChainHead.insert(**_row(head)).on_conflict_ignore().execute()

    def _chained(self, name: str):
        if fact_partition(name) is not None:
            return self.m.Fact
        return {"decisions": self.m.Decision, "notifications": self.m.Notification,
                "deliveries": self.m.Delivery, "cutovers": self.m.Cutover, "silences": self.m.Silence,
                "waivers": self.m.WaiverEvent, "restatements": self.m.RestatementEvent}[name]

    def _of_chain(self, name: str, model):
        """The rows chain ``name`` is made of: a fact chain's are its partition's facts."""
        partition = fact_partition(name)
        return pw.SQL("TRUE") if partition is None else model.partition == partition

    def _in_chain(self, name: str, model, after: int = 0):
        """The condition on ``model.seq`` (a fact's ``pseq``) that keeps a read to the rows of chain ``name``
        (facts and notifications that predate chaining included): never a row a writer
        outside the service put before the chain's start or past its head; ``after``: and
        only those after that place. One range, so that SQLite seeks to ``after`` (given a
        second lower bound beside the chain's start, it scanned from the start: a scan in
        chunks was quadratic, most of a million-fact replay)."""
        head = self._head(name)
        last = head.seq if head is not None else 0
        first = head.chained_from if head is not None and name in ("decisions", "cutovers") else 1
        low = max(first, after + 1) if after > 0 else first
        return getattr(model, _order(name)).between(low, last) & self._of_chain(name, model)

    def _in_fact_chains(self, model):
        """The facts that are links of some partition's fact chain (a read across partitions)."""
        heads = [h for h in (self._head(name) for name in self._fact_chains()) if h is not None]
        if not heads:
            return pw.SQL("FALSE")
        return functools.reduce(operator.or_, [(model.partition == fact_partition(h.name))
                                               & model.pseq.between(1, h.seq) for h in heads])

    def _fact_chains(self) -> list[str]:
        """The fact chain of every partition that has one (``facts``, the default partition's, first)."""
        H = self.m.ChainHead
        others = sorted(r.name for r in H.select(H.name).where(H.name.startswith(FACT_CHAIN + ":")))
        return [FACT_CHAIN, *others]

    def _chain_names(self) -> list[str]:
        """Every audit chain of the database: the fixed ones and each partition's fact chain."""
        names: list[str] = []
        for name in CHAINS:              # each partition's fact chain where the fact chain stands
            names += self._fact_chains() if name == FACT_CHAIN else [name]
        return names

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
        heads = {name: self._head(name) for name in self._chain_names()}
        return checkpoint({n: h for n, h in heads.items() if h is not None}, self.audit_key, now_text())

    def verify_audit(self, point: dict | None = None) -> dict:
        """Every chain walked from its first record to its head; with ``point`` (a
        checkpoint), also that each chain still holds, unchanged, the record it ended at.
        Per chain: ok, records checked, the head's count and first and last seq, whether the
        keyed links were checked (they need the key), and the first broken record."""
        problem = checkpoint_problem(point, self.audit_key) if point is not None else None
        chains = {}
        for name in self._chain_names():
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
        text = fact_text if fact_partition(name) is not None else body_text
        head = self._head(name)
        result: ChainCheck = {"ok": True, "checked": 0, "count": None, "first_seq": None, "last_seq": None,
                              "keyed_from": None, "macs_checked": True, "first_broken": None,
                              "outside": [], "outside_count": 0}
        if head is None:
            return _broken(result, 0, None, "the chain head record is missing")
        result["count"], result["keyed_from"] = head.count, head.keyed_from
        if head.keyed_from is not None and key is None:
            result["macs_checked"] = False
        self._outside(result, name, head)
        prev, expected = GENESIS, head.chained_from
        pinned = None
        after = head.chained_from - 1
        order = getattr(model, _order(name))        # facts: the log's order, not arrival
        while True:
            rows = list(model.select().where((order > after) & (order <= head.seq) & self._of_chain(name, model))
                        .order_by(order).limit(CHUNK))
            for row in rows:
                seq = getattr(row, order.name)
                reason = _check(row, seq, prev, expected if name == "decisions" else seq,
                                head.key_for(seq, key), text, FACT_CHAIN if text is fact_text else name,
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
        if result["outside"]:
            first = result["outside"][0]
            seqs = ", ".join(str(r["seq"]) for r in result["outside"][:10])
            return _broken(result, first["seq"], first["id"],
                           f"{result['outside_count']} row(s) of {name} are not links of the chain, which runs "
                           f"from seq {head.chained_from} to {head.seq} (seq {seqs}"
                           f"{', …' if result['outside_count'] > 10 else ''}): before its start or after the "
                           "chain head, added outside the service")
        if key is not None and head.keyed_from is None and head.count:
            return _broken(result, head.seq, head.last_id,
                           f"the chain is not keyed by the audit key: its {head.count} records are linked with "
                           "plain SHA-256, which anyone who can write the database can recompute (a chain "
                           "written with the key names where its keyed part starts)")
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
        if name == "cutovers" and result["ok"]:
            self._check_rulesets(result)
        return result

    def _outside(self, result: ChainCheck, name: str, head: Head) -> None:
        """Name the rows of the chain's table that are not its links: a seq below the
        chain's first (0 or less where rows predating chaining are kept) or past its head."""
        model = self._chained(name)
        order = getattr(model, _order(name))
        low = head.chained_from if name in ("decisions", "cutovers") else 1
        outside = (order < low) | (order > head.seq)
        partition = fact_partition(name)
        if partition is not None:     # not in the log yet, yet not a fact waiting for its owner either
            outside |= order.is_null() & ((model.seq < 1) | model.outcome.is_null(False))
            outside &= model.partition == partition
            if name == FACT_CHAIN:    # in the log of a partition that has no chain at all
                chained = [fact_partition(n) for n in self._fact_chains()]
                outside |= model.partition.not_in(chained) & order.is_null(False)
        result["outside_count"] = model.select().where(outside).count()
        result["outside"] = [{"seq": _place(row, order.name), "id": _ident(row)}
                             for row in model.select().where(outside).order_by(model.seq).limit(MAX_NAMED)]

    def _check_rulesets(self, result: ChainCheck) -> None:
        """Every stored rule set's files against its version (the hash of its files), and
        every cut-over's rule set stored: an edited old version is named."""
        from engine.lang.loader import version_of  # the one definition of a version

        R = self.m.RuleSet
        for row in R.select(R.seq, R.hash, R.files).order_by(R.seq):
            try:
                files = json.loads(row.files)
                ok = isinstance(files, dict) and version_of(files) == row.hash
            except (ValueError, TypeError, AttributeError):
                ok = False
            if not ok:
                _broken(result, row.seq, row.hash, f"the stored files of rule set {row.hash[:19]}… do not hash to "
                                                   "its version: edited outside the service")
                return
        C = self.m.Cutover
        stored = {r.hash for r in R.select(R.hash)}
        for cut in C.select(C.seq, C.ruleset).where(self._in_chain("cutovers", C)).order_by(C.seq):
            if cut.ruleset not in stored:
                _broken(result, cut.seq, cut.ruleset, f"the rule set it put in force ({cut.ruleset[:19]}…) is not "
                                                      "stored: removed outside the service")
                return

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


def _place(row, column: str) -> int:
    """A row's place in its chain's order, or its seq where it has none (a fact's ``pseq``
    is NULL until its owner evaluates it)."""
    place = getattr(row, column)
    return row.seq if place is None else place


def _order(name: str) -> str:
    """The column a chain is linked in: a fact's place in its partition's log (``pseq``,
    facts.py), every other record's ``seq``."""
    return "pseq" if fact_partition(name) is not None else "seq"


FACT_CHAIN = "facts"        # the default partition's fact chain; another partition's is facts:<partition>


def fact_chain(partition: str) -> str:
    """The name of ``partition``'s fact chain: each partition's log is chained on its own,
    in its own order (``pseq``), by its own owner."""
    return FACT_CHAIN if partition == DEFAULT_PARTITION else f"{FACT_CHAIN}:{partition}"


def fact_partition(name: str) -> str | None:
    """The partition whose fact chain ``name`` is; None for a chain of anything else."""
    if name == FACT_CHAIN:
        return DEFAULT_PARTITION
    prefix = FACT_CHAIN + ":"
    return name[len(prefix):] if name.startswith(prefix) else None


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
               "deliveries": ("notification", "event", "status", "at"),
               "cutovers": ("ruleset", "after_fact", "after_tick", "by"),
               "silences": ("id", "event"), "waivers": ("waiver", "event", "by", "at"),
               "restatements": ("restatement", "event", "by", "at")}[name]
    for column in columns:
        if record.get(column) != getattr(row, column):
            return f"column {column!r} disagrees with the stored record"
    if name == "notifications":
        return (None if record.get("decision") == row.decision_id
                else "column 'decision' disagrees with the stored record")
    if name in ("deliveries", "silences", "waivers", "restatements"):
        return None
    if name == "decisions" and retracted_of(record) != row.retracts:
        return "column 'retracts' disagrees with the stored record"
    field, column = ("time", row.time) if name == "facts" else ("at", row.at)
    try:
        at = instant_text(record.get(field), field)
    except ValueError:
        at = None
    return None if at == column else f"column {field!r} disagrees with the stored record"


def cutover_body(ruleset: str, at: str, after_fact: int, after_tick: int, by: str | None) -> str:
    """What a cut-over's link covers: the record as canonical JSON (``at`` as stored)."""
    return json.dumps({"ruleset": ruleset, "at": at, "after_fact": after_fact, "after_tick": after_tick, "by": by},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def retracted_of(decision: dict) -> str | None:
    """The id of the decision a ``retracted`` decision retracts (None for other kinds)."""
    data = decision.get("data")
    return data.get("retracts") if decision.get("kind") == "retracted" and isinstance(data, dict) else None


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
    """What names a chained record: its id (a delivery outcome: its notification's, a
    cut-over: its rule set's version)."""
    if hasattr(row, "notification"):
        return row.notification
    if hasattr(row, "waiver"):
        return row.waiver
    if hasattr(row, "restatement"):
        return row.restatement
    return getattr(row, "ruleset", None) if hasattr(row, "after_tick") else getattr(row, "id", None)


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
