"""The outbox: the notifications decisions call for, stored with the decisions that caused
them (in one transaction) so none is lost or sent for a decision that was rolled back.
"""
from __future__ import annotations

import json

from engine.store.base import StoreBase, equal, where
from engine.store.encoding import canonical_json, now_text, required_text


class Outbox(StoreBase):
    """Notifications, once per id; each refers to a stored decision (a foreign key)."""

    def add_notifications(self, notifications) -> list[str]:
        """Store notifications not yet stored (by id); their decisions must be stored."""
        N, now = self.m.Notification, now_text()
        rows = {}
        for n in notifications:
            nid = required_text(n, "id", "a notification")
            rows.setdefault(nid, dict(id=nid, decision=required_text(n, "decision", "a notification"),
                                      recipient=required_text(n, "recipient", "a notification"),
                                      status=n.get("status") or "pending",
                                      body=canonical_json(n), created_at=now))
        if not rows:
            return []
        inserted = []
        with self.transaction():
            known = self._existing(N, list(rows))
            fresh = [row for nid, row in rows.items() if nid not in known]
            stored = self._insert(N, fresh, skip_existing=True)
            if self.postgres:            # a concurrent writer may have stored some
                inserted += [r[0] for r in stored]
            else:                        # BEGIN IMMEDIATE: nobody else is writing
                inserted += [row["id"] for row in fresh]
        return inserted

    def list_notifications(self, decision=None, recipient=None, status=None, cursor=None,
                           limit=None) -> tuple[list[dict], str | None]:
        N = self.m.Notification
        query = where(N.select(N.seq, N.body, N.status),
                      equal(N, decision=decision, recipient=recipient, status=status))
        return self._page(query, N.seq, cursor, limit,
                          lambda r: {**json.loads(r.body), "status": r.status})
