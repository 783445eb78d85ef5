"""Compliance of a service's targets over a calendar month or a range of months, from the
decision log, with the trend month by month and the service credits due.

A clock cycle counts once: breached if any breach of it stands (not retracted), else met
if a met decision stands. Duration targets report per ticket cycle; availability and
threshold targets per window, with the availability achieved from the window clocks.
The month is the calendar month in each target's own calendar's timezone, the same
month its availability window covers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import cast

from engine.eval.clock import month_span
from engine.lang.maintenance import ExcludingCalendar, merged
from engine.lang.model import Agreement, Credits, RuleSet, Target
from schemas.values import DeadlineGoal, format_instant, parse_instant, report_months

# (target id, window label) -> (down time counted, service time of the window) or None
WindowReading = Callable[[str, str], "tuple[timedelta, timedelta] | None"]
# (target id, window label) -> the spans the window counted down time in (calendar hours not applied), or None
DownSpans = Callable[[str, str], "list[tuple[datetime, datetime]] | None"]
# (target id, start, end) -> the posted maintenance windows overlapping [start, end): (from, to, fact ref)
PostedWindows = Callable[[str, datetime, datetime], "list[tuple[datetime, datetime, str]]"]


SPAN_MARGIN = timedelta(days=1)     # a local month lies within a day of the UTC month


class UnknownName(ValueError):
    """A report asked for a service or customer the rules in force do not name; ``field``
    says which (the API names it in its 400)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def customers(ruleset: RuleSet) -> frozenset[str]:
    """The customers the agreements of a rule set name (a retired one's too: its past months
    are still reported)."""
    return frozenset(a.customer for a in ruleset.agreements.values() if a.customer)


def compliance(ruleset: RuleSet, decisions: Iterable[dict], service: str, period: str,
               window: WindowReading | None = None, versions: Sequence[dict] = (),
               version_of: Callable[[str], RuleSet | None] = lambda version: None,
               posted: PostedWindows | None = None, customer: str | None = None,
               waivers: Sequence[dict] = (), restatements: Mapping[str, dict] | None = None,
               down_spans: DownSpans | None = None) -> dict:
    """Per target of ``service`` (of ``customer``'s agreements only, if given) over ``period``,
    a month or a range of months (schemas.values.report_months): subjects, met, breached,
    compliance % and availability %, and the same per rule-set version that decided them
    (``by_version``, with the goal as that version had it: a goal change in the period shows
    beside the cycles it judged); ``trend``, the same figures month by month; and per
    agreement with credits, the credit due each month.

    ``decisions``: at least those of the period's UTC months widened by :data:`SPAN_MARGIN`,
    and every retraction. ``versions``: the versions in force during the period, in order.
    ``posted``: the maintenance windows posted as facts, for the targets that exclude them.
    ``waivers``: those in effect; a cycle they take out is counted as ``waived``, neither met
    nor breached (engine/service/waivers.py); a waiver of a target's period also takes that
    period out of the target's window, its down time and its service time (``down_spans``
    says when the window counted down time), so the availability figure is the rest's, with
    the figure unwaived and the waivers named beside it (``waived_time``). ``restatements``: month → the approved
    restatement of this service that counts (engine/service/restatements.py): that month's
    figures are the restated ones, with its note and the recorded figures beside them."""
    months = report_months(period)
    decisions = list(decisions)
    targets = [t for t in sorted(ruleset.targets.values(), key=lambda t: t.id)
               if t.service == service and (customer is None or t.agreement.customer == customer)]
    agreements = sorted({t.agreement.id: t.agreement for t in targets if t.agreement.credits}.values(),
                        key=lambda a: a.id)
    waived = waived_cycles(decisions, waivers)
    periods = waived_periods(waivers)
    monthly = [_restated_month(ruleset, decisions, service, month, targets, window, waived,
                               (restatements or {}).get(month), periods, down_spans) for month in months]
    credits = [{"period": month.period, **credit_due(a, month.figures)} for month in monthly for a in agreements]
    rows = [_row(target, monthly, ruleset, version_of, posted, credits) for target in targets]
    notes = [month.restatement for month in monthly if month.restatement is not None]
    return {"service": service, "customer": customer, "period": period, "months": months,
            "ruleset": ruleset.version, "versions": list(versions), "targets": rows, "credits": credits,
            "restatements": notes}


@dataclass
class _Month:
    """One month of a report: what was settled per target, and its exact figures."""

    period: str
    cycles: dict[str, dict[tuple, dict]]                    # target → (subject, cycle) → settling decision
    waived: dict[str, dict[tuple, dict]]                    # the same, of the cycles waivers take out
    readings: dict[str, tuple[timedelta, timedelta] | None]  # target → (down, service time) of its window
    figures: dict[str, dict[str, Fraction | None]]          # target → compliance, availability (exact)
    waived_time: dict[str, WaivedTime] = field(default_factory=dict)  # target → what waived periods took out
    restatement: dict | None = None                         # the note of the restatement it shows, if any
    original: _Month | None = None                          # then: the month as recorded


@dataclass
class WaivedTime:
    """What approved waivers of a target's period took out of one window: the down time and
    the service time inside them (overlapping waivers counted once), the window's reading
    before, and the waivers."""

    down: timedelta
    service_time: timedelta
    unwaived: tuple[timedelta, timedelta]
    waivers: list[dict]


def waived_periods(waivers: Sequence[dict]) -> dict[str, list[tuple[datetime, datetime, dict]]]:
    """Target id → its waived periods (since, until, the waiver), of the waivers that name a
    target's period."""
    out: dict[str, list[tuple[datetime, datetime, dict]]] = {}
    for w in waivers:
        if w["target"] is not None:
            out.setdefault(w["target"], []).append((parse_instant(w["since"]), parse_instant(w["until"]), w))
    return out


def waive_window(target: Target, period: str, reading: tuple[timedelta, timedelta],
                 periods: Sequence[tuple[datetime, datetime, dict]],
                 spans: list[tuple[datetime, datetime]] | None) -> WaivedTime | None:
    """What ``periods`` take out of a target's window of month ``period`` read as ``reading``
    (down, service time), the window having counted down time in ``spans`` (None: it never
    did): the service time of the periods inside the window and the down time inside them,
    both on the target's calendar; None if no period meets the window. Exact and
    deterministic: sums of calendar time over disjoint spans."""
    start, end = month_span(period, target.calendar.timezone)
    inside = [(max(a, start), min(b, end), w) for a, b, w in periods if a < end and b > start]
    if not inside:
        return None
    cut = merged(inside)
    calendar = target.calendar
    service_time = sum((calendar.counted(a, b) for a, b in cut), timedelta(0))
    down = sum((calendar.counted(max(a, c), min(b, d)) for a, b in cut for c, d in spans or ()
                if max(a, c) < min(b, d)), timedelta(0))
    named = sorted({w["id"]: w for _, _, w in inside}.values(), key=lambda w: (w["since"], w["id"]))
    return WaivedTime(min(down, reading[0]), min(service_time, reading[1]), reading, named)


def _restated_month(ruleset: RuleSet, decisions: list[dict], service: str, period: str, targets: list[Target],
                    window: WindowReading | None, waived: Callable[[dict], bool],
                    restatement: dict | None,
                    periods: Mapping[str, Sequence[tuple[datetime, datetime, dict]]] | None = None,
                    down_spans: DownSpans | None = None) -> _Month:
    """The month as recorded, or as ``restatement`` restates it: its decisions in place of
    those they supersede, its window figures (and the spans they counted down time in) in
    place of the read ones; the recorded month kept beside it."""
    periods = periods or {}
    original = _month(ruleset, decisions, service, period, targets, window, waived, periods, down_spans)
    if restatement is None:
        return original
    windows = restatement["windows"]
    recorded_spans = restatement.get("down_spans") or {}

    def restated_spans(target: str, label: str) -> list[tuple[datetime, datetime]] | None:
        if target in windows and label == period:
            return [(parse_instant(a), parse_instant(b)) for a, b in recorded_spans.get(target, [])]
        return down_spans(target, label) if down_spans is not None else None

    def restated_window(target: str, label: str) -> tuple[timedelta, timedelta] | None:
        if target in windows and label == period:
            down, service_time = windows[target]
            return timedelta(microseconds=down), timedelta(microseconds=service_time)
        return window(target, label) if window is not None else None
    month = _month(ruleset, restated(decisions, restatement), service, period, targets, restated_window, waived,
                   periods, restated_spans)
    month.restatement = {k: restatement[k] for k in ("id", "period", "reason", "rules", "requested_by",
                                                      "approved_by", "approved_at")}
    month.original = original
    return month


def restated(decisions: list[dict], restatement: dict) -> list[dict]:
    """A month's decisions as a restatement says: those it supersedes or withdraws left out,
    its own in their place (retractions of recorded ones stay: they name recorded ids)."""
    replaced = set(restatement["withdraws"]) | {i for d in restatement["decisions"] for i in d["supersedes"]}
    return [d for d in decisions if d["id"] not in replaced] + list(restatement["decisions"])


def waived_cycles(decisions: list[dict], waivers: Sequence[dict]) -> Callable[[dict], bool]:
    """Whether a settling decision's cycle is waived: a waiver names one of that cycle's
    decisions, or holds the decision's instant in its target's period."""
    named = {w["decision"] for w in waivers if w["decision"] is not None}
    cycles = {(d.get("target"), d.get("subject"), d.get("cycle")) for d in decisions if d["id"] in named}
    periods = [(w["target"], parse_instant(w["since"]), parse_instant(w["until"])) for w in waivers
               if w["target"] is not None]

    def waived(d: dict) -> bool:
        if (d.get("target"), d.get("subject"), d.get("cycle")) in cycles:
            return True
        at = parse_instant(d["at"])
        return any(target == d.get("target") and since <= at < until for target, since, until in periods)
    return waived


def _month(ruleset: RuleSet, decisions: list[dict], service: str, period: str, targets: list[Target],
           window: WindowReading | None, waived: Callable[[dict], bool],
           periods: Mapping[str, Sequence[tuple[datetime, datetime, dict]]],
           down_spans: DownSpans | None) -> _Month:
    outcomes = cycle_outcomes(ruleset, decisions, service, period)
    month = _Month(period, {}, {}, {}, {})
    for target in targets:
        settled = outcomes.get(target.id, {})
        month.waived[target.id] = {key: d for key, d in settled.items() if waived(d)}
        cycles = month.cycles[target.id] = {key: d for key, d in settled.items() if key not in month.waived[target.id]}
        met, breached = _settled(cycles.values())
        reading = window(target.id, period) if target.measure != "duration" and window is not None else None
        if reading is not None and periods.get(target.id):
            spans = down_spans(target.id, period) if down_spans is not None else None
            taken = waive_window(target, period, reading, periods[target.id], spans)
            if taken is not None:
                month.waived_time[target.id] = taken
                reading = (reading[0] - taken.down, reading[1] - taken.service_time)
        month.readings[target.id] = reading
        month.figures[target.id] = {"compliance": Fraction(met, met + breached) if met + breached else None,
                                    "availability": _availability([reading])}
    return month


def _row(target: Target, monthly: list[_Month], ruleset: RuleSet, version_of: Callable[[str], RuleSet | None],
         posted: PostedWindows | None, credits: list[dict]) -> dict:
    """A target's row over the period: the months' cycles taken together (a subject counts
    once), availability over the months' service time, and the ``trend`` month by month."""
    settled = [d for month in monthly for d in month.cycles[target.id].values()]
    met, breached = _settled(settled)
    row = {"target": target.id, "agreement": target.agreement.id, "customer": target.agreement.customer,
           "measure": target.measure, "shadow": target.agreement.shadow,
           "subjects": len({s for month in monthly for s, _ in month.cycles[target.id]}),
           "met": met, "breached": breached, "waived": sum(len(month.waived[target.id]) for month in monthly),
           "compliance": _shown(Fraction(met, met + breached) if met + breached else None),
           "availability": _shown(_availability([month.readings[target.id] for month in monthly])),
           "goal": _goal(target.goal),
           "by_version": _by_version(settled, target.id, ruleset, version_of)}
    row["waived_time"] = _waived_time([month.waived_time.get(target.id) for month in monthly],
                                      [month.readings[target.id] for month in monthly])
    if target.excludes_maintenance:
        each = [maintenance(target, month.period, posted) for month in monthly]
        row["maintenance"] = {"windows": [w for m in each for w in m["windows"]],
                              "excluded_minutes": round(sum(m["excluded_minutes"] for m in each), 2)}
    row["trend"] = [_trend(target, month, credits) for month in monthly]
    return row


def _trend(target: Target, month: _Month, credits: list[dict]) -> dict:
    met, breached = _settled(month.cycles[target.id].values())
    earned = [basis["credit"] for credit in credits if credit["period"] == month.period
              for basis in credit["targets"] if basis["target"] == target.id]
    shown = {"period": month.period, "subjects": len({s for s, _ in month.cycles[target.id]}),
             "met": met, "breached": breached, "waived": len(month.waived[target.id]),
             "compliance": _shown(month.figures[target.id]["compliance"]),
             "availability": _shown(month.figures[target.id]["availability"]),
             "credit": max(earned) if earned else None,
             "waived_time": _waived_time([month.waived_time.get(target.id)], [month.readings[target.id]]),
             "restated": None if month.restatement is None else month.restatement["id"], "original": None}
    if month.original is not None:            # the figures as recorded, still readable
        recorded = _trend(target, month.original, [])
        shown["original"] = {k: recorded[k] for k in ("subjects", "met", "breached", "waived", "compliance",
                                                      "availability", "waived_time")}
    return shown


def _waived_time(taken: Sequence[WaivedTime | None],
                 readings: Sequence[tuple[timedelta, timedelta] | None]) -> dict | None:
    """What waived periods took out of the windows read (None: nothing): minutes of down
    time and of service time, the availability as it would be without the waivers, and the
    waivers by id and reason."""
    if not any(taken):
        return None
    unwaived = [t.unwaived if t is not None else r for t, r in zip(taken, readings, strict=True)]
    waivers = {w["id"]: w for t in taken if t is not None for w in t.waivers}
    return {"down_minutes": _minutes(sum((t.down for t in taken if t is not None), timedelta(0))),
            "service_minutes": _minutes(sum((t.service_time for t in taken if t is not None), timedelta(0))),
            "availability_unwaived": _shown(_availability(unwaived)),
            "waivers": [{k: w[k] for k in ("id", "reason", "since", "until", "requested_by", "approved_by")}
                        for w in sorted(waivers.values(), key=lambda w: (w["since"], w["id"]))]}


def _minutes(span: timedelta) -> float:
    return round(span / timedelta(minutes=1), 2)


def _settled(decisions: Iterable[dict]) -> tuple[int, int]:
    kinds = [d["kind"] for d in decisions]
    return kinds.count("met"), kinds.count("breach")


def credit_due(agreement: Agreement, figures: dict[str, dict[str, Fraction | None]]) -> dict:
    """The service credit an agreement owes for the month (docs/RULES.md "Service credits"):
    each credited target's figure against the tiers; the worst target decides, and tiers do
    not add up. A target with no figure this month (no cycle settled, no window read) earns
    nothing and is listed as unmeasured."""
    credits = cast(Credits, agreement.credits)
    basis, unmeasured, worst = [], [], None
    for target_id in credits.targets:
        figure = figures.get(target_id, {}).get(credits.of)
        if figure is None:
            unmeasured.append(target_id)
            continue
        tier = credits.due(figure)
        basis.append({"target": target_id, "figure": _percent(figure),
                      "below": None if tier is None else _percent(tier.below),
                      "credit": 0.0 if tier is None else _percent(tier.credit)})
        if tier is not None and (worst is None or tier.credit > worst[1].credit):
            worst = (target_id, tier)
    return {"agreement": agreement.id, "customer": agreement.customer, "shadow": agreement.shadow,
            "of": credits.of, "credit": 0.0 if worst is None else _percent(worst[1].credit),
            "decided_by": None if worst is None else worst[0], "targets": basis, "unmeasured": unmeasured}


def maintenance(target: Target, period: str, posted: PostedWindows | None) -> dict:
    """The maintenance windows of a target's month, declared and posted, and the service
    time they took out of it (overlaps counted once)."""
    start, end = month_span(period, target.calendar.timezone)
    calendar = target.calendar
    spans = [(a, b, f"rules:{ref}") for a, b, ref in calendar.windows.spans(start, end)] \
        if isinstance(calendar, ExcludingCalendar) else []
    spans += [(max(a, start), min(b, end), ref) for a, b, ref in (posted(target.id, start, end) if posted else [])
              if a < end and b > start]
    base = calendar.base if isinstance(calendar, ExcludingCalendar) else calendar
    excluded = sum((base.counted(a, b) for a, b in merged(spans)), timedelta(0))
    return {"windows": [{"from": format_instant(a), "to": format_instant(b), "source": ref}
                        for a, b, ref in sorted(spans)],
            "excluded_minutes": round(excluded / timedelta(minutes=1), 2)}


def _by_version(settled: Iterable[dict], target_id: str, ruleset: RuleSet,
                version_of: Callable[[str], RuleSet | None]) -> list[dict]:
    counts: dict[str, list[int]] = {}
    for d in settled:
        entry = counts.setdefault((d.get("rule") or {}).get("ruleset") or ruleset.version, [0, 0])
        entry[0 if d["kind"] == "met" else 1] += 1
    out = []
    for version, (met, breached) in sorted(counts.items()):
        found = ruleset if version == ruleset.version else version_of(version)
        target = None if found is None else found.targets.get(target_id)
        out.append({"version": version, "goal": None if target is None else _goal(target.goal),
                    "met": met, "breached": breached})
    return out


def cycle_outcomes(ruleset: RuleSet, decisions: Iterable[dict], service: str,
                   period: str) -> dict[str, dict[tuple, dict]]:
    """Target id → (subject, cycle) → the decision that settles the cycle in the month: a
    standing breach if there is one, else a standing met (the service review charts these
    too, so both read the month the same way)."""
    decisions = list(decisions)
    retracted = {d.get("data", {}).get("retracts") for d in decisions if d["kind"] == "retracted"}
    outcomes: dict[str, dict[tuple, dict]] = {}
    spans = {target.id: month_span(period, target.calendar.timezone) for target in ruleset.targets.values()
             if target.service == service}
    for d in decisions:
        if d["id"] in retracted or d["kind"] not in ("met", "breach") or d.get("target") not in spans:
            continue
        start, end = spans[d["target"]]
        if not start <= parse_instant(d["at"]) < end:
            continue
        cycles = outcomes.setdefault(d["target"], {})
        key = (d.get("subject"), d.get("cycle"))
        if cycles.get(key, {}).get("kind") != "breach":
            cycles[key] = d
    return outcomes


def _availability(readings: Iterable[tuple[timedelta, timedelta] | None]) -> Fraction | None:
    """Availability over the windows read: one minus their down time over their service time."""
    read = [r for r in readings if r is not None]
    service_time = sum((t for _, t in read), timedelta(0))
    if not read or service_time <= timedelta(0):
        return None
    down = sum((d for d, _ in read), timedelta(0))
    return 1 - Fraction(down / timedelta(microseconds=1)) / Fraction(service_time / timedelta(microseconds=1))


def _percent(fraction: Fraction) -> float:
    return round(float(fraction) * 100, 4)


def _shown(fraction: Fraction | None) -> float | None:
    return None if fraction is None else _percent(fraction)


def _goal(goal) -> str:
    if isinstance(goal, DeadlineGoal):
        return goal.text
    if isinstance(goal, Fraction):
        return f"{float(goal) * 100:g}%"
    from schemas.values import format_duration
    return format_duration(goal)
