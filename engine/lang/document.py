"""The agreements of a service in plain words (``slm docs``, docs/RULES.md "The agreement
as a document").

Built from the loaded model, not from the YAML's comments, so what a customer reads and
signs is what the engine enforces: every goal, calendar, warning, escalation level and
RACI letter here is the one the clocks run on. The result is plain data (sections,
sentences, tables); engine/lang/document_render.py lays it out as Markdown or HTML.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any, cast

from engine.lang.calendar import ServiceCalendar
from engine.lang.followsun import AnyOfCalendar
from engine.lang.maintenance import ExcludingCalendar
from engine.lang.model import DEFAULT_FORECAST, Agreement, RuleSet, Target
from engine.lang.oncall import holder_text
from schemas.values import DeadlineGoal, Level, parse_duration

AGREEMENT_KINDS = {"SLA": "Service level agreement", "OLA": "Operational level agreement",
                   "UC": "Underpinning contract", "SLR": "Service level requirement (proposed)"}
ORDER = ("SLA", "OLA", "UC", "SLR")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LETTERS = {"R": "responsible", "A": "accountable", "C": "consulted", "I": "informed"}
WINDOWS = {"month": "each calendar month", "week": "each ISO week (Monday to Sunday)", "day": "each day"}


class UnknownService(ValueError):
    """The service asked for is not in the rules; the message lists those that are."""


@dataclass
class Document:
    service: dict[str, str]
    agreements: list[dict[str, Any]]
    escalations: list[dict[str, Any]]
    raci: dict[str, Any]
    calendars: list[dict[str, Any]]
    reporting: list[str]
    version: str


def agreement_document(ruleset: RuleSet, service_id: str, agreements: list[str] | None = None) -> Document:
    """The service's agreements in force (not retired), SLAs first; ``agreements`` limits
    them to those ids."""
    service = ruleset.services.get(service_id)
    if service is None:
        known = ", ".join(sorted(ruleset.services)) or "none"
        raise UnknownService(f"unknown service {service_id!r} (services: {known})")
    chosen = [a for a in ruleset.agreements.values() if a.service == service_id and a.status != "retired"]
    if agreements:
        missing = sorted(set(agreements) - {a.id for a in chosen})
        if missing:
            known = ", ".join(sorted(a.id for a in chosen)) or "none"
            raise UnknownService(f"no agreement {missing[0]!r} in force for service {service_id!r} "
                                 f"(agreements: {known})")
        chosen = [a for a in chosen if a.id in agreements]
    chosen.sort(key=lambda a: (ORDER.index(a.type), a.id))
    targets = [t for a in chosen for t in _targets_of(ruleset, a)]
    return Document(
        service={"id": service.id, "name": service.name},
        agreements=[_agreement(ruleset, a) for a in chosen],
        escalations=_escalations(ruleset, targets),
        raci=_raci(ruleset, service_id, targets),
        calendars=_calendars(targets),
        reporting=_reporting(targets),
        version=ruleset.version)


def _reporting(targets: list[Target]) -> list[str]:
    """How compliance is reported (engine/service/reports.py), for the measures used."""
    measures = {t.measure for t in targets}
    lines = []
    if "duration" in measures:
        lines.append("Compliance with each time target is reported for every calendar month: how many "
                     "tickets met it and how many breached it.")
    if measures & {"availability", "threshold"}:
        lines.append("Availability and performance targets are reported for each of their periods: the "
                     "time counted against the target and the allowance left.")
    lines.append("Every warning, breach and escalation is recorded with the rule that decided it, and can "
                 "be inspected by both parties.")
    return lines


def _calendars(targets: list[Target]) -> list[dict[str, Any]]:
    """Each calendar the targets count in, with the targets that use it."""
    used: dict[str, dict[str, Any]] = {}
    for target in targets:
        entry = used.setdefault(target.calendar.id, {"id": target.calendar.id, "hours": hours(target.calendar),
                                                     "targets": []})
        entry["targets"].append(target.id)
    return list(used.values())


def _targets_of(ruleset: RuleSet, agreement: Agreement) -> list[Target]:
    return [t for t in ruleset.targets.values() if t.agreement is agreement]


def _agreement(ruleset: RuleSet, agreement: Agreement) -> dict[str, Any]:
    parties = []
    if agreement.provider:
        parties.append(f"Provided by {agreement.provider}")
    if agreement.customer:
        parties.append(f"{'for' if parties else 'For'} {agreement.customer}")
    status = {"draft": "Draft: evaluated, but not yet agreed; it notifies nobody.",
              "agreed": "Agreed."}[agreement.status]
    if agreement.type == "SLR":
        status = "Proposed requirement: evaluated in the background, it notifies nobody."
    return {
        "id": agreement.id,
        "title": agreement.name or agreement.id,
        "kind": AGREEMENT_KINDS[agreement.type],
        "parties": " ".join(parties) + "." if parties else "",
        "status": status,
        "validity": validity(agreement.valid_from, agreement.valid_to),
        "targets": [_target(ruleset, t) for t in _targets_of(ruleset, agreement)],
        "credits": _credits(ruleset, agreement),
        "review_pack": _review_pack(ruleset, agreement),
    }


def _review_pack(ruleset: RuleSet, agreement: Agreement) -> str:
    """The monthly review pack in words: when, to whom, what it holds."""
    pack = agreement.review_pack
    if pack is None:
        return ""
    accountable = ruleset.accountable(pack.activity)
    def named(role: str) -> str:
        return ", ".join(map(holder_text, ruleset.holders(agreement.service, role))) or "no one"
    who = _and([f"the {role.replace('_', ' ')} ({named(role)})" for role in accountable]) \
        or "nobody (the activity names no accountable role)"
    hours = "" if pack.calendar.all_hours else f" ({pack.calendar.id} service hours)"
    return (f"On the first business day of each month{hours}, a review pack of the month before is sent to {who}, "
            f"accountable for {pack.activity}: compliance per target, the trend of the months before, the service "
            "credits due, and the waivers and restatements that changed the figures.")


def _credits(ruleset: RuleSet, agreement: Agreement) -> list[str]:
    """The service credits in words: which monthly figure, of which targets, earns what."""
    credits = agreement.credits
    if credits is None or not credits.targets:
        return []
    names = _and([f"{ruleset.targets[t].name} ({t})" for t in credits.targets])
    figure = ("availability" if credits.of == "availability"
              else "compliance (the share of tickets that met the target)")
    tiers = [f"below {percent(tier.below)}, {percent(tier.credit)}" for tier in credits.tiers]
    lines = [f"Service credits are due for each calendar month in which the {figure} of {names} falls "
             f"below a tier, as a share of that month's charge: {'; '.join(tiers)}."]
    lines.append("The lowest tier reached applies; tiers do not add up"
                 + ("; with several targets, the worst one decides." if len(credits.targets) > 1 else ".")
                 + " The credit due is shown in each month's compliance report.")
    return lines


def validity(start: date | None, end: date | None) -> str:
    if start and end:
        return f"Valid from {long_date(start)} to {long_date(end)} inclusive."
    if start:
        return f"Valid from {long_date(start)}, with no end date."
    if end:
        return f"Valid until {long_date(end)} inclusive."
    return "Valid with no start or end date."


def long_date(day: date) -> str:
    return f"{day.day} {day.strftime('%B')} {day.year}"


# ---- targets -------------------------------------------------------------------------------

def _target(ruleset: RuleSet, target: Target) -> dict[str, Any]:
    promise = {"duration": _duration_promise, "availability": _availability_promise,
               "threshold": _threshold_promise, "ratio": _ratio_promise}[target.measure](target)
    promise = (promise[0], promise[1] + _budget_words(target))
    return {
        "id": target.id,
        "name": target.name,
        "description": target.description,
        "promise": promise[0],
        "details": promise[1],
        "hours": hours(target.calendar),
        "warnings": _warnings(target),
        "underpinned_by": [f"{ruleset.targets[ref].name} ({ref})" for ref in target.underpinned_by
                           if ref in ruleset.targets],
        "where": f"{target.origin.file}:{target.origin.line}",
    }


def _duration_promise(target: Target) -> tuple[str, list[str]]:
    spec = target.spec
    applies = spec["applies_to"]
    noun = _noun(applies["type"])
    where = applies.get("where") or {}
    who = _condition_words(where)
    subject = f"{who} {_plural(noun)}" if who and _short(where) else _plural(noun) + (f" with {who}" if who else "")
    subject = subject[0].upper() + subject[1:]
    stops = [_verb(t) for t in _types(spec.get("stop"))]
    calendar = counted(target.calendar)
    if target.calendar_by:                 # each ticket's own: the office its field names
        offices = "; ".join(f"{value}: {cal.id}" for value, cal in target.calendars.items())
        calendar = (f"counted in the hours of the calendar its {target.calendar_by} names ({offices}; "
                    f"otherwise {target.calendar.id}), from the fact that names it")
    goal = target.goal
    within = (deadline_words(goal) if isinstance(goal, DeadlineGoal)
              else f"within {duration_words(cast(timedelta, goal))}")
    cycles = spec.get("cycles", "once")
    if cycles == "reply":
        starts = spec.get("start") or [applies]
        sentence = (f"Each time a {noun} is {' or '.join(_condition_of(i) for i in starts)}, it is "
                    f"{' or '.join(_condition_of(i) for i in spec['stop'])} {within}, {calendar}.")
    elif cycles == "update":
        sentence = (f"While a {noun} is open, it is {' or '.join(_condition_of(i) for i in spec['restart'])} "
                    + (f"{within} of the last, {calendar}." if isinstance(goal, DeadlineGoal) else
                       f"at least every {duration_words(cast(timedelta, goal))}, {calendar}."))
    elif stops:
        sentence = f"{subject} are {' or '.join(stops)} {within}, {calendar}."
    else:
        restart = [_verb(t) for t in _types(spec.get("restart"))]
        happens = " or ".join(restart) if restart else "handled"
        sentence = f"A {noun} is {happens} {within} of the last, {calendar}." if isinstance(goal, DeadlineGoal) \
            else f"A {noun} is {happens} at least every {duration_words(cast(timedelta, goal))}, {calendar}."
    details = []
    start = _types(spec.get("start")) or [applies["type"]]
    if start != [applies["type"]]:
        details.append(f"The time starts when the {noun} is {' or '.join(_verb(t) for t in start)}.")
    else:
        details.append(f"The time starts when the {noun} is {_verb(applies['type'])}.")
    if spec.get("pause"):
        details.append(f"Time while the {noun} is {' or '.join(_verb(t) for t in _types(spec['pause']))} "
                       f"does not count, until it is {' or '.join(_verb(t) for t in _types(spec['resume']))}.")
    if cycles == "reply":
        details.append("A message while an earlier one waits for its answer counts from the earlier one; "
                       "each answer settles one cycle, met or breached.")
    elif cycles == "update":
        details.append("Each update starts the period again"
                       + (f"; updates stop when the {noun} is {' or '.join(stops)}." if stops else "."))
    elif spec.get("restart") and stops:
        details.append(f"When the {noun} is {' or '.join(_verb(t) for t in _types(spec['restart']))}, a new "
                       + (f"deadline is set from then, {within}." if isinstance(goal, DeadlineGoal)
                          else f"period of {duration_words(cast(timedelta, goal))} starts."))
    if spec.get("cancel"):
        details.append(f"When the {noun} is {' or '.join(_verb(t) for t in _types(spec['cancel']))}, the "
                       "target no longer applies to it: neither met nor breached.")
    if spec.get("reset"):
        details.append(f"When the {noun} is {' or '.join(_condition_of(item) for item in spec['reset'])}, "
                       "the time starts over.")
    if not _always(target.calendar):
        details.append("Only time within the service hours counts.")
    return sentence, details


def _availability_promise(target: Target) -> tuple[str, list[str]]:
    spec = target.spec
    when = counted(target.calendar)
    sentence = f"Available {percent(cast(Fraction, target.goal))} of the time {window_words(spec['window'])}, {when}."
    down, up = spec["down"], spec["up"]
    details = [f"Downtime runs from {_event(down)} to {_event(up)}; outages reported by several alerts at "
               "once count once."]
    allowance = _allowance(target, spec["window"])
    if allowance:
        details.append(f"That allows {allowance} of downtime in a 30-day month.")
    return sentence, details + _maintenance(target, "downtime")


def _threshold_promise(target: Target) -> tuple[str, list[str]]:
    spec = target.spec
    bound = ("at most", spec["above"]) if "above" in spec else ("at least", spec["below"])
    when = counted(target.calendar)
    sentence = (f"{spec['name']} is {bound[0]} {_number(bound[1])} for {percent(cast(Fraction, target.goal))} "
                f"of the time {window_words(spec['window'])}, {when}.")
    details = [f"Measured by the latest {spec['name']} sample; time counts against the target while it is "
               f"{'above' if 'above' in spec else 'below'} {_number(bound[1])}."]
    allowance = _allowance(target, spec["window"])
    if allowance:
        details.append(f"That allows {allowance} beyond the bound in a 30-day month.")
    return sentence, details + _maintenance(target, "time beyond the bound")


def _ratio_promise(target: Target) -> tuple[str, list[str]]:
    spec = target.spec
    where = _condition_words(spec.get("where") or {})
    sentence = (f"{percent(cast(Fraction, target.goal))} of {spec['name']} events are good "
                f"{window_words(spec['window'])}, {counted(target.calendar)}.")
    details = [f"Counted from the good and total events posted as sli.counts facts named {spec['name']}"
               + (f" with {where}" if where else "") + "; an interval counts in proportion to its counted time. "
               f"The budget is {percent(1 - cast(Fraction, target.goal))} of the events in the window."]
    return sentence, details + _maintenance(target, "events")


def _budget_words(target: Target) -> list[str]:
    """Burn-rate levels and the forecast of a target kept by a budget clock, in words."""
    if not target.budget_clock:
        return []
    words = []
    for burn in target.burn_rate:
        words.append(f"An alert fires when the budget burns {_number(float(burn.factor))} times as fast as the "
                     f"window allows over both the last {duration_words(burn.long)} and the last "
                     f"{duration_words(burn.short)}, and clears when the last {duration_words(burn.short)} "
                     f"burns slower.")
    over = target.forecast_over or DEFAULT_FORECAST
    words.append(f"It is at risk while, at the burn rate of the last {duration_words(over)}, the budget left "
                 "would run out before the window ends.")
    return words


def _maintenance(target: Target, what: str) -> list[str]:
    """The maintenance a target leaves out (``exclude: maintenance``), as the engine
    applies it: each declared window (taken out of the hours measured, so out of the
    allowance too) and the windows posted while they happen (which only stop the count)."""
    if not target.excludes_maintenance or not isinstance(target.calendar, ExcludingCalendar):
        return []
    windows = target.calendar.windows
    declared = [f"every {_days(days)} {_and([f'{_clock(a)}–{_clock(b)}' for a, b in spans])} {zone} ({ref})"
                for ref, zone, week in windows.weekly for days, spans in _grouped(week)]
    declared += [f"from {_instant_words(a)} to {_instant_words(b)} ({ref})" for a, b, ref in windows.once]
    lines = []
    if declared:
        lines.append(f"Planned maintenance is not counted, and is taken out of the time measured (so out of "
                     f"the allowance too): {_and(declared)}.")
    lines.append(f"Nor is {what} counted while maintenance announced as it happens is under way: from the "
                 "moment it is reported started for the service (a maintenance.started fact) until the same "
                 "change is reported ended (maintenance.ended); the allowance stays as it was.")
    return lines


def _grouped(week: dict[int, list[tuple[int, int]]]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Runs of consecutive weekdays with the same hours."""
    groups: list[tuple[list[int], list[tuple[int, int]]]] = []
    for day in range(7):
        spans = week.get(day)
        if not spans:
            continue
        if groups and groups[-1][1] == spans and groups[-1][0][-1] == day - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], spans))
    return groups


def _days(days: list[int]) -> str:
    return DAYS[days[0]] if len(days) == 1 else f"{DAYS[days[0]]}–{DAYS[days[-1]]}"


def _instant_words(at: datetime) -> str:
    return f"{long_date(at.date())} {at:%H:%M} UTC"


def _allowance(target: Target, window: str) -> str | None:
    if window != "month" or not _always(target.calendar):
        return None
    return duration_words(timedelta(seconds=int((1 - cast(Fraction, target.goal)) * 30 * 86400)))


def _warnings(target: Target) -> str:
    if not target.warn_at:
        return ""
    if isinstance(target.goal, DeadlineGoal):
        return (f"A warning is raised at {_and([level.text for level in target.warn_at])} of the time from the "
                "start to the deadline.")
    if target.measure == "duration":
        points = [f"{level.text} ({duration_words(level.amount(cast(timedelta, target.goal)))})"
                  for level in target.warn_at]
        return f"A warning is raised at {_and(points)} of the time allowed."
    return f"A warning is raised at {_and([level.text for level in target.warn_at])} of the downtime allowed."


# ---- calendars -----------------------------------------------------------------------------

def counted(calendar: ServiceCalendar | AnyOfCalendar | ExcludingCalendar) -> str:
    """How a target's time is counted, as the end of its sentence."""
    return "24x7" if _always(calendar) else f"counted in {hours(calendar)}"


def hours(calendar: ServiceCalendar | AnyOfCalendar | ExcludingCalendar) -> str:
    """``24x7`` or ``business hours Mon–Fri 08:00–18:00 Europe/London, excluding …``."""
    if _always(calendar):
        return "24x7: every hour of every day, holidays included"
    if isinstance(calendar, AnyOfCalendar):        # follow the sun
        return "whichever of these is open: " + "; ".join(f"{m.id} ({hours(m)})" for m in calendar.members)
    groups: list[tuple[list[int], list[tuple[int, int]]]] = []
    for day in range(7):
        spans = calendar.week.get(day)
        if not spans:
            continue
        if groups and groups[-1][1] == spans and groups[-1][0][-1] == day - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], spans))
    parts = []
    for days, spans in groups:
        named = DAYS[days[0]] if len(days) == 1 else f"{DAYS[days[0]]}–{DAYS[days[-1]]}"
        parts.append(f"{named} {', '.join(f'{_clock(a)}–{_clock(b)}' for a, b in spans)}")
    text = f"business hours {'; '.join(parts) or 'never'} {calendar.timezone}"
    closed = []
    if calendar.country:
        region = calendar.country + (f"-{calendar.subdivision}" if calendar.subdivision else "")
        closed.append(f"public holidays of {region}")
    closed += [long_date(d) for d in sorted(calendar.dates)]
    return text + (f", excluding {_and(closed)}" if closed else "")


def _always(calendar: ServiceCalendar | AnyOfCalendar | ExcludingCalendar) -> bool:
    return calendar.all_hours and calendar.timezone == "UTC" or calendar.id == "24x7"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# ---- escalations and RACI ------------------------------------------------------------------

def _escalations(ruleset: RuleSet, targets: list[Target]) -> list[dict[str, Any]]:
    ids = {t.id for t in targets}
    found = []
    for escalation in sorted(ruleset.escalations.values(), key=lambda e: e.id):
        covered = [t for t in targets if any(level.escalation == escalation.id for level in t.escalations)]
        if not covered:
            continue
        levels = []
        for level in escalation.levels:
            when = _level_words(level.at)
            if level.repeat:
                when += f", then every {duration_words(level.repeat)} while the clock runs"
            roles = ruleset.raci.get(level.activity, {})
            levels.append({"when": when, "activity": level.activity, "who": _who(roles)})
        found.append({"id": escalation.id, "targets": [f"{t.name} ({t.id})" for t in covered if t.id in ids],
                      "levels": levels})
    return found


def _level_words(level: Level) -> str:
    share = "the breach" if level.share == 1 else f"{percent(level.share)} of the time or budget allowed"
    if not level.offset:
        return f"at {share}"
    sign = "after" if level.offset > timedelta(0) else "before"
    return f"{duration_words(abs(level.offset))} of service hours {sign} {share}"


def _who(roles: dict[str, list[str]]) -> str:
    order = "ARCI"
    parts = []
    for letter in order:
        named = [role_name(role) for role, letters in roles.items() if letter in letters]
        if named:
            parts.append(f"{_and(named)} {LETTERS[letter]}")
    return "; ".join(parts)


def _raci(ruleset: RuleSet, service_id: str, targets: list[Target]) -> dict[str, Any]:
    activities = []
    for target in targets:
        for level in target.escalations:
            if level.activity not in activities:
                activities.append(level.activity)
    for rule in ruleset.rules.values():
        for step in rule.then:
            activity = step.get("notify", {}).get("activity")
            if activity and activity not in activities and activity in ruleset.raci:
                activities.append(activity)
    roles: list[str] = []
    for activity in activities:
        for role in ruleset.raci.get(activity, {}):
            if role not in roles:
                roles.append(role)
    rows = [{"activity": a, "letters": ["/".join(ruleset.raci[a].get(r, [])) for r in roles]}
            for a in activities if a in ruleset.raci]
    holders = [{"role": role_name(r), "holders": ", ".join(map(holder_text, ruleset.holders(service_id, r))) or "—"}
               for r in roles]
    return {"roles": [role_name(r) for r in roles], "rows": rows, "holders": holders}


# ---- words ---------------------------------------------------------------------------------

UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def duration_words(value: timedelta) -> str:
    """``15 minutes``, ``4 hours``, ``1 hour 30 minutes``, ``365 days``."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"


def deadline_words(goal: DeadlineGoal) -> str:
    """``by the end of the next business day``; ``by the end of the 3rd business day after the day they start``;
    ``by the deadline each one states (due_at)``."""
    if goal.due:
        return f"by the deadline each one states ({goal.due})"
    if goal.days == 1:
        return "by the end of the next business day"
    suffix = "th" if 10 <= goal.days % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(goal.days % 10, "th")
    return f"by the end of the {goal.days}{suffix} business day after the day they start"


def percent(value: Fraction) -> str:
    return f"{float(value) * 100:.6g}%"


def window_words(window: str) -> str:
    if window.startswith("rolling "):
        return f"over any {duration_words(parse_duration(window[len('rolling '):]))}, the window ending at each instant"
    return WINDOWS.get(window) or f"each block of {window[:-1]} days"


def _number(value: float) -> str:
    return f"{value:g}"


def _types(items: list[str | dict[str, Any]] | None) -> list[str]:
    return [item["type"] if isinstance(item, dict) else item for item in items or []]


def _noun(fact_type: str) -> str:
    """``incident.opened`` → ``incident``."""
    return fact_type.rsplit(".", 1)[0].replace(".", " ").replace("_", " ")


def _verb(fact_type: str) -> str:
    """``incident.acknowledged`` → ``acknowledged``; ``alert.firing`` → ``firing``."""
    return fact_type.rsplit(".", 1)[-1].replace("_", " ")


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def _short(where: dict[str, Any]) -> bool:
    """A single equality or ``in`` on one data field reads as an adjective: ``P1 incidents``."""
    if len(where) != 1:
        return False
    cond = next(iter(where.values()))
    return isinstance(cond, (str, int)) or (isinstance(cond, dict) and set(cond) == {"in"})


def _condition_words(where: dict[str, Any]) -> str:
    if _short(where):
        cond = next(iter(where.values()))
        values = cond["in"] if isinstance(cond, dict) else [cond]
        return " or ".join(map(str, values))
    parts = []
    for key, cond in where.items():
        if isinstance(cond, dict) and "in" in cond:
            parts.append(f"{key} {' or '.join(map(str, cond['in']))}")
        elif isinstance(cond, dict):
            ops = {"ne": "not", "gt": "above", "gte": "at least", "lt": "below", "lte": "at most",
                   "matches": "matching"}
            parts.append(" and ".join(f"{key} {ops.get(op, op)} {operand}" for op, operand in cond.items()))
        elif cond is None:
            parts.append(f"no {key}")
        else:
            parts.append(f"{key} {cond}")
    return " and ".join(parts)


def _event(pattern: dict[str, Any]) -> str:
    """A pattern as an event: ``the EmailDown alert firing``, ``a probe failed with site www``."""
    where = pattern.get("where") or {}
    words = _condition_words(where)
    noun, verb = _noun(pattern["type"]), _verb(pattern["type"])
    if words and _short(where):
        return f"the {words} {noun} {verb}"
    return f"a {noun} {verb}" + (f" with {words}" if words else "")


def role_name(role: str) -> str:
    """``slm_process_owner`` → ``SLM process owner``."""
    words = role.split("_")
    return " ".join(w.upper() if w in ACRONYMS else w for w in words)


ACRONYMS = {"slm", "lt", "it", "ci", "sla", "ola", "itsm"}


def _condition_of(item: str | dict[str, Any]) -> str:
    """A clock condition in words: ``updated with priority P1``, ``an EmailDown alert is firing``."""
    if isinstance(item, str):
        return _verb(item)
    words = _condition_words(item.get("where") or {})
    noun, verb = _noun(item["type"]), _verb(item["type"])
    if noun == "alert" and _short(item.get("where") or {}):
        return f"a{'n' if words[:1] in 'AEIOU' else ''} {words} alert is {verb}"
    if _short(item.get("where") or {}) and set(item["where"]) == {"by"}:
        return f"{verb} by the {words}"            # who did it: ``commented by the requester``
    return f"{verb}" + (f" with {words}" if words else "")


def _and(items: list[str]) -> str:
    items = list(items)
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
