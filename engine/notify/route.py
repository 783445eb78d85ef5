"""Routing a decision to people: the RACI matrix names who hears of it, in which capacity
(a role's holder may be an on-call schedule: whoever it puts on call then); an escalation
level's ``call`` URL receives the decision itself.

Runs outside the engine, on decisions the engine already made: replay never pays for it,
and a scenario computes the same notifications the service stores.
"""
from __future__ import annotations

import hashlib

from engine.lang.model import RuleSet
from engine.lang.oncall import PREFIX as ONCALL_PREFIX
from engine.lang.oncall import OnCall
from engine.lang.templates import render
from engine.notify.mute import mute
from schemas.records import Decision, Notification
from schemas.values import format_instant

LETTER_ORDER = "RACI"
REVIEW_PACK = "review-pack"          # the kind of a monthly review pack (engine.eval.packs.KIND)
DEFAULT_MESSAGE = ("{{ activity }}: {{ kind }} of {{ target or 'rule ' ~ rule.id }} for {{ subject }}"
                   "{% if service %} ({{ service }}){% endif %}{% if level %} at {{ level }}{% endif %}")


def notification_id(decision_id: str, recipient: str) -> str:
    """Deterministic: a replay or a retried write never makes a second one."""
    return "ntf_" + hashlib.sha256(f"{decision_id}|{recipient}".encode()).hexdigest()[:24]


def outbox_entries(decision: Decision, ruleset: RuleSet) -> list[Notification]:
    """Everything the outbox stores for a decision: routed, then muted if shadow."""
    return mute(decision, route(decision, ruleset))


def notifications_for(decision: Decision, ruleset: RuleSet) -> list[Notification]:
    """The notifications that tell someone (muted ones left out): what scenarios check."""
    return [n for n in outbox_entries(decision, ruleset) if n.status != "muted"]


def route(decision: Decision, ruleset: RuleSet) -> list[Notification]:
    """One notification per recipient, letters merged in R, A, C, I order, and one for
    the escalation level's ``call`` URL if it names one.

    A Rule's own text (its notify or decide message, already rendered with the facts it
    matched) is the message; otherwise the default message is rendered from the decision.
    """
    activity = decision.activity
    if not activity:
        return []
    by_recipient: dict[str, dict] = {}
    roles = ruleset.raci.get(activity, {})
    if decision.kind == REVIEW_PACK:                 # a review pack is for the Accountable alone
        roles = {role: ["A"] for role in ruleset.accountable(activity)}
    for role, letters in roles.items():
        for holder in ruleset.holders(decision.service, role):
            for recipient, via in resolve(holder, role, decision):
                entry = by_recipient.setdefault(recipient, {"roles": [], "letters": set(), "oncall": []})
                if role not in entry["roles"]:
                    entry["roles"].append(role)
                entry["letters"].update(letters)
                if via is not None:
                    entry["oncall"].append(via)
    call = writeback = None
    if decision.kind == "escalation":
        level = ruleset.escalation_level(decision.rule, activity)
        call, writeback = (level.call, level.writeback) if level else (None, None)
    if not by_recipient and not call and not writeback:
        return []
    text = decision.notice or decision.message or render(DEFAULT_MESSAGE, decision.as_dict())
    out = [Notification(
        id=notification_id(decision.id, recipient), decision=decision.id, activity=activity,
        recipient=recipient, roles=entry["roles"],
        raci=",".join(letter for letter in LETTER_ORDER if letter in entry["letters"]),
        channel=channel_of(recipient), message=text, oncall=entry["oncall"] or None,
        **_nobody(recipient, entry["oncall"]))
        for recipient, entry in sorted(by_recipient.items())]
    if call:
        out.append(Notification(id=notification_id(decision.id, "call|" + call), decision=decision.id,
                                activity=activity, recipient=call, roles=["call"], raci="",
                                channel="webhook", message=text))
    if writeback:
        request = writeback.request({**decision.as_dict(), "message": text})
        recipient = writeback.recipient(request)
        out.append(Notification(id=notification_id(decision.id, "call|" + recipient), decision=decision.id,
                                activity=activity, recipient=recipient, roles=["call"], raci="",
                                channel="writeback", message=text, call=request))
    return out


def resolve(holder: str | OnCall, role: str, decision: Decision) -> list[tuple[str, dict | None]]:
    """The recipients a holder gives for a decision, each with how an on-call schedule gave
    it (None for an address written in the rules).

    A schedule is asked at the decision's instant, in event time, so a replay finds whom the
    live engine found. Nobody on call: its ``fallback`` is told, else a record addressed to
    the schedule itself (``oncall:FILE``) is kept ``undeliverable``, saying so in the trace."""
    if isinstance(holder, str):
        return [(holder, None)]
    schedule = holder.schedule
    via: dict = {"schedule": schedule.file, "role": role, "at": format_instant(decision.at)}
    shift = schedule.on_call(decision.at)
    if shift is not None:
        via |= {"gave": list(shift.holders), **shift.as_dict()}
        return [(recipient, via) for recipient in shift.holders]
    via |= {"gave": [], "fallback": list(holder.fallback)}
    return [(recipient, via) for recipient in holder.fallback] or [(str(holder), via)]


def _nobody(recipient: str, oncall: list[dict]) -> dict:
    """The delivery fields of the record kept when a schedule had nobody on call and no fallback."""
    if not recipient.startswith(ONCALL_PREFIX):
        return {}
    schedule = oncall[0]
    return {"status": "undeliverable",
            "last_error": f"nobody is on call in {schedule['schedule']} at {schedule['at']} and it names no "
                          f"fallback: no one is told through it as {schedule['role']}"}


def channel_of(recipient: str) -> str:
    """e-mail for an address, webhook for an http(s) URL, chat for any other URL (Apprise:
    slack://, msteams://, mmost://, tgram://, …); default (no channel) otherwise."""
    if recipient.startswith(("http://", "https://")):
        return "webhook"
    if "://" in recipient:
        return "chat"
    return "email" if "@" in recipient else "default"
