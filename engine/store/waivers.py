"""Waivers as their events: each request, approval and revocation appended to the
``waiver_events`` table and linked in the ``waivers`` audit chain (chain.py), with the name
of the token that made it. Nothing is updated or deleted: a waiver's state is the fold of
its events (:func:`fold`), so the chain is the whole story of every waiver.

Who may do what (four eyes) is the service's rule (engine/service/waivers.py); the store
applies it under the chain head's lock, so two approvals racing cannot both be recorded.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Callable

from engine.store.audit import AuditChains, body_text
from engine.store.encoding import canonical_json, instant_text
from schemas.values import format_instant, parse_instant

CHAIN = "waivers"
EVENTS = ("requested", "approved", "revoked")


def fold(events: list[dict]) -> dict:
    """A waiver from its events, oldest first: what was asked (a decision, or a target's
    period), why, and who requested, approved and revoked it when. ``status`` is
    ``requested`` (not yet in effect), ``approved`` (in effect) or ``revoked``."""
    first = events[0]
    waiver = {"id": first["waiver"], "status": "requested", "reason": first["reason"],
              "decision": first.get("decision"), "target": first.get("target"), "since": first.get("since"),
              "until": first.get("until"), "requested_by": first["by"], "requested_at": shown(first["at"]),
              "approved_by": None, "approved_at": None, "revoked_by": None, "revoked_at": None,
              "revoke_reason": None}
    for event in events[1:]:
        if event["event"] == "approved":
            waiver.update(status="approved", approved_by=event["by"], approved_at=shown(event["at"]))
        elif event["event"] == "revoked":
            waiver.update(status="revoked", revoked_by=event["by"], revoked_at=shown(event["at"]),
                          revoke_reason=event.get("reason"))
    return waiver


def shown(at: str) -> str:
    """A stored instant as the API gives it."""
    return format_instant(parse_instant(at))


class WaiverLog(AuditChains):
    """Append waiver events, chained; read waivers back as their events say. Not partition
    data: any node may record one (the writes are not fenced by a partition's lease)."""

    def request_waiver(self, asked: dict, by: str, at) -> dict:
        """Record a new waiver request (``asked``: ``reason`` and either ``decision`` or
        ``target``, ``since`` and ``until``) by token ``by`` at ``at``; the waiver."""
        waiver_id = "wvr_" + secrets.token_hex(8)
        event = {**asked, "waiver": waiver_id, "event": "requested", "by": by, "at": instant_text(at, "at")}
        with self.transaction(fenced=False):
            self._append_waiver_event(event)
        return fold([event])

    def waiver_event(self, waiver_id: str, event: str, by: str, at, check: Callable[[dict], None],
                     reason: str | None = None) -> dict | None:
        """Record ``event`` (approved or revoked) of waiver ``waiver_id`` by ``by``: first
        ``check(waiver)`` runs, under the chain's lock, and may raise to refuse it (nothing
        is then written). The waiver as it is after; None if there is no such waiver."""
        if event not in EVENTS[1:]:
            raise ValueError(f"not a waiver event: {event!r}")
        record = {"waiver": waiver_id, "event": event, "by": by, "at": instant_text(at, "at")}
        if reason is not None:
            record["reason"] = reason
        with self.transaction(fenced=False):
            head = self._locked_head(CHAIN)
            events = self._waiver_events(waiver_id)
            if not events:
                return None
            check(fold(events))
            self._append_waiver_event(record, head)
        return fold([*events, record])

    def waiver(self, waiver_id: str) -> dict | None:
        events = self._waiver_events(waiver_id)
        return fold(events) if events else None

    def waivers(self, status: str | None = None) -> list[dict]:
        """Every waiver, oldest request first (``status``: only those in that state)."""
        W = self.m.WaiverEvent
        grouped: dict[str, list[dict]] = {}
        for row in W.select(W.body).where(self._in_chain(CHAIN, W)).order_by(W.seq):
            event = json.loads(row.body)
            grouped.setdefault(event["waiver"], []).append(event)
        folded = [fold(events) for events in grouped.values()]
        return [w for w in folded if status is None or w["status"] == status]

    def _waiver_events(self, waiver_id: str) -> list[dict]:
        W = self.m.WaiverEvent
        return [json.loads(row.body) for row in W.select(W.body)
                .where((W.waiver == waiver_id) & self._in_chain(CHAIN, W)).order_by(W.seq)]

    def _append_waiver_event(self, event: dict, head=None) -> None:
        head = head or self._locked_head(CHAIN)
        row = {"waiver": event["waiver"], "event": event["event"], "by": event["by"], "at": event["at"],
               "body": canonical_json(event)}
        W = self.m.WaiverEvent
        self._link(head, [row], body_text)
        self._insert(W, [row])
        self._save_head(head, self._select(W, "MAX(seq)")[0][0])
