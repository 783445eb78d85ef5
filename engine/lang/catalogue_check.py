"""The rules against the fact catalogue: every pattern names a declared type and fields.

Without a catalogue a misspelt type or field can only be guessed at (engine/lang/lint.py
warns of names one edit from others). With one, the catalogue is the authority: a pattern
on a type it does not declare, a ``where`` on a field the type does not have, or a value
an enum field never takes is an error at file:line:column, with "did you mean" where a
declared name is close. The engine's own types (``decision.*``, ``clock.running``) are
not the catalogue's business.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.lang.catalogue import ENGINE_TYPES, Catalogue, FactType
from engine.lang.errors import Problem
from engine.lang.lint import CLOCK_ROLES
from engine.lang.model import RuleSet, Target
from engine.lang.spelling import nearest
from engine.lang.where import ENVELOPE
from engine.lang.yamlsource import Document, Path
from schemas.values import DeadlineGoal

if TYPE_CHECKING:
    from engine.lang.checks import _Places  # which imports this module

CODE = "catalogue"
METRIC_TYPE = "metric.sample"
COMPARISONS = ("gt", "gte", "lt", "lte")


def check_catalogue(ruleset: RuleSet, places: _Places) -> list[Problem]:
    """Every use of an undeclared type, field or enum value in targets and Rules."""
    catalogue = ruleset.catalogue
    if catalogue is None:
        return []
    found: list[Problem] = []
    for target in ruleset.targets.values():
        if target.id not in places.target:
            continue
        doc, base = places.target_doc(target.id)
        for spec, path in _target_patterns(target):
            found += _pattern(catalogue, spec, doc, base + path)
        found += _posted_deadline(catalogue, target, doc, base)
    for rule in ruleset.rules.values():
        doc = places.doc[rule.id]
        if "count" in rule.when:
            patterns: list[tuple[dict[str, Any], Path]] = [(rule.when["count"]["of"], ("when", "of"))]
        else:
            patterns = [(p, ("when", i)) for i, p in enumerate(rule.when["patterns"])]
        for spec, path in patterns:
            found += _pattern(catalogue, spec, doc, path)
    return found


def pattern_problems(ruleset: RuleSet, spec: dict[str, Any], doc: Document, path: Path) -> list[Problem]:
    """A pattern written outside targets and Rules (an Inhibit's source) against the catalogue
    (none without one); ``{type, bare: True}`` for a type written alone."""
    return [] if ruleset.catalogue is None else _pattern(ruleset.catalogue, spec, doc, path)


def _posted_deadline(catalogue: Catalogue, target: Target, doc: Document, base: Path) -> list[Problem]:
    """A ``goal: {due: FIELD}``: each type that starts its cycles must declare FIELD as a
    ``time``, so ingest refuses a start fact whose deadline is not one (422)."""
    goal = target.goal
    if not (isinstance(goal, DeadlineGoal) and goal.due):
        return []
    spec = target.spec
    starts = [spec.get("start") or spec["applies_to"]["type"], spec.get("restart"), spec.get("reset")]
    names = sorted({item if isinstance(item, str) else item["type"] for each in starts if each
                    for item in (each if isinstance(each, list) else [each])})
    found = []
    for name in names:
        declared = catalogue.types.get(name)
        field = None if declared is None else declared.fields.get(goal.due)
        if declared is not None and (field is None or field.type != "time"):
            found.append(doc.problem(base + ("goal", "due"), f"due: the catalogue's {name} facts have no time "
                                     f"field '{goal.due}' to post the deadline in (declare it "
                                     "{type: time, required: true})", CODE))
    return found


def _target_patterns(target: Target) -> Iterator[tuple[dict[str, Any], Path]]:
    """(pattern, path) of each fact a target reads; a condition written as a bare type is
    a pattern without ``where``."""
    spec = target.spec
    if target.measure == "duration":
        yield spec["applies_to"], ("clock", "applies_to")
        for role in CLOCK_ROLES:
            for index, item in enumerate(spec.get(role) or []):
                if isinstance(item, dict):
                    yield item, ("clock", role, index)
                else:
                    yield {"type": item, "bare": True}, ("clock", role, index)
    elif target.measure == "availability":
        yield spec["down"], ("availability", "down")
        yield spec["up"], ("availability", "up")
    else:
        yield {"type": METRIC_TYPE, "where": {"name": spec["name"]}, "implicit": True}, ("metric",)
        if spec.get("where"):
            yield {"type": METRIC_TYPE, "where": spec["where"], "further": True}, ("metric",)


def _pattern(catalogue: Catalogue, spec: dict[str, Any], doc: Document, path: Path) -> list[Problem]:
    kind = spec["type"]
    if kind.startswith(ENGINE_TYPES):
        return []
    declared = catalogue.types.get(kind)
    if declared is None:
        if spec.get("further"):
            return []           # the target's metric.sample is reported once, at its name
        guess = catalogue.nearest_type(kind)
        known = ", ".join(sorted(catalogue.types)) or "none"
        hint = f": did you mean '{guess}'?" if guess else f" (declared: {known})"
        if spec.get("implicit"):
            message = (f"a threshold target reads '{METRIC_TYPE}' facts, which the fact catalogue does not "
                       f"declare (declared: {known})")
        else:
            message = f"fact type '{kind}' is not declared in the fact catalogue{hint}"
        at = path if spec.get("bare") else path + (("name",) if spec.get("implicit") else ("type",))
        return [doc.problem(at, message, CODE)]
    where_path = path if spec.get("implicit") else path + ("where",)
    return list(_where(declared, spec.get("where") or {}, doc, where_path, spec.get("implicit", False)))


def _where(declared: FactType, where: dict[str, Any], doc: Document, path: Path, implicit: bool) -> Iterator[Problem]:
    for key, cond in where.items():
        if key in ("any", "all") and isinstance(cond, list):
            for index, item in enumerate(cond):
                yield from _where(declared, item, doc, path + (key, index), implicit)
            continue
        at = path + (key,)
        if key in ENVELOPE:
            continue
        if not declared.has_field(key):
            guess = nearest(key, declared.fields)
            known = ", ".join(sorted(declared.fields)) or "none"
            hint = f": did you mean '{guess}'?" if guess else f" (declared: {known})"
            what = "metric: a threshold target reads data.name, but" if implicit else f"where {key}:"
            yield doc.problem(at, f"{what} {declared.name} facts have no field '{key}' in the fact "
                                  f"catalogue{hint}", CODE, key=not implicit)
            continue
        spec = declared.fields.get(key)
        if spec is None:                    # inside a declared object: left open
            continue
        for value, value_path in _literals(cond, at):
            problem = spec.problem(value)
            if problem:
                yield doc.problem(value_path, f"where {key}: {problem} (the catalogue's {declared.name}.{key})",
                                  CODE)


def _literals(cond: object, path: Path) -> Iterator[tuple[object, Path]]:
    """The values a condition compares the field with (not ``$alias.field`` joins, not
    ``null``, not a regular expression or ``exists``)."""
    if isinstance(cond, dict):
        for op, operand in cond.items():
            if op == "in":
                for index, item in enumerate(operand):
                    yield from _literals(item, path + (op, index))
            elif op == "ne" or op in COMPARISONS and not isinstance(operand, str):
                yield from _literals(operand, path + (op,))
    elif cond is not None and not (isinstance(cond, str) and cond.startswith("$")):
        yield cond, path
