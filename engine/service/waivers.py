"""Waivers with four eyes (docs/OPERATIONS.md "Waivers"): an owner asks to leave a
decision, or a target's period, out of compliance, with a reason; it takes effect only when
a token of another name approves it, and can be revoked. Each step is recorded, chained,
with the token's name (engine/store/waivers.py).

One rule for the API and ``slm waiver``: what is asked is checked against the store and
the rules in force, and a refusal says which field and why (:class:`WaiverRefused`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from engine.lang.model import RuleSet
from engine.store.store import Store
from schemas.values import format_instant, parse_instant

SETTLING = ("met", "breach")        # the decisions that settle a cycle, so a waiver can take one out


class WaiverRefused(Exception):
    """Why a waiver step is refused: ``status`` as HTTP says it (403 the same token, 404 no
    such waiver, 409 not in a state that allows it, 422 what was asked is wrong) and the
    ``field`` it is about (None: the request as a whole)."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.field = status, field


class Waivers:
    """Request, approve and revoke waivers, and say which are in effect."""

    def __init__(self, store: Store, ruleset: Callable[[], RuleSet], now: Callable[[], datetime]):
        self.store, self.ruleset, self.now = store, ruleset, now

    def request(self, asked: dict, by: str) -> dict:
        """A new waiver, ``requested`` (not in effect until approved). ``asked``: ``reason``
        and ``decision`` (the id of a met or breach decision), or ``reason``, ``target``,
        ``since`` and ``until`` (RFC 3339; every cycle of the target settled in [since, until))."""
        reason = (asked.get("reason") or "").strip()
        if not reason:
            raise WaiverRefused(422, "a waiver needs a reason", "reason")
        if asked.get("decision") is not None:
            decision = self.store.decision(asked["decision"])
            if decision is None:
                raise WaiverRefused(422, f"no decision {asked['decision']!r}", "decision")
            if decision["kind"] not in SETTLING:
                raise WaiverRefused(422, f"decision {decision['id']} is a {decision['kind']}: only a met or "
                                         "breach decision settles a cycle that compliance counts", "decision")
            return self.store.request_waiver({"decision": decision["id"], "reason": reason}, by, self.now())
        ruleset = self.ruleset()
        if asked["target"] not in ruleset.targets:
            known = ", ".join(sorted(ruleset.targets)[:20])
            raise WaiverRefused(422, f"unknown target {asked['target']!r} in the rules in force (known: {known})",
                                "target")
        try:
            since, until = parse_instant(asked["since"]), parse_instant(asked["until"])
        except ValueError as err:
            raise WaiverRefused(422, str(err), "since") from None
        if until <= since:
            raise WaiverRefused(422, "until must come after since", "until")
        return self.store.request_waiver({"target": asked["target"], "since": format_instant(since),
                                          "until": format_instant(until), "reason": reason}, by, self.now())

    def approve(self, waiver_id: str, by: str) -> dict:
        """Put a requested waiver in effect. Refused (403) to a token of the requester's name."""
        return self._step(waiver_id, "approved", by, approvable("waiver", waiver_id, by))

    def revoke(self, waiver_id: str, by: str, reason: str) -> dict:
        """End a waiver, requested or approved: from now on it counts for nothing."""
        if not (reason or "").strip():
            raise WaiverRefused(422, "a revocation needs a reason", "reason")
        return self._step(waiver_id, "revoked", by, revocable("waiver", waiver_id), reason.strip())

    def _step(self, waiver_id: str, event: str, by: str, check, reason: str | None = None) -> dict:
        waiver = self.store.waiver_event(waiver_id, event, by, self.now(), check, reason)
        if waiver is None:
            raise WaiverRefused(404, f"no waiver {waiver_id!r}")
        return waiver


def approvable(noun: str, item_id: str, by: str) -> Callable[[dict], None]:
    """The four-eyes check of an approval by token ``by`` (waivers, restatements): run by the
    store under the chain's lock on the item as its events say, it refuses an item not
    requested (409) and the token that requested it (403)."""
    def four_eyes(item: dict) -> None:
        if item["status"] != "requested":
            raise WaiverRefused(409, f"{noun} {item_id} is {item['status']}: only a requested {noun} "
                                     "can be approved")
        if item["requested_by"] == by:
            raise WaiverRefused(403, f"the token {by!r} requested {noun} {item_id}: another token must "
                                     "approve it (four eyes)")
    return four_eyes


def revocable(noun: str, item_id: str) -> Callable[[dict], None]:
    """The check of a revocation: an item revoked already is refused (409)."""
    def live(item: dict) -> None:
        if item["status"] == "revoked":
            raise WaiverRefused(409, f"{noun} {item_id} was revoked already")
    return live


def in_effect(waivers: Iterable[dict]) -> list[dict]:
    """The approved waivers (neither requested only nor revoked)."""
    return [w for w in waivers if w["status"] == "approved"]


def waiving(waivers: Iterable[dict], decision: dict) -> list[dict]:
    """The waivers that name ``decision``, or whose target and period hold it (any status:
    a trace shows requested and revoked ones too)."""
    at = decision.get("at")
    return [w for w in waivers
            if w["decision"] == decision.get("id")
            or (w["target"] is not None and w["target"] == decision.get("target") and at is not None
                and parse_instant(w["since"]) <= parse_instant(at) < parse_instant(w["until"]))]
