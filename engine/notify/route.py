"""Routing a decision to people: the RACI matrix names who hears of it, in which capacity.

Runs outside the engine, on decisions the engine already made: replay never pays for it,
and a scenario computes the same notifications the service stores.
"""
from __future__ import annotations

import hashlib

from engine.lang.model import RuleSet
from engine.lang.templates import render
from schemas.records import Decision, Notification

LETTER_ORDER = "RACI"
DEFAULT_MESSAGE = ("{{ activity }}: {{ kind }} of {{ target or 'rule ' ~ rule.id }} for {{ subject }}"
                   "{% if service %} ({{ service }}){% endif %}{% if level %} at {{ level }}{% endif %}")


def notifications_for(decision: Decision, ruleset: RuleSet) -> list[Notification]:
    """One notification per recipient, letters merged in R, A, C, I order.

    Shadow decisions notify nobody: a proposed target is tried without waking people up.
    A Rule's own text (its notify or decide message, already rendered with the facts it
    matched) is the message; otherwise the default message is rendered from the decision.
    """
    activity = decision.activity
    if not activity or decision.shadow or activity not in ruleset.raci:
        return []
    by_recipient: dict[str, dict] = {}
    for role, letters in ruleset.raci[activity].items():
        for recipient in ruleset.holders(decision.service, role):
            entry = by_recipient.setdefault(recipient, {"roles": [], "letters": set()})
            entry["roles"].append(role)
            entry["letters"].update(letters)
    if not by_recipient:
        return []
    text = decision.notice or decision.message or render(DEFAULT_MESSAGE, decision.as_dict())
    return [Notification(
        id="ntf_" + hashlib.sha256(f"{decision.id}|{recipient}".encode()).hexdigest()[:24],
        decision=decision.id, activity=activity, recipient=recipient, roles=entry["roles"],
        raci=",".join(letter for letter in LETTER_ORDER if letter in entry["letters"]),
        channel=channel_of(recipient), message=text)
        for recipient, entry in sorted(by_recipient.items())]


def channel_of(recipient: str) -> str:
    if recipient.startswith(("http://", "https://")):
        return "webhook"
    return "email" if "@" in recipient else "default"
