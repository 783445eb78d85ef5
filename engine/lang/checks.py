"""Static process policies (docs/RULES.md): references resolve, RACI is well formed and
staffed, and no target promises more than the agreements underpinning it.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from fractions import Fraction
from typing import Any, cast

from engine.lang.catalogue_check import check_catalogue
from engine.lang.errors import Problem
from engine.lang.lint import lint
from engine.lang.model import EscalationLevel, RuleSet
from engine.lang.spelling import by_likeness, nearest, one_edit
from engine.lang.templates import template_error
from engine.lang.yamlsource import Document, Path
from schemas.counts import COUNTS_TYPE
from schemas.values import format_duration

JOIN_REFERENCE = re.compile(r"^\$([A-Za-z0-9_]+)\.(.+)$")


def check(ruleset: RuleSet, documents: list[tuple[Document, dict[str, Any]]],
          docs_by_id: dict[str, Document]) -> list[Problem]:
    places = _Places(documents)
    problems: list[Problem] = []
    problems += _agreements(ruleset, places)
    problems += _underpinning(ruleset, places)
    problems += _escalations(ruleset, places)
    problems += _rules(ruleset, places)
    problems += _start_at(ruleset, places)
    problems += _raci(ruleset, places)
    problems += check_catalogue(ruleset, places)
    problems += lint(ruleset, places)
    for service in ruleset.services.values():
        doc = places.doc[service.id]
        assert isinstance(doc.data, dict)       # a Service document, validated
        if doc.data.get("calendar") and doc.data["calendar"] not in ruleset.calendars \
                and doc.data["calendar"] not in ruleset.broken:
            known = ", ".join(by_likeness(doc.data["calendar"], ruleset.calendars))
            problems.append(doc.problem(("calendar",), f"calendar: unknown calendar '{doc.data['calendar']}' "
                                                       f"(known: {known})", "unknown-reference"))
    return problems


EXPIRY_NOTICE = timedelta(days=30)


def validity_warnings(ruleset: RuleSet, today: date) -> list[Problem]:
    """Agreements in force that have expired, expire within 30 days, or are not yet valid
    on ``today``: a fact outside an agreement's validity starts none of its clocks, so a
    lapsed agreement looks like a quiet service. Separate from :func:`check` because it
    depends on the date, and a rule set's meaning must not."""
    warnings = []
    for agreement in sorted(ruleset.agreements.values(), key=lambda a: a.id):
        if agreement.status == "retired":
            continue
        start, end = agreement.valid_from, agreement.valid_to
        if end is not None and end < today:
            message = f"expired on {end}: facts after it start none of its clocks"
        elif end is not None and end - today < EXPIRY_NOTICE:
            days = (end - today).days
            message = f"expires on {end}, {'today' if not days else f'in {days} day' + 's' * (days > 1)}"
        elif start is not None and start > today:
            message = f"is not valid before {start}: facts before it start none of its clocks"
        else:
            continue
        origin = agreement.origin
        warnings.append(Problem(origin.file, origin.line, origin.column,
                                f"agreement '{agreement.id}' {message}", "validity", "warning"))
    return warnings


class _Places:
    """Finds the document and path of a rule element, to place a problem precisely."""

    def __init__(self, documents: list[tuple[Document, dict[str, Any]]]) -> None:
        self.doc: dict[str, Document] = {}
        self.target: dict[str, tuple[Document, Path]] = {}
        for doc, loaded in documents:
            self.doc.setdefault(loaded["id"], doc)
            for index, target in enumerate(loaded.get("targets", []) if loaded["kind"] == "Agreement" else []):
                self.target.setdefault(target["id"], (doc, ("targets", index)))

    def target_doc(self, target_id: str) -> tuple[Document, Path]:
        return self.target[target_id]

    def at_target(self, target_id: str, path: Path, message: str, code: str = "policy") -> Problem:
        doc, base = self.target[target_id]
        return doc.problem(base + path, message, code)


def _agreements(ruleset: RuleSet, places: _Places) -> list[Problem]:
    problems = []
    for agreement in ruleset.agreements.values():
        if agreement.service not in ruleset.services:
            problems.append(places.doc[agreement.id].problem(
                ("service",), f"service: unknown service '{agreement.service}' (known: "
                              f"{', '.join(sorted(ruleset.services)) or 'none'})", "unknown-reference"))
        pack = agreement.review_pack
        if pack is not None and pack.activity not in ruleset.raci:
            problems.append(places.doc[agreement.id].problem(("review_pack", "activity"),
                                                             _unknown_activity(pack.activity, ruleset),
                                                             "unknown-reference"))
    return problems


def _underpinning(ruleset: RuleSet, places: _Places) -> list[Problem]:
    problems = []
    for target in ruleset.targets.values():
        supports = []
        for index, ref in enumerate(target.underpinned_by):
            path = ("underpinned_by", index)
            support = ruleset.targets.get(ref)
            if support is None and ref in ruleset.broken:
                continue
            if support is None:
                problems.append(places.at_target(target.id, path, f"underpinned_by: unknown target '{ref}'",
                                                 "unknown-reference"))
            elif support.agreement.type not in ("OLA", "UC"):
                problems.append(places.at_target(
                    target.id, path, f"underpinned_by: '{ref}' belongs to {support.agreement.type} "
                                     f"'{support.agreement.id}'; only OLA and UC targets underpin others"))
            elif (support.measure == "duration") != (target.measure == "duration"):
                problems.append(places.at_target(
                    target.id, path, f"underpinned_by: '{ref}' is a {support.measure} target and cannot "
                                     f"underpin the {target.measure} target '{target.id}'"))
            else:
                supports.append(support)
        if target.measure == "duration":
            # a duration or a deadline: durations compare; a deadline's budget depends on each
            # cycle's start (docs/RULES.md, Deadline goals), so it is not compared here
            for support in supports:
                if not (isinstance(target.goal, timedelta) and isinstance(support.goal, timedelta)):
                    continue
                if target.goal < support.goal:
                    problems.append(places.at_target(
                        target.id, ("goal",),
                        f"goal: target '{target.id}' promises {_show(target.goal)}, faster than its "
                        f"underpinning target '{support.id}' ({_show(support.goal)})"))
        elif supports and target.measure == "availability":
            assert isinstance(target.goal, Fraction)        # a percentage goal, as are its supports'
            product = Fraction(1)
            for support in supports:
                assert isinstance(support.goal, Fraction)
                product *= support.goal
            if target.goal > product:
                names = ", ".join(f"'{s.id}' ({_pct(cast(Fraction, s.goal))})" for s in supports)
                problems.append(places.at_target(
                    target.id, ("goal",),
                    f"goal: target '{target.id}' promises {_pct(target.goal)}, more than its underpinning "
                    f"targets {names} can deliver together ({_pct(product)})"))
    return problems


def _escalations(ruleset: RuleSet, places: _Places) -> list[Problem]:
    problems = []
    for escalation in ruleset.escalations.values():
        doc = places.doc[escalation.id]
        for index, ref in enumerate(escalation.targets):
            if ref not in ruleset.targets and ref not in ruleset.broken:
                problems.append(doc.problem(("applies_to", "targets", index), f"targets: unknown target '{ref}'",
                                            "unknown-reference"))
        if escalation.metric is not None:
            matching = [t for t in ruleset.targets.values() if t.measure == "threshold"
                        and t.spec["name"] == escalation.metric
                        and escalation.service in (None, t.service)]
            if not matching:
                problems.append(doc.problem(("applies_to", "metric"), f"metric: no threshold target measures "
                                            f"'{escalation.metric}'" + (f" for service '{escalation.service}'"
                                                                        if escalation.service else ""),
                                            "unknown-reference"))
        if escalation.service is not None and escalation.service not in ruleset.services:
            problems.append(doc.problem(("applies_to", "service"),
                                        f"service: unknown service '{escalation.service}'", "unknown-reference"))
        for level in escalation.levels:
            if level.activity not in ruleset.raci:
                problems.append(doc.problem(("levels", level.index, "activity"),
                                            _unknown_activity(level.activity, ruleset), "unknown-reference"))
            if level.at.burn is not None:
                problems += _burn_level(ruleset, doc, level)
    return problems


def _burn_level(ruleset: RuleSet, doc: Document, level: EscalationLevel) -> list[Problem]:
    """``at: 14.4x`` escalates when a covered target's burn-rate level of that factor fires:
    each covered target must have one, else the level could never be reached."""
    problems = []
    for target in sorted(ruleset.targets.values(), key=lambda t: t.id):
        if not any(bound is level for bound in target.escalations):
            continue
        if any(burn.factor == level.at.burn for burn in target.burn_rate):
            continue
        have = ", ".join(burn.text for burn in target.burn_rate)
        why = (f"its levels are {have}" if have else "a duration clock keeps no error budget"
               if target.measure == "duration" else "it has no burn_rate levels")
        problems.append(doc.problem(("levels", level.index, "at"),
                                    f"at: {level.at.text} is never reached on target '{target.id}': it has no "
                                    f"burn_rate level of factor {level.at.text[:-1]} ({why})", "unknown-reference"))
    return problems


def _rules(ruleset: RuleSet, places: _Places) -> list[Problem]:
    problems = []
    for rule in ruleset.rules.values():
        doc = places.doc[rule.id]
        aliases: list[str] = []
        for index, pattern in enumerate(rule.when.get("patterns", [])):
            for field, value in _leaves(pattern.get("where", {})):
                match = JOIN_REFERENCE.match(value) if isinstance(value, str) else None
                if match and match.group(1) not in aliases:
                    problems.append(doc.problem(("when", index, "where") + field,
                                                f"'{value}' refers to '{match.group(1)}', which is not the alias "
                                                f"of an earlier pattern (known: {', '.join(aliases) or 'none'})",
                                                "unknown-reference"))
            alias = pattern.get("as")
            if alias:
                if alias in aliases:
                    problems.append(doc.problem(("when", index, "as"), f"alias '{alias}' is used twice", "duplicate"))
                aliases.append(alias)
        for index, step in enumerate(rule.then):
            for action in ("decide", "notify"):
                message = (step.get(action) or {}).get("message")
                found = template_error(message) if isinstance(message, str) else None
                if found:
                    path = ("then", index, action, "message")
                    line, column = doc.place(path)
                    problems.append(Problem(doc.file, line + found[0] - 1, column if found[0] == 1 else 1,
                                            f"message: template error: {found[1]}", "template"))
            activity = step.get("notify", {}).get("activity")
            if activity and activity not in ruleset.raci:
                problems.append(doc.problem(("then", index, "notify", "activity"),
                                            _unknown_activity(activity, ruleset), "unknown-reference"))
    return problems


BUILT_IN_TYPES = {"metric.sample", "maintenance.started", "maintenance.ended", COUNTS_TYPE}


def named_types(ruleset: RuleSet) -> set[str]:
    """Every fact type the rule set names outside ``start_at``: what a start_at may refer to."""
    types = set(BUILT_IN_TYPES)
    for target in ruleset.targets.values():
        spec = target.spec
        if target.measure == "duration":
            types.add(spec["applies_to"]["type"])
            for role in ("start", "pause", "resume", "stop", "restart", "cancel", "reset"):
                types.update(item if isinstance(item, str) else item["type"] for item in spec.get(role) or [])
        elif target.measure == "availability":
            types.update((spec["down"]["type"], spec["up"]["type"]))
    for rule in ruleset.rules.values():
        patterns = [rule.when["count"]["of"]] if "count" in rule.when else rule.when["patterns"]
        types.update(p["type"] for p in patterns)
    return types


def _start_at(ruleset: RuleSet, places: _Places) -> list[Problem]:
    """``start_at`` names a fact type the rules know, and not the start condition itself
    (that would start the clock at its own start: a no-op that hides a mistake)."""
    problems = []
    known = None
    for target in ruleset.targets.values():
        first = target.spec.get("start_at") if target.measure == "duration" else None
        if first is None:
            continue
        known = known if known is not None else named_types(ruleset)
        path = ("clock", "start_at")
        if first["type"] not in known:
            problems.append(places.at_target(
                target.id, path, f"start_at: no rule names fact type '{first['type']}', so no such earlier fact "
                                 f"is known (known: {', '.join(sorted(known))})", "unknown-reference"))
            continue
        starts = target.spec.get("start") or [target.spec["applies_to"]["type"]]
        for item in starts:
            kind, where = (item, {}) if isinstance(item, str) else (item["type"], item.get("where") or {})
            if kind == first["type"] and where == (first.get("where") or {}):
                problems.append(places.at_target(
                    target.id, path, f"start_at: 'first {kind}' is the clock's own start condition; name an "
                                     f"earlier fact (e.g. the one that opened the ticket)"))
                break
    return problems


def _leaves(where: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, object]]:
    for key, cond in where.items():
        if key in ("any", "all") and isinstance(cond, list):
            for index, item in enumerate(cond):
                yield from _leaves(item, path + (key, index))
        elif isinstance(cond, dict):
            for op, operand in cond.items():
                yield path + (key, op), operand
        else:
            yield path + (key,), cond


def _unknown_activity(activity: str, ruleset: RuleSet) -> str:
    """The error for an activity no Raci defines, with the row it was likely meant to name."""
    near = sorted(known for known in ruleset.raci
                  if one_edit(activity, known) or known.casefold() == activity.casefold())
    hint = f": did you mean '{near[0]}'?" if near else ""
    return f"activity: unknown activity '{activity}' (not in any Raci){hint}"


def _raci(ruleset: RuleSet, places: _Places) -> list[Problem]:
    """Exactly one A, at least one R; every role staffed for every service it applies to."""
    problems = []
    services_of = _services_by_activity(ruleset)
    for activity, roles in ruleset.raci.items():
        origin = ruleset.raci_origin[activity]
        accountable = [role for role, letters in roles.items() if "A" in letters]
        responsible = [role for role, letters in roles.items() if "R" in letters]
        if not accountable and len(responsible) == 1:
            problems.append(Problem(origin.file, origin.line, origin.column,
                                    f"activity '{activity}' names no A (accountable); its only R, "
                                    f"'{responsible[0]}', is taken as accountable too", "raci", "warning"))
        elif len(accountable) != 1:
            found = ", ".join(accountable) if accountable else "none"
            problems.append(Problem(origin.file, origin.line, origin.column,
                                    f"activity '{activity}' needs exactly one A (accountable), found {found}", "raci"))
        if not any("R" in letters for letters in roles.values()):
            problems.append(Problem(origin.file, origin.line, origin.column,
                                    f"activity '{activity}' needs at least one R (responsible)", "raci"))
        for role in roles:
            meant = _misspelt_role(role, ruleset)
            if meant is not None:               # one error, not one per service it has no holder for
                problems.append(Problem(origin.file, origin.line, origin.column,
                                        f"activity '{activity}': role '{role}' is held by no one, in no Service "
                                        f"and no Roles document: did you mean '{meant}'?", "raci"))
                continue
            for service in services_of.get(activity, sorted(ruleset.services)):
                if not ruleset.holders(service, role):
                    problems.append(Problem(origin.file, origin.line, origin.column,
                                            f"activity '{activity}': role '{role}' has no holder for service "
                                            f"'{service}' (give it in the Service's roles or in a Roles document)",
                                            "raci"))
    return problems


def _misspelt_role(role: str, ruleset: RuleSet) -> str | None:
    """The role a Raci most likely meant, when ``role`` is held nowhere but is a slip or
    two from one that is; else None."""
    held = set(ruleset.default_holders).union(*(s.roles for s in ruleset.services.values()))
    return None if role in held else nearest(role, held)


def _services_by_activity(ruleset: RuleSet) -> dict[str, list[str]]:
    """Activities used only by escalations apply to the services of the escalated targets.
    A level naming an unknown activity (an error of its own) counts for the activity it
    most likely meant, so that one typo does not make that activity apply everywhere."""
    services: dict[str, set[str]] = {}
    for escalation in ruleset.escalations.values():
        scope = {ruleset.targets[t].service for t in escalation.targets if t in ruleset.targets}
        if escalation.metric:
            scope |= {t.service for t in ruleset.targets.values() if t.measure == "threshold"
                      and t.spec["name"] == escalation.metric and escalation.service in (None, t.service)}
        for level in escalation.levels:
            activity = level.activity if level.activity in ruleset.raci else \
                (nearest(level.activity, ruleset.raci) or level.activity)
            services.setdefault(activity, set()).update(scope)
    for agreement in ruleset.agreements.values():       # a review pack goes to its service's Accountable
        if agreement.review_pack is not None:
            services.setdefault(agreement.review_pack.activity, set()).add(agreement.service)
    used_by_rules = {step["notify"]["activity"] for rule in ruleset.rules.values()
                     for step in rule.then if "notify" in step}
    return {activity: sorted(scope) for activity, scope in services.items() if activity not in used_by_rules}


def _show(value: timedelta) -> str:
    return format_duration(value)


def _pct(value: Fraction) -> str:
    return f"{float(value) * 100:.6g}%"
