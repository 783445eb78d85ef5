"""RACI notifications: who hears of a decision, and in which capacity (DESIGN §5)."""
from __future__ import annotations

import hashlib

from engine.lang.model import RuleSet
from engine.lang.templates import render

LETTER_ORDER = "RACI"
DEFAULT_MESSAGE = ("{{ activity }}: {{ kind }} of {{ target or 'rule ' ~ rule.id }} for {{ subject }}"
                   "{% if service %} ({{ service }}){% endif %}{% if level %} at {{ level }}{% endif %}")


def notifications_for(decision: dict, ruleset: RuleSet, message: str | None = None) -> list[dict]:
    """One notification per recipient, letters merged in R, A, C, I order. ``message`` is
    text already rendered (never rendered again: facts' values must not become templates).

    Shadow decisions notify nobody: a proposed target is tried without waking people up.
    """
    activity = decision.get("activity")
    if not activity or decision.get("shadow") or activity not in ruleset.raci:
        return []
    by_recipient: dict[str, dict] = {}
    for role, letters in ruleset.raci[activity].items():
        for recipient in ruleset.holders(decision.get("service"), role):
            entry = by_recipient.setdefault(recipient, {"roles": [], "letters": set()})
            entry["roles"].append(role)
            entry["letters"].update(letters)
    text = message if message is not None else render(DEFAULT_MESSAGE, decision)   # a rule's message arrives rendered
    return [{
        "id": "ntf_" + hashlib.sha256(f"{decision['id']}|{recipient}".encode()).hexdigest()[:24],
        "decision": decision["id"],
        "activity": activity,
        "recipient": recipient,
        "roles": entry["roles"],
        "raci": ",".join(letter for letter in LETTER_ORDER if letter in entry["letters"]),
        "channel": channel_of(recipient),
        "message": text,
        "status": "pending",
    } for recipient, entry in sorted(by_recipient.items())]


def channel_of(recipient: str) -> str:
    if recipient.startswith(("http://", "https://")):
        return "webhook"
    return "email" if "@" in recipient else "default"
