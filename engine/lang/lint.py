"""Lint: the silent mistakes of a rule set, as warnings (errors under ``slm check --strict``).

Each of these loads and runs, and then quietly does nothing: a clock stopped by a fact
type nobody posts (``incident.opend``), a ``where`` on a misspelt field, a warning level
past the breach, a target whose breach reaches nobody, a Rule that can never match. The
schemas cannot see them because each is a valid value; they are mistakes only against
the rest of the rule set, so they are found here, after the model is built.

A name counts as *known* when something else anchors it: a target's ``applies_to``, a
metric sample, a decision kind the engine or a Rule produces, or a name written more
often elsewhere. A name one edit away from a known one, and written less often, is
reported with "did you mean".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from engine.lang.errors import Problem
from engine.lang.model import RuleSet
from engine.lang.spelling import one_edit
from engine.lang.yamlsource import Document, Path

if TYPE_CHECKING:
    from engine.lang.checks import _Places  # which imports this module

CLOCK_ROLES = ("start", "pause", "resume", "stop", "restart", "cancel", "reset")
ENGINE_KINDS = frozenset({"warning", "breach", "met", "escalation", "retracted", "cancelled", "review-pack"})
ENVELOPE_FIELDS = frozenset({"id", "source", "type", "time", "subject", "service"})
DECISION_FIELDS = frozenset({"id", "kind", "target", "subject", "service", "at", "level", "activity",
                             "severity", "counted", "budget", "paused", "agreement", "agreement_type",
                             "cycle", "repeat", "reason", "retracts", "rule"})
CODE = "lint"

Place = Callable[[str], Problem]     # places a message where a name is written


@dataclass
class _Name:
    """One place a fact type or ``where`` field is written."""

    value: str
    anchored: bool
    place: Place | None    # None: a name known without being written (decision kinds, metric.sample)


def lint(ruleset: RuleSet, places: _Places) -> list[Problem]:
    """Every silent mistake found, as warnings placed at file:line:column."""
    found: list[Problem] = []
    found += _levels(ruleset, places)
    found += _clock_conditions(ruleset, places)
    found += _silent_targets(ruleset, places)
    found += _raci_wording(ruleset)
    types, fields, values = _names(ruleset, places)
    found += _near_misses(types, "fact type")
    found += _near_misses(fields, "field")
    found += _case_mismatches(values)
    found += _rules_that_never_fire(ruleset, places)
    return [_warning(p) for p in found]


def _warning(problem: Problem) -> Problem:
    return Problem(problem.file, problem.line, problem.column, problem.message, problem.code, "warning")


def produced_kinds(ruleset: RuleSet) -> set[str]:
    """Decision kinds something in the rule set can decide: the engine's, and each Rule's."""
    kinds = set(ENGINE_KINDS)
    for rule in ruleset.rules.values():
        kinds.update(step["decide"]["kind"] for step in rule.then if "decide" in step)
    return kinds


# ---- levels ------------------------------------------------------------------------------

def _levels(ruleset: RuleSet, places: _Places) -> list[Problem]:
    found = []
    for target in ruleset.targets.values():
        for index, warn_level in enumerate(target.warn_at):
            if not (0 < warn_level.share < 1) or warn_level.offset:
                found.append(places.at_target(target.id, ("warn_at", index),
                                              f"warn_at: {warn_level.text} is not between 0% and 100%: a warning "
                                              f"{'at or after the breach' if warn_level.share >= 1 else 'at the start'}"
                                              " tells nobody anything in time", CODE))
    for escalation in ruleset.escalations.values():
        doc = places.doc[escalation.id]
        for level in escalation.levels:
            if level.at.share == 0 and level.at.offset <= timedelta(0) and level.at.burn is None:
                found.append(doc.problem(("levels", level.index, "at"),
                                         f"at: {level.at.text} fires the moment every clock starts: "
                                         f"'{level.activity}' would be notified of every ticket", CODE))
    return found


# ---- clock conditions ----------------------------------------------------------------------

def clock_types(spec: dict[str, Any], role: str) -> list[str]:
    """The fact types of one clock condition (start defaults to the applies_to type)."""
    items = spec.get(role) or ([spec["applies_to"]] if role == "start" else [])
    return [item["type"] if isinstance(item, dict) else item for item in items]


def _unconditional(spec: dict[str, Any], role: str) -> set[str]:
    """Types of a condition given without a ``where``: those match every fact of the type."""
    items = spec.get(role) or ([spec["applies_to"]["type"]] if role == "start" else [])
    return {item if isinstance(item, str) else item["type"] for item in items
            if isinstance(item, str) or not item.get("where")}


def _clock_conditions(ruleset: RuleSet, places: _Places) -> list[Problem]:
    """A start that is also a stop never measures anything; a pause that is also a start
    stops counting as it starts (ServiceNow lints both)."""
    found = []
    for target in ruleset.targets.values():
        if target.measure != "duration":
            continue
        spec = target.spec
        start = _unconditional(spec, "start")
        for role in ("stop", "pause"):
            both = sorted(start & _unconditional(spec, role))
            if both:
                what = ("stops it the same instant: the clock never counts" if role == "stop" else
                        "pauses it the same instant: the clock starts paused")
                found.append(places.at_target(target.id, ("clock", role),
                                              f"{role}: '{both[0]}' also starts this clock and {what}", CODE))
        if spec.get("cycles") == "reply" and not spec.get("start"):
            found.append(places.at_target(target.id, ("clock", "cycles"),
                                          f"cycles: reply starts a cycle at each start fact, but 'start' is not "
                                          f"written, so only '{spec['applies_to']['type']}' starts one: name the "
                                          "customer's messages under 'start'", CODE))
    return found


def _silent_targets(ruleset: RuleSet, places: _Places) -> list[Problem]:
    """A warning or a breach carries no activity: only an Escalation's levels notify."""
    found = []
    for target in ruleset.targets.values():
        if target.escalations or target.agreement.shadow or target.agreement.status == "retired":
            continue
        found.append(places.at_target(target.id, ("id",),
                                      f"target '{target.id}' notifies nobody: no Escalation covers it, so its "
                                      f"warnings and breach reach no one (name it in an Escalation's "
                                      f"applies_to.targets)", CODE))
    return found


# ---- RACI wording -------------------------------------------------------------------------

def notified_activities(ruleset: RuleSet) -> set[str]:
    """The activities a decision can carry, so a notification carries: those of the
    escalation levels and of the Rules' ``notify`` steps (a target's warnings and breach
    carry none)."""
    activities = {level.activity for escalation in ruleset.escalations.values() for level in escalation.levels}
    activities.update(step["notify"]["activity"] for rule in ruleset.rules.values() for step in rule.then
                      if "notify" in step)
    activities.update(a.review_pack.activity for a in ruleset.agreements.values() if a.review_pack is not None)
    return activities


def _raci_wording(ruleset: RuleSet) -> list[Problem]:
    """A RACI row no notification carries routes nobody (a level or Rule naming an activity
    with no row is an error, engine/lang/checks.py); a row listed as ``manual`` that
    something does notify is a contradiction."""
    notified = notified_activities(ruleset)
    found = []
    for activity, origin in ruleset.raci_origin.items():
        if activity in ruleset.raci_manual:
            if activity in notified:
                found.append(Problem(origin.file, origin.line, origin.column,
                                     f"activity '{activity}' is listed as manual, yet an escalation level or a "
                                     f"Rule notifies it", CODE))
            continue
        if activity in notified:
            continue
        near = sorted(other for other in notified if one_edit(activity, other))
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        found.append(Problem(origin.file, origin.line, origin.column,
                             f"activity '{activity}' is carried by no notification: no escalation level or "
                             f"Rule's notify names it{hint}; list it under 'manual:' if people carry it out "
                             f"by hand", CODE))
    return found


# ---- names: near misses ------------------------------------------------------------------

def _names(ruleset: RuleSet, places: _Places) -> tuple[list[_Name], list[_Name], list[tuple[str, str, Place]]]:
    types: list[_Name] = []
    fields: list[_Name] = []
    values: list[tuple[str, str, Place]] = []      # (field, value, place)

    def add_where(where: dict[str, Any], at: tuple[Document, Path], path: Path, decision: bool) -> None:
        for key, cond in where.items():
            if key in ("any", "all") and isinstance(cond, list):
                for index, item in enumerate(cond):
                    add_where(item, at, path + (key, index), decision)
                continue
            anchored = key in ENVELOPE_FIELDS or (decision and key in DECISION_FIELDS)
            fields.append(_Name(key, anchored, _placer(at, path + (key,), key=True)))
            if isinstance(cond, str) and not cond.startswith("$"):
                values.append((key, cond, _placer(at, path + (key,))))

    def add_pattern(spec: dict[str, Any], at: tuple[Document, Path], path: Path, anchored: bool) -> None:
        types.append(_Name(spec["type"], anchored, _placer(at, path + ("type",))))
        add_where(spec.get("where", {}), at, path + ("where",), spec["type"].startswith("decision."))

    for target in ruleset.targets.values():
        if target.id not in places.target:
            continue
        at = places.target_doc(target.id)
        spec = target.spec
        if target.measure == "duration":
            add_pattern(spec["applies_to"], at, ("clock", "applies_to"), True)
            for role in CLOCK_ROLES:
                for index, item in enumerate(spec.get(role) or []):
                    path: Path = ("clock", role, index)
                    if isinstance(item, dict):
                        add_pattern(item, at, path, False)
                    else:
                        types.append(_Name(item, False, _placer(at, path)))
        elif target.measure == "availability":
            add_pattern(spec["down"], at, ("availability", "down"), False)
            add_pattern(spec["up"], at, ("availability", "up"), False)
        else:                               # a threshold's samples or a ratio's counts
            add_where(spec.get("where", {}), at, ("ratio" if target.measure == "ratio" else "metric", "where"),
                      False)
    kinds = produced_kinds(ruleset)
    for rule in ruleset.rules.values():
        doc = places.doc[rule.id]
        at = (doc, ())
        if "count" in rule.when:
            pattern_list: list[tuple[dict[str, Any], Path]] = [(rule.when["count"]["of"], ("when", "of"))]
        else:
            pattern_list = [(p, ("when", i)) for i, p in enumerate(rule.when["patterns"])]
        for spec, path in pattern_list:
            kind = spec["type"]
            add_pattern(spec, at, path, kind.startswith("decision.") and kind[len("decision."):] in kinds)
    for kind in kinds:
        types.append(_Name("decision." + kind, True, None))
    types.append(_Name("metric.sample", True, None))
    return types, fields, values


def _placer(at: tuple[Document, Path], path: Path, key: bool = False) -> Place:
    doc, base = at

    def place(message: str) -> Problem:
        return doc.problem(base + path, message, CODE, key=key)
    return place


def _near_misses(names: list[_Name], what: str) -> list[Problem]:
    count: dict[str, int] = {}
    anchored: set[str] = set()
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        count[name.value] = count.get(name.value, 0) + 1
        first.setdefault(name.value, index)
        if name.anchored:
            anchored.add(name.value)
    found = []
    for name in names:
        if name.anchored or name.value in anchored or name.place is None:
            continue
        better = [other for other in count if other != name.value and one_edit(name.value, other)
                  and (other in anchored or count[other] > count[name.value]
                       or (count[other] == count[name.value] and first[other] < first[name.value]))]
        if better:
            guess = min(better, key=lambda other: (other not in anchored, -count[other], other))
            elsewhere = "nowhere else" if count[name.value] == 1 else f"only {count[name.value]} times"
            found.append(name.place(f"{what} '{name.value}' is written {elsewhere} in the rules: did you "
                                    f"mean '{guess}'? (a {what} nothing posts matches nothing, silently)"))
    return found


def _case_mismatches(values: list[tuple[str, str, Place]]) -> list[Problem]:
    """``priority: p1`` where the rest of the rules write ``P1``: values compare exactly."""
    by_field: dict[str, dict[str, int]] = {}
    folded: dict[tuple[str, str], list[str]] = {}      # (field, value casefolded) -> its spellings, in order
    for key, value, _ in values:
        counts = by_field.setdefault(key, {})
        if value not in counts:
            folded.setdefault((key, value.casefold()), []).append(value)
        counts[value] = counts.get(value, 0) + 1      # dicts keep order: the first written comes first
    found = []
    for key, value, place in values:
        counts, spellings = by_field[key], folded[(key, value.casefold())]
        if len(spellings) == 1:
            continue
        mine = spellings.index(value)
        others = [v for n, v in enumerate(spellings) if v != value
                  and (counts[v] > counts[value] or (counts[v] == counts[value] and n < mine))]
        if others:
            found.append(place(f"where {key}: '{value}' differs only in case from '{others[0]}', written "
                               f"elsewhere: values are compared exactly, so a fact with '{others[0]}' "
                               "does not match here"))
    return found


# ---- Rules that can never fire ------------------------------------------------------------

def _rules_that_never_fire(ruleset: RuleSet, places: _Places) -> list[Problem]:
    found = []
    kinds = produced_kinds(ruleset)
    for rule in ruleset.rules.values():
        doc = places.doc[rule.id]
        if "count" in rule.when:
            pattern_list: list[tuple[dict[str, Any], Path]] = [(rule.when["count"]["of"], ("when", "of"))]
        else:
            pattern_list = [(p, ("when", i)) for i, p in enumerate(rule.when["patterns"])]
        for spec, path in pattern_list:
            reason = _never_matches(spec, ruleset, kinds)
            if reason:
                found.append(doc.problem(path + reason[0], f"rule '{rule.id}' can never fire: {reason[1]}", CODE))
                break
    return found


def _never_matches(spec: dict[str, Any], ruleset: RuleSet, kinds: set[str]) -> tuple[Path, str] | None:
    kind = spec["type"]
    where = spec.get("where", {})
    if kind.startswith("decision."):
        decided = kind[len("decision."):]
        if decided not in kinds:
            return ("type",), (f"nothing decides '{decided}' (the engine decides "
                               f"{', '.join(sorted(ENGINE_KINDS))}; Rules here decide "
                               f"{', '.join(sorted(kinds - ENGINE_KINDS)) or 'nothing'})")
        target = where.get("target")
        if isinstance(target, str) and not target.startswith("$") and target not in ruleset.targets:
            return ("where", "target"), f"no target '{target}' exists to decide it"
        agreement_type = where.get("agreement_type")
        if isinstance(agreement_type, str) and agreement_type not in ("SLA", "OLA", "UC", "SLR"):
            return ("where", "agreement_type"), f"agreement_type '{agreement_type}' is not SLA, OLA, UC or SLR"
    for key, cond in where.items():
        if isinstance(cond, dict):
            low = cond.get("gt", cond.get("gte"))
            high = cond.get("lt", cond.get("lte"))
            if isinstance(low, (int, float)) and isinstance(high, (int, float)) and (
                    low > high or (low == high and ("gt" in cond or "lt" in cond))):
                return ("where", key), f"where {key}: no value is both above {low} and below {high}"
    return None
