"""Monthly review packs (docs/RULES.md "Monthly review pack"): on the first business day of
each month of an agreement's service calendar, a ``review-pack`` decision for the month
before, whose activity routes it to the Accountable (engine.notify.route).

Decided in event time, as a clock's deadlines are, and fired by the same loop
(engine.eval.transitions.advance) and the same scheduler ticks: the engine's time reaching
a month's first business instant fires the pack of each agreement that has one. What has
fired is exactly what lies before the engine's time (at it, once a tick fired it), so
nothing more is kept: a snapshot holds nothing new, and a replay of the same facts and
ticks fires the same packs, with the same ids (one per agreement and month), so a pack is
never stored or sent twice. No pack fires before the engine's first fact.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

from engine.eval.clock import month_span
from engine.eval.records import decision_id, rule_ref
from engine.lang.calendar import ServiceCalendar
from engine.lang.model import Agreement, RuleSet
from schemas.records import Decision

KIND = "review-pack"
_CACHED = "_review_packing"
LOOKAHEAD = 24          # months searched for the next pack (a calendar closed longer sends none)


@lru_cache(maxsize=4096)
def first_business_instant(calendar: ServiceCalendar, period: str) -> datetime | None:
    """The first instant of month ``period`` (YYYY-MM, in the calendar's zone) at which the
    calendar is open: the start of its first business day's service hours. None if the
    calendar is closed all month."""
    start, end = month_span(period, calendar.timezone)
    return next((a for a, _ in calendar.open_spans(start, end)), None)


def month_of(at: datetime, calendar: ServiceCalendar) -> tuple[int, int]:
    local = at.astimezone(calendar.zone)
    return local.year, local.month


def _label(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def _step(year: int, month: int, by: int = 1) -> tuple[int, int]:
    index = year * 12 + month - 1 + by
    return index // 12, index % 12 + 1


def _packing(ruleset: RuleSet) -> list[Agreement]:
    """The agreements whose packs this engine decides: with a review pack, not retired, and
    of this engine's share (RuleSet.pack_agreements)."""
    cached = ruleset.__dict__.get(_CACHED)          # asked at every fact and deadline: worked out once
    if cached is None:
        chosen = ruleset.pack_agreements
        cached = ruleset.__dict__[_CACHED] = [
            a for a in sorted(ruleset.agreements.values(), key=lambda a: a.id)
            if a.review_pack is not None and a.status != "retired" and (chosen is None or a.id in chosen)]
    return cached


def _covers(agreement: Agreement, year: int, month: int) -> bool:
    """Whether the agreement was in force during some day of the month."""
    first = date(year, month, 1)
    last = date(*_step(year, month), 1) - timedelta(days=1)
    return (agreement.valid_from is None or agreement.valid_from <= last) and \
        (agreement.valid_to is None or agreement.valid_to >= first)


def _after(at: datetime, since: datetime, since_inclusive: bool) -> bool:
    """Whether ``at`` is still to fire for an engine standing at ``since``."""
    return at > since or (at == since and not since_inclusive)


def due(ruleset: RuleSet, since: datetime | None, since_inclusive: bool, until: datetime,
        inclusive: bool) -> list[tuple[datetime, Agreement, str]]:
    """The packs that fire as the engine's time moves from ``since`` to ``until`` (each end
    included as its flag says): (instant, agreement, the month reported), in event-time order."""
    if since is None:
        return []
    out = []
    for agreement in _packing(ruleset):
        calendar = agreement.review_pack.calendar          # type: ignore[union-attr]
        year, month = month_of(since, calendar)
        while (year, month) <= month_of(until, calendar):
            at = first_business_instant(calendar, _label(year, month))
            before = _step(year, month, -1)
            if at is not None and _after(at, since, since_inclusive) and (at < until or (at == until and inclusive)) \
                    and _covers(agreement, *before):
                out.append((at, agreement, _label(*before)))
            year, month = _step(year, month)
    return sorted(out, key=lambda item: (item[0], item[1].id))


def next_due(ruleset: RuleSet, since: datetime | None, since_inclusive: bool) -> datetime | None:
    """The instant of the next pack to fire after ``since`` (None: none within
    :data:`LOOKAHEAD` months, or the engine has seen no fact)."""
    if since is None:
        return None
    found = None
    for agreement in _packing(ruleset):
        calendar = agreement.review_pack.calendar          # type: ignore[union-attr]
        year, month = month_of(since, calendar)
        for _ in range(LOOKAHEAD):
            at = first_business_instant(calendar, _label(year, month))
            before = _step(year, month, -1)
            if agreement.valid_to is not None and date(*before, 1) > agreement.valid_to:
                break
            if at is not None and _after(at, since, since_inclusive) and _covers(agreement, *before):
                found = at if found is None else min(found, at)
                break
            year, month = _step(year, month)
    return found


def decision(agreement: Agreement, at: datetime, period: str, version: str) -> Decision:
    """The ``review-pack`` decision of ``agreement`` for month ``period``: its id is the
    agreement's and the month's alone, so a replay, a restart or a rule change decides the
    same pack again, never a second one."""
    pack = agreement.review_pack
    assert pack is not None
    return Decision(
        id=decision_id([KIND, agreement.id, period]), kind=KIND, target=None, subject=agreement.id,
        service=agreement.service, agreement=agreement.id, at=at, shadow=agreement.shadow,
        data={"period": period, "calendar": pack.calendar.id},
        rule=rule_ref(agreement.id, pack.origin, version), because=[], agreement_type=agreement.type,
        activity=pack.activity)
