"""The monthly review pack's content, when its decision is recorded: the agreement's
compliance report for the month and the months before it (engine.service.reports, read as
the API reads it), its waivers and restatements, rendered by engine.notify.pack into the
text its notification carries (``Decision.notice``, not part of the record).

The engine decides when a pack is due (engine.eval.packs); this only says what it holds.
It runs where decisions are recorded live, never in a replay (whose decisions are stored
already, with their notifications): so a pack is rendered, and sent, once.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from engine.eval.clock import month_span
from engine.notify.pack import pack_text
from engine.service.waivers import in_effect, waiving
from schemas.records import Decision
from schemas.values import parse_instant

log = logging.getLogger("slm.service")

TREND_MONTHS = 6        # the month reported and the five before it


def months_up_to(period: str, count: int = TREND_MONTHS) -> str:
    """``YYYY-MM..period``: ``count`` months ending with ``period`` (not before 1970)."""
    year, month = map(int, period.split("-"))
    first = max(year * 12 + month - count, 1970 * 12)
    return f"{first // 12:04d}-{first % 12 + 1:02d}..{period}"


class ReviewPacks:
    """The text of a ``review-pack`` decision's notifications."""

    def __init__(self, compliance: Callable[[str, str], dict], waivers: Callable[[], list[dict]],
                 decision: Callable[[str], dict | None]):
        self.compliance, self.waivers, self.decision = compliance, waivers, decision

    def text(self, decision: Decision) -> str:
        """The pack of ``decision``'s agreement and month; a pack that cannot be built says
        why (the notification still goes out: the Accountable learns it is due)."""
        period = decision.data["period"]
        try:
            report = self.compliance(decision.service or "", months_up_to(period))
            ours = {row["target"] for row in report["targets"] if row["agreement"] == decision.agreement}
            return pack_text(report, decision.agreement or "", period, self._waivers(ours, period))
        except Exception as err:          # a pack must not stop the write that decided it
            log.exception("the review pack of %s for %s could not be built", decision.agreement, period)
            return f"Review pack of {decision.agreement} for {period}: it could not be built ({err})."

    def _waivers(self, targets: set[str], period: str) -> list[dict]:
        """The waivers in effect that touched the agreement's month: a period of one of its
        targets overlapping the month (of UTC), or a decision of one settled in it."""
        out = []
        for waiver in in_effect(self.waivers()):
            if waiver["target"] is not None:
                if waiver["target"] in targets and _overlaps(waiver, period):
                    out.append({**waiver, "what": f"{waiver['target']} from {waiver['since']} to {waiver['until']}"})
                continue
            decided = self.decision(waiver["decision"])
            if decided is not None and decided.get("target") in targets and waiving([waiver], decided) \
                    and decided["at"][:7] == period:
                out.append({**waiver, "what": f"the {decided['kind']} of {decided['target']} for "
                                              f"{decided['subject']}"})
        return out


def _overlaps(waiver: dict, period: str) -> bool:
    start, end = month_span(period)
    return parse_instant(waiver["since"]) < end and parse_instant(waiver["until"]) > start
