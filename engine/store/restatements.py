"""Restatements as their events: each request (with the superseding decisions it records),
approval and revocation appended to the ``restatement_events`` table and linked in the
``restatements`` audit chain (chain.py), with the name of the token that made it. Nothing
is updated or deleted, neither here nor among the decisions a restatement supersedes: a
restatement's state is the fold of its events (:func:`fold`).

Who may approve (four eyes) is the service's rule (engine/service/restatements.py); the
store applies it under the chain head's lock, as it does for waivers.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Callable

from engine.store.audit import AuditChains, body_text
from engine.store.encoding import canonical_json, instant_text
from engine.store.waivers import shown

CHAIN = "restatements"
EVENTS = ("requested", "approved", "revoked")


def fold(events: list[dict]) -> dict:
    """A restatement from its events, oldest first: the month and service restated, why,
    under which rules, the superseding decisions and window figures it records, and who
    requested, approved and revoked it when. ``status``: requested, approved or revoked."""
    first = events[0]
    restatement = {"id": first["restatement"], "status": "requested", "service": first["service"],
                   "period": first["period"], "reason": first["reason"], "rules": first["rules"],
                   "facts": first["facts"], "decisions": first["decisions"], "withdraws": first["withdraws"],
                   "windows": first["windows"], "down_spans": first.get("down_spans", {}),
                   "requested_by": first["by"], "requested_at": shown(first["at"]),
                   "approved_by": None, "approved_at": None, "revoked_by": None, "revoked_at": None,
                   "revoke_reason": None}
    for event in events[1:]:
        if event["event"] == "approved":
            restatement.update(status="approved", approved_by=event["by"], approved_at=shown(event["at"]))
        elif event["event"] == "revoked":
            restatement.update(status="revoked", revoked_by=event["by"], revoked_at=shown(event["at"]),
                               revoke_reason=event.get("reason"))
    return restatement


class RestatementLog(AuditChains):
    """Append restatement events, chained; read restatements back as their events say. Not
    partition data: any node may record one (the writes are not fenced by a lease)."""

    def request_restatement(self, asked: dict, by: str, at) -> dict:
        """Record a new restatement (``asked``: service, period, reason, rules, facts,
        decisions, withdraws, windows, down_spans) by token ``by`` at ``at``; the restatement."""
        restatement_id = "rst_" + secrets.token_hex(8)
        decisions = [{**d, "id": f"{restatement_id}-{n}"} for n, d in enumerate(asked["decisions"], 1)]
        event = {**asked, "decisions": decisions, "restatement": restatement_id, "event": "requested", "by": by,
                 "at": instant_text(at, "at")}
        with self.transaction(fenced=False):
            self._append_restatement_event(event)
        return fold([event])

    def restatement_event(self, restatement_id: str, event: str, by: str, at, check: Callable[[dict], None],
                          reason: str | None = None) -> dict | None:
        """Record ``event`` (approved or revoked) of a restatement by ``by``, once ``check``
        (run under the chain's lock) lets it; None if there is no such restatement."""
        if event not in EVENTS[1:]:
            raise ValueError(f"not a restatement event: {event!r}")
        record = {"restatement": restatement_id, "event": event, "by": by, "at": instant_text(at, "at")}
        if reason is not None:
            record["reason"] = reason
        with self.transaction(fenced=False):
            head = self._locked_head(CHAIN)
            events = self._restatement_events(restatement_id)
            if not events:
                return None
            check(fold(events))
            self._append_restatement_event(record, head)
        return fold([*events, record])

    def restatement(self, restatement_id: str) -> dict | None:
        events = self._restatement_events(restatement_id)
        return fold(events) if events else None

    def restatements(self, status: str | None = None, service: str | None = None) -> list[dict]:
        """Every restatement, oldest request first (only those in ``status``, of ``service``)."""
        R = self.m.RestatementEvent
        grouped: dict[str, list[dict]] = {}
        for row in R.select(R.body).where(self._in_chain(CHAIN, R)).order_by(R.seq):
            event = json.loads(row.body)
            grouped.setdefault(event["restatement"], []).append(event)
        folded = [fold(events) for events in grouped.values()]
        return [r for r in folded if (status is None or r["status"] == status)
                and (service is None or r["service"] == service)]

    def _restatement_events(self, restatement_id: str) -> list[dict]:
        R = self.m.RestatementEvent
        return [json.loads(row.body) for row in R.select(R.body)
                .where((R.restatement == restatement_id) & self._in_chain(CHAIN, R)).order_by(R.seq)]

    def _append_restatement_event(self, event: dict, head=None) -> None:
        head = head or self._locked_head(CHAIN)
        row = {"restatement": event["restatement"], "event": event["event"], "by": event["by"], "at": event["at"],
               "body": canonical_json(event)}
        R = self.m.RestatementEvent
        self._link(head, [row], body_text)
        self._insert(R, [row])
        self._save_head(head, self._select(R, "MAX(seq)")[0][0])
