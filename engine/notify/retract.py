"""Retractions: a late fact can take a decision back (a ``retracted`` decision naming it
in ``data.retracts``). Whoever was not told yet never hears of it (the store cancels those
notifications); whoever was told gets a short follow-up, itself a notification of the
retraction, delivered through the same outbox."""
from __future__ import annotations

from engine.notify.route import notification_id
from schemas.records import Decision, Notification


def followups(retraction: Decision, told: list[dict]) -> list[Notification]:
    """One follow-up per recipient told of the retracted decision."""
    reason = retraction.data.get("reason") or "no reason recorded"
    retracted = retraction.data.get("retracts")
    out, seen = [], set()
    for note in told:
        if note.get("channel") == "writeback":
            continue        # what a write-back wrote stays in the ticket: docs/RULES.md, "Write-back"
        if note["recipient"] in seen:
            continue
        seen.add(note["recipient"])
        out.append(Notification(
            id=notification_id(retraction.id, note["recipient"]), decision=retraction.id,
            activity=note.get("activity") or "retracted", recipient=note["recipient"],
            roles=list(note.get("roles") or []), raci=note.get("raci") or "", channel=note["channel"],
            message=f"Retracted: {note['message']} (decision {retracted}: {reason})"))
    return out
