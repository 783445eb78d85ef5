"""The figures behind a monthly service review: per target, met and breached cycles per
week, how long met cycles took against the goal, and how an availability window's
downtime budget was used over the month. Plain data: the console draws the charts.

It reads the month as the compliance report does (``reports.cycle_outcomes``), so the
charts and the table beside them always agree.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction

from engine.eval.clock import month_span
from engine.lang.model import RuleSet
from engine.service.reports import cycle_outcomes
from engine.service.timeline import _counting
from schemas.values import parse_duration, parse_instant

BUCKETS = ("≤25 %", "25–50 %", "50–75 %", "75–100 %", "breached")   # of the goal
SAMPLE = timedelta(hours=6)


def review(ruleset: RuleSet, decisions: list[dict], report: dict, windows: dict) -> list[dict]:
    """One entry per target of the report: its row plus ``weeks`` [(label, met, breached)],
    ``spread`` (duration targets: counts per :data:`BUCKETS`) and ``burn`` (windows: see
    :func:`burn`). ``windows``: target id → (transitions, budget, now) of its window clock."""
    outcomes = cycle_outcomes(ruleset, decisions, report["service"], report["period"])
    out = []
    for row in report["targets"]:
        target = ruleset.targets[row["target"]]
        start, end = month_span(report["period"], target.calendar.timezone)
        cycles = outcomes.get(target.id, {})
        entry = {**row, "name": target.name, "weeks": _weeks(cycles.values(), start, end, target.calendar.zone)}
        if target.measure == "duration" and isinstance(target.goal, timedelta):    # a deadline's budget varies
            entry["spread"] = _spread(cycles.values(), target.goal)
        elif target.id in windows:
            transitions, budget, now = windows[target.id]
            entry["burn"] = burn(target, transitions, budget, start, end, now)
        out.append(entry)
    return out


def _weeks(decisions, start: datetime, end: datetime, zone) -> list[tuple[str, int, int]]:
    """Met and breached cycles per ISO week of the month (local weeks of the calendar)."""
    weeks: dict[str, list[int]] = {}
    day = start
    while day < end:
        weeks.setdefault(_week(day, zone), [0, 0])
        day += timedelta(days=1)
    for d in decisions:
        counts = weeks.setdefault(_week(parse_instant(d["at"]), zone), [0, 0])
        counts[0 if d["kind"] == "met" else 1] += 1
    return [(label, met, breached) for label, (met, breached) in weeks.items()]


def _week(at: datetime, zone) -> str:
    year, week, _ = at.astimezone(zone).isocalendar()
    return f"W{week:02d}"


def _spread(decisions, goal: timedelta) -> list[int]:
    counts = [0] * len(BUCKETS)
    for d in decisions:
        if d["kind"] == "breach":
            counts[-1] += 1
            continue
        counted = parse_duration(d.get("data", {}).get("counted", "0s"))
        share = Fraction(counted // timedelta(seconds=1), max(goal // timedelta(seconds=1), 1))
        counts[min(int(share * 4), 3) if share < 1 else 3] += 1
    return counts


def burn(target, transitions, budget: timedelta, start: datetime, end: datetime, now: datetime) -> dict:
    """Downtime counted from the window's start, sampled every :data:`SAMPLE` and at each
    change, up to ``now`` (or the window's end): points (instant, counted), the budget."""
    spans, _ = _counting(target, transitions, min(now, end))
    until = min(now, end)
    instants = {start, until}
    for a, b in spans:
        instants.update((a, b))
    moment = start
    while moment < until:
        instants.add(moment)
        moment += SAMPLE
    points = []
    for instant in sorted(i for i in instants if start <= i <= until):
        counted = sum((target.calendar.counted(a, min(b, instant)) for a, b in spans if a < instant), timedelta(0))
        points.append((instant, counted))
    return {"points": points, "budget": budget, "start": start, "end": end}
