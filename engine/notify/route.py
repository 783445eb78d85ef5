"""Routing a decision to people: the RACI matrix names who hears of it, in which capacity;
an escalation level's ``call`` URL receives the decision itself.

Runs outside the engine, on decisions the engine already made: replay never pays for it,
and a scenario computes the same notifications the service stores.
"""
from __future__ import annotations

import hashlib

from engine.lang.model import RuleSet
from engine.lang.templates import render
from engine.notify.mute import mute
from schemas.records import Decision, Notification

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
        roles = accountable(roles)
    for role, letters in roles.items():
        for recipient in ruleset.holders(decision.service, role):
            entry = by_recipient.setdefault(recipient, {"roles": [], "letters": set()})
            entry["roles"].append(role)
            entry["letters"].update(letters)
    call = None
    if decision.kind == "escalation":
        level = ruleset.escalation_level(decision.rule, activity)
        call = level.call if level else None
    if not by_recipient and not call:
        return []
    text = decision.notice or decision.message or render(DEFAULT_MESSAGE, decision.as_dict())
    out = [Notification(
        id=notification_id(decision.id, recipient), decision=decision.id, activity=activity,
        recipient=recipient, roles=entry["roles"],
        raci=",".join(letter for letter in LETTER_ORDER if letter in entry["letters"]),
        channel=channel_of(recipient), message=text)
        for recipient, entry in sorted(by_recipient.items())]
    if call:
        out.append(Notification(id=notification_id(decision.id, "call|" + call), decision=decision.id,
                                activity=activity, recipient=call, roles=["call"], raci="",
                                channel="webhook", message=text))
    return out


def accountable(roles: dict[str, list[str]]) -> dict[str, list[str]]:
    """The roles of a RACI row that are Accountable (A); a row with none takes its only R
    as accountable, as ``slm check`` says (engine.lang.checks)."""
    found = {role: ["A"] for role, letters in roles.items() if "A" in letters}
    responsible = [role for role, letters in roles.items() if "R" in letters]
    if not found and len(responsible) == 1:
        found = {responsible[0]: ["A"]}
    return found


def channel_of(recipient: str) -> str:
    """e-mail for an address, webhook for an http(s) URL, chat for any other URL (Apprise:
    slack://, msteams://, mmost://, tgram://, …); default (no channel) otherwise."""
    if recipient.startswith(("http://", "https://")):
        return "webhook"
    if "://" in recipient:
        return "chat"
    return "email" if "@" in recipient else "default"
