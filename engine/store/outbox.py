"""The outbox: the notifications decisions call for, stored with the decisions that caused
them (in one transaction) so none is lost or sent for a decision that was rolled back.

The notifications table is the delivery queue too. A deliverer *claims* due rows by
setting a lease (``lease_until``); while the lease runs nobody else takes them, and a
deliverer that dies (SIGKILL) simply lets it run out, so the rows become due again: every
notification is delivered at least once. On PostgreSQL the claim is ``SELECT … FOR UPDATE
SKIP LOCKED``, so several processes deliver from one outbox without sending a row twice;
on SQLite the claim runs in a ``BEGIN IMMEDIATE`` transaction, which serialises claimers.

The record's body (what routing decided) is written once; the delivery columns (status,
attempts, last_error, next_attempt_at, message_id) change and are merged over it on read.

Each is chained as created (chain.py): the routed record. What delivery does to its
delivery columns is appended as an outcome (created, sent, retrying, failed,
undeliverable, requeued, cancelled) to the deliveries chain in the same transaction, so
the columns can be checked against the last outcome chained (audit.py). Every writer of
outcomes locks the deliveries head before any notification row.
"""
from __future__ import annotations

import json
from collections.abc import Set
from datetime import datetime

from engine.store.audit import DELIVERY_STATE, AuditChains, body_text
from engine.store.base import chunks, equal, where
from engine.store.encoding import canonical_json, instant_text, now_text, required_text
from schemas.values import format_instant, parse_instant

QUEUED = ("pending", "retrying")          # statuses a deliverer works on
TOLD = ("sent",)                          # recipients of these were told
_COLUMNS = "id, body, status, attempts, last_error, next_attempt_at, message_id, queued_at"
_STATE = "seq, id, " + ", ".join(DELIVERY_STATE)      # what an outcome records of a notification


class Outbox(AuditChains):
    """Notifications, once per id; each refers to a stored decision (a foreign key)."""

    def add_notifications(self, notifications, due=None) -> list[str]:
        """Store notifications not yet stored (by id); their decisions must be stored.
        ``due``: when a pending one is first due (default: now)."""
        N, now = self.m.Notification, now_text()
        due_text = now if due is None else instant_text(due, "due")
        rows: dict[str, dict] = {}
        for n in notifications:
            nid = required_text(n, "id", "a notification")
            status = n.get("status") or "pending"
            body = {k: v for k, v in n.items() if k not in _DELIVERY}
            rows.setdefault(nid, dict(id=nid, decision=required_text(n, "decision", "a notification"),
                                      recipient=required_text(n, "recipient", "a notification"),
                                      status=status, body=canonical_json(body), created_at=now,
                                      attempts=0, last_error=n.get("last_error"),
                                      next_attempt_at=due_text if status in QUEUED else None,
                                      queued_at=now, partition=self.partition))
        if not rows:
            return []
        inserted = []
        with self.transaction():
            head = self._locked_head("notifications")       # writers queue here: `known` holds
            known = self._existing(N, list(rows))
            fresh = [row for nid, row in rows.items() if nid not in known]
            if not fresh:
                return []
            self._link(head, fresh, body_text)
            stored = self._insert(N, fresh, skip_existing=True)
            self._save_head(head, self._select(N, "MAX(seq)")[0][0])
            if self.postgres:            # a concurrent writer may have stored some
                inserted += [r[0] for r in stored]
            else:                        # BEGIN IMMEDIATE: nobody else is writing
                inserted += [row["id"] for row in fresh]
            made = set(inserted)
            self._outcomes(self._locked_head("deliveries"), "created",
                           [(0, row["id"], *(row.get(f) for f in DELIVERY_STATE))
                            for row in fresh if row["id"] in made])
        return inserted

    def _outcomes(self, head, event: str, states: list[tuple]) -> None:
        """Append one chained outcome per notification (``_STATE`` tuples, in seq order),
        moving the locked deliveries ``head``."""
        if not states:
            return
        now = now_text()
        rows = []
        for _, nid, *columns in states:
            state = dict(zip(DELIVERY_STATE, columns, strict=True))
            rows.append(dict(notification=nid, event=event, status=state["status"], at=now,
                             body=canonical_json({"notification": nid, "event": event, "at": now, **state})))
        self._link(head, rows, body_text)
        self._insert(self.m.Delivery, rows)
        self._save_head(head, self._select(self.m.Delivery, "MAX(seq)")[0][0])

    def delivery_outcomes(self, notification: str) -> list[dict]:
        """The chained delivery outcomes of one notification, oldest first."""
        D = self.m.Delivery
        rows = self._select(D, "seq, body", f"notification = {self.db.param}", [notification], " ORDER BY seq")
        return [{"seq": seq, **json.loads(body)} for seq, body in rows]

    def list_notifications(self, decision=None, recipient=None, status=None, cursor=None,
                           limit=None) -> tuple[list[dict], str | None]:
        N = self.m.Notification
        query = where(N.select(N.seq, N.id, N.body, N.status, N.attempts, N.last_error, N.next_attempt_at,
                               N.message_id, N.queued_at),
                      equal(N, decision=decision, recipient=recipient, status=status))
        return self._page(query, N.seq, cursor, limit,
                          lambda r: _record((r.id, r.body, r.status, r.attempts, r.last_error,
                                             r.next_attempt_at, r.message_id, r.queued_at)))

    def notification(self, id: str) -> dict | None:
        rows = self._select(self.m.Notification, _COLUMNS, f"id = {self.db.param}", [id])
        return _record(rows[0]) if rows else None

    # ---- delivery ----------------------------------------------------------------------

    def due_exists(self, now: datetime) -> bool:
        """Whether anything is due and unclaimed (a cheap read before a claim)."""
        sql, params = self._due(now_text_of(now))
        return bool(self._select(self.m.Notification, "1", sql, params, " LIMIT 1"))

    def next_due(self) -> datetime | None:
        """When the earliest queued notification falls due (claimed or not)."""
        N = self.m.Notification
        rows = self._select(N, "MIN(next_attempt_at)", f"status IN ({self._params(QUEUED)})", QUEUED)
        return parse_instant(rows[0][0]) if rows and rows[0][0] else None

    def claim(self, now: datetime, lease_until: datetime, limit: int = 1000,
              exclude: Set[str] = frozenset(), widen: bool = True) -> list[dict]:
        """Claim up to ``limit`` due, unclaimed notifications (none whose recipient is in
        ``exclude``) until ``lease_until``; with ``widen``, also every pending one, due or
        not, for the recipients claimed (the rest of a group: see engine.notify.group)."""
        stamp, lease = now_text_of(now), now_text_of(lease_until)
        with self.transaction():
            where_sql, params = self._due(stamp)
            if exclude:
                where_sql += f" AND recipient NOT IN ({self._params(exclude)})"
                params += sorted(exclude)
            claimed = self._take(where_sql, params, lease, limit)
            if widen and claimed:
                recipients = sorted({r[0] for r in claimed})
                for chunk in chunks(recipients):
                    extra = (f"status = 'pending' AND (lease_until IS NULL OR lease_until <= {self.db.param}) "
                             f"AND recipient IN ({self._params(chunk)})")
                    claimed += self._take(extra, [stamp, *chunk], lease, 100_000)
        return [_record(row[1:], queued=True) for row in claimed]

    def _due(self, stamp: str) -> tuple[str, list]:
        p = self.db.param
        return (f"status IN ('pending', 'retrying') AND (next_attempt_at IS NULL OR next_attempt_at <= {p}) "
                f"AND (lease_until IS NULL OR lease_until <= {p})", [stamp, stamp])

    def _take(self, where_sql: str, params: list, lease: str, limit: int) -> list[tuple]:
        """Lease the rows ``where_sql`` selects; (recipient, *_COLUMNS) of each."""
        table, p = '"notifications"', self.db.param
        if self.postgres:
            sql = (f"UPDATE {table} SET lease_until = %s WHERE seq IN (SELECT seq FROM {table} WHERE {where_sql} "
                   f"ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING recipient, {_COLUMNS}")
            return self.db.execute_sql(sql, [lease, *params, limit]).fetchall()
        rows = self._select(self.m.Notification, f"seq, recipient, {_COLUMNS}", where_sql, params,
                            f" ORDER BY seq LIMIT {int(limit)}")
        for chunk in chunks([r[0] for r in rows]):
            self.db.execute_sql(f"UPDATE {table} SET lease_until = {p} WHERE seq IN ({self._params(chunk)})",
                                [lease, *chunk])
        return [r[1:] for r in rows]

    def release(self, ids: list[str]) -> None:
        """Give claimed notifications back without an attempt (no outcome: nothing was tried)."""
        self._update(ids, "lease_until = NULL", [])

    def record_sent(self, ids: list[str], message_id: str) -> None:
        """Delivered (also if it was cancelled meanwhile: the recipient was told)."""
        self._update(ids, "status = 'sent', attempts = attempts + 1, message_id = {p}, last_error = NULL, "
                          "next_attempt_at = NULL, lease_until = NULL", [message_id], event="sent")

    def record_failure(self, ids: list[str], status: str, error: str, next_attempt_at: datetime | None,
                       message_id: str | None) -> None:
        """An attempt failed: ``retrying`` (due again at ``next_attempt_at``), ``failed``
        or ``undeliverable``. A notification cancelled meanwhile stays cancelled."""
        due = None if next_attempt_at is None else now_text_of(next_attempt_at)
        counted = "attempts + 1" if status != "undeliverable" else "attempts"
        self._update(ids, f"status = {{p}}, attempts = {counted}, last_error = {{p}}, next_attempt_at = {{p}}, "
                          "message_id = {p}, lease_until = NULL", [status, error, due, message_id],
                     only=QUEUED, event=status)

    def _update(self, ids: list[str], assignments: str, values: list, only: tuple = (),
                event: str | None = None) -> None:
        """Update the rows of ``ids``, taking their row locks in seq order (see _lock);
        with ``event``, chain the outcome of each row changed."""
        p = self.db.param
        with self.transaction():
            head = self._locked_head("deliveries") if event else None
            changed = []
            for chunk in chunks(self._lock("id IN ({})", sorted(set(ids)))):
                sql = (f'UPDATE "notifications" SET {assignments.format(p=p)} WHERE seq IN ({self._params(chunk)})'
                       + (f" AND status IN ({self._params(only)})" if only else "")
                       + (f" RETURNING {_STATE}" if event else ""))
                cursor = self.db.execute_sql(sql, [*values, *chunk, *only])
                if event:
                    changed += cursor.fetchall()
            if event:
                self._outcomes(head, event, sorted(changed))

    def _lock(self, where_sql: str, keys: list) -> list[int]:
        """The seqs of the rows ``where_sql`` (a ``{}`` for the placeholders of ``keys``)
        selects, in ascending order; on PostgreSQL locked FOR UPDATE in that order. Every
        writer that updates several notifications (the deliverer recording, a retraction
        cancelling) locks this way, so two of them never wait for each other in a cycle."""
        seqs: set[int] = set()
        for chunk in chunks(keys):
            seqs.update(r for r, in self._select(self.m.Notification, "seq",
                                                 where_sql.format(self._params(chunk)), chunk))
        ordered = sorted(seqs)
        if self.postgres:
            for chunk in chunks(ordered):
                self.db.execute_sql(f'SELECT seq FROM "notifications" WHERE seq IN ({self._params(chunk)}) '
                                    "ORDER BY seq FOR UPDATE", chunk)
        return ordered

    def mute_queued(self, reasons: dict[str, str]) -> None:
        """Queued notifications a silence matched when they were about to be sent: muted,
        each with why, their claim released; each outcome chained (``muted``)."""
        for why in sorted(set(reasons.values())):
            ids = [nid for nid, reason in reasons.items() if reason == why]
            self._update(ids, "status = 'muted', last_error = {p}, next_attempt_at = NULL, lease_until = NULL",
                         [why], only=QUEUED, event="muted")

    def requeue(self, id: str) -> dict | None:
        """Queue a failed (or undeliverable, or cancelled) notification again, due now,
        its max age counted afresh; None if there is no such notification. ValueError if
        it is not in a state to retry."""
        with self.transaction():
            head = self._locked_head("deliveries")
            current = self.notification(id)
            if current is None:
                return None
            if current["status"] not in ("failed", "undeliverable", "cancelled"):
                raise ValueError(f"notification {id} is {current['status']}; only failed, undeliverable "
                                 "or cancelled ones are queued again")
            now = now_text()
            changed = self.db.execute_sql(
                f'UPDATE "notifications" SET status = \'retrying\', next_attempt_at = {self.db.param}, '
                f'queued_at = {self.db.param}, lease_until = NULL WHERE id = {self.db.param} RETURNING {_STATE}',
                [now, now, id]).fetchall()
            self._outcomes(head, "requeued", changed)
            return self.notification(id)

    def cancel_for(self, decision_ids: list[str]) -> dict[str, list[dict]]:
        """Decisions were retracted: cancel their queued notifications; by decision, the
        ones whose recipients were (or may be, being sent right now) told already, for a
        follow-up. All in one pass, rows locked in seq order (see _lock)."""
        N, p = self.m.Notification, self.db.param
        told: dict[str, list[dict]] = {}
        with self.transaction():
            head = self._locked_head("deliveries")
            seqs = self._lock("decision IN ({})", sorted(set(decision_ids)))
            now = now_text()
            cancelled = []
            for chunk in chunks(seqs):
                marks = self._params(chunk)
                rows = self._select(N, f"decision, {_COLUMNS}", f"seq IN ({marks}) AND (status = 'sent' OR "
                                    f"(status IN ('pending', 'retrying') AND lease_until > {p}))", [*chunk, now],
                                    " ORDER BY seq")
                for row in rows:
                    told.setdefault(row[0], []).append(_record(row[1:]))
                cancelled += self.db.execute_sql(
                    f"UPDATE \"notifications\" SET status = 'cancelled', next_attempt_at = NULL "
                    f"WHERE seq IN ({marks}) AND status IN ('pending', 'retrying') RETURNING {_STATE}",
                    chunk).fetchall()
            self._outcomes(head, "cancelled", sorted(cancelled))
        return told

    def queue_stats(self, now: datetime) -> dict:
        """How many notifications are queued, and the age in seconds of the oldest."""
        N = self.m.Notification
        (count, oldest), = self._select(N, "COUNT(*), MIN(queued_at)", f"status IN ({self._params(QUEUED)})", QUEUED)
        age = (now - parse_instant(oldest)).total_seconds() if oldest else 0.0
        return {"queued": count, "oldest_age": max(age, 0.0)}


_DELIVERY = ("status", "attempts", "last_error", "next_attempt_at", "message_id")


def now_text_of(at: datetime) -> str:
    return instant_text(at, "time")


def _record(row, queued: bool = False) -> dict:
    """A notification as returned: its body with the delivery columns over it (and, for a
    deliverer, ``queued_at``: when it entered the queue)."""
    id, body, status, attempts, last_error, next_attempt_at, message_id, queued_at = row
    record = json.loads(body)
    record.update(status=status, attempts=attempts or 0, last_error=last_error, message_id=message_id,
                  next_attempt_at=format_instant(parse_instant(next_attempt_at)) if next_attempt_at else None)
    if queued:
        record["queued_at"] = parse_instant(queued_at) if queued_at else None
    return record
