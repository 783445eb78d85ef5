"""Compile a RuleSet into one durable_rules ruleset (its JSON form).

Every rule gets a name that is also the name of the action it runs, so the runtime can
bind actions by name. What durable_rules matches here:

- ``applies:<target>``: the fact that puts a subject in scope of a duration target
  (type, service, ``where``, and the agreement's validity as event-time bounds);
- ``life:<type>``: any fact of a type that starts, pauses, resumes, stops or restarts
  some clock; the runtime hands it to that subject's clocks;
- ``down:/up:<target>``: availability signals; ``over:/under:<target>``: metric samples
  on either side of a threshold;
- ``first:<target>``: a fact a duration target's ``start_at`` names (the runtime keeps the
  earliest time per subject, where the clock's first cycle counts from);
- ``counts:<target>``: a ratio target's ``sli.counts`` facts (good and total events);
- ``hold:/release:<target>``: ``maintenance.started`` / ``maintenance.ended`` of the
  service of a window target that excludes maintenance;
- ``rule:<id>``: a Rule's patterns, joins included.

What it does not: escalations are bound to their targets when the rules load (each clock
carries its escalation levels from its start), so nothing is matched for them at run time.
durable_rules' ``count`` fires once per N matches, cannot group by
field values and knows nothing of event time, so a Rule's counting form compiles to its
``of`` pattern and the runtime finishes ``same``/``within``/``count`` in the action.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.lang.checks import JOIN_REFERENCE
from engine.lang.model import Origin, RuleSet, Target
from engine.lang.where import field_at
from schemas.counts import COUNTS_TYPE
from schemas.values import parse_instant

Fact = dict[str, Any]           # a fact as posted to durable_rules (JSON-shaped)
Pattern = dict[str, Any]        # a compiled rule or test, as durable_rules reads it
Conditions = dict[str, list[tuple[str, dict[str, Any]]]]     # fact type -> (role, where) of a clock
Definition = dict[str, dict[str, Pattern]]     # {ruleset name: {rule name: rule}}
StringTests = list[tuple[str, frozenset[str]]]   # (path, the strings a fact may have there)

RULESET = "slm"
MAINTENANCE_STARTED, MAINTENANCE_ENDED = "maintenance.started", "maintenance.ended"   # posted windows
ENVELOPE = {"id": "fid", "source": "source", "type": "type", "time": "ts", "subject": "subject",
            "service": "service"}


def field_path(name: str) -> str:
    """Where a ``where`` name lives in the fact as posted to durable_rules."""
    if name in ENVELOPE:
        return ENVELOPE[name]
    return "data." + name


def alias_name(alias: str) -> str:
    """Pattern aliases are prefixed so they never collide with the action context's own names."""
    return "a_" + alias


def compile_where(where: dict[str, Any]) -> list[Pattern]:
    """``where`` (conditions as data) → a list of durable_rules conditions, all of which hold."""
    out = []
    for key, cond in where.items():
        if key in ("any", "all"):
            parts = [_conjunction(compile_where(item)) for item in cond]
            out.append({"$or" if key == "any" else "$and": parts})
        elif isinstance(cond, dict):
            out.extend(_operator(key, op, operand) for op, operand in cond.items())
        else:
            out.append(_equals(key, cond))
    return out


def _conjunction(conditions: list[Pattern]) -> Pattern:
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}


def _value(name: str, value: Any) -> Any:
    match = JOIN_REFERENCE.match(value) if isinstance(value, str) else None
    if match:
        return {alias_name(match.group(1)): field_path(match.group(2))}
    if name == "time" and isinstance(value, str):
        return parse_instant(value).timestamp()
    return value


def _equals(name: str, value: Any) -> Pattern:
    if value is None:
        return {"$nex": {field_path(name): 1}}
    return {field_path(name): _value(name, value)}


_OPS = {"gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte", "ne": "$neq", "matches": "$mt"}


def _operator(name: str, op: str, operand: Any) -> Pattern:
    path = field_path(name)
    if op == "in":
        return {"$or": [_equals(name, item) for item in operand]}
    if op == "exists":
        return {"$ex" if operand else "$nex": {path: 1}}
    return {_OPS[op]: {path: _value(name, operand)}}


def pattern(spec: dict[str, Any], extra: Iterable[Pattern] = ()) -> Pattern:
    """A pattern ``{type, where}`` → one durable_rules condition."""
    return _conjunction([{"type": spec["type"]}, *compile_where(spec.get("where", {})), *extra])


def compile_ruleset(ruleset: RuleSet, carried: Iterable[tuple[str, Target]] = ()) -> Definition:
    """The durable_rules definition ``{RULESET: {rule name: {"all": [...], "run": name}}}``.

    ``carried``: ``(version, target)`` of earlier rule-set versions whose clocks still run
    after a rule change (docs/RULES.md, "Rule changes"). Their window targets keep their own
    signal rules, named ``down:<target>@<version>`` and so on; their duration targets keep
    the fact types that move them (``life:`` rules are by type alone)."""
    rules: dict[str, Pattern] = {}

    def add(name: str, conditions: list[Pattern]) -> None:
        rules[name] = {"all": conditions, "run": name}

    lifecycle_types: set[str] = set()
    for target in ruleset.targets.values():
        if target.agreement.status == "retired":
            continue
        if target.measure == "duration":
            add(f"applies:{target.id}",
                [{"m": pattern(target.spec["applies_to"], [{"service": target.service}] + _valid(target))}])
            lifecycle_types.update(clock_roles(target.spec))
            if target.spec.get("start_at"):
                add(f"first:{target.id}", [{"m": pattern(target.spec["start_at"], [{"service": target.service}])}])
        else:
            for name, conditions in _signal_rules(target, target.id):
                add(name, conditions)
    for version, target in carried:
        if target.measure == "duration":
            lifecycle_types.update(clock_roles(target.spec))
        else:
            for name, conditions in _signal_rules(target, f"{target.id}@{version}"):
                add(name, conditions)
    for kind in sorted(lifecycle_types):
        add(f"life:{kind}", [{"m": {"type": kind}}])
    for rule in ruleset.rules.values():
        if "count" in rule.when:
            add(f"rule:{rule.id}", [{alias_name("p0"): pattern(rule.when["count"]["of"])}])
        else:
            patterns = rule.when["patterns"]
            add(f"rule:{rule.id}", [{alias_name(p.get("as") or f"p{i}"): pattern(p)}
                                    for i, p in enumerate(patterns)])
    return {RULESET: rules}


def _valid(target: Target) -> list[Pattern]:
    """The agreement's validity as event-time bounds on a fact (none if open-ended)."""
    valid_from, valid_to = target.valid_span()
    bounds: list[Pattern] = []
    if valid_from:
        bounds.append({"$gte": {"ts": valid_from.timestamp()}})
    if valid_to:
        bounds.append({"$lt": {"ts": valid_to.timestamp()}})
    return bounds


def _signal_rules(target: Target, ref: str) -> list[tuple[str, list[Pattern]]]:
    """An availability target's down/up rules, a threshold target's over/under rules, and
    the posted maintenance windows' hold/release rules of one that excludes maintenance;
    only facts inside the agreement's validity match (its windows are cut to it too:
    engine.eval.transitions.window_record)."""
    service = [{"service": target.service}] + _valid(target)
    held = [(f"hold:{ref}", [{"m": pattern({"type": MAINTENANCE_STARTED}, service)}]),
            (f"release:{ref}", [{"m": pattern({"type": MAINTENANCE_ENDED}, service)}])] \
        if target.excludes_maintenance else []
    if target.measure == "availability":
        return [(f"down:{ref}", [{"m": pattern(target.spec["down"], service)}]),
                (f"up:{ref}", [{"m": pattern(target.spec["up"], service)}])] + held
    spec = target.spec
    if target.measure == "ratio":
        counts = {"type": COUNTS_TYPE, "where": {"name": spec["name"], **spec["where"]}}
        return [(f"counts:{ref}", [{"m": pattern(counts, service)}])] + held
    sample = {"type": "metric.sample", "where": {"name": spec["name"], **spec["where"]}}
    over, under = ("$gt", "$lte") if "above" in spec else ("$lt", "$gte")
    bound = spec.get("above", spec.get("below"))
    return [(f"over:{ref}", [{"m": pattern(sample, service + [{over: {"data.value": bound}}])}]),
            (f"under:{ref}", [{"m": pattern(sample, service + [{under: {"data.value": bound}}])}])] + held


CLOCK_ROLES = ("start", "pause", "resume", "stop", "restart", "cancel", "reset")


def _conditions(spec: dict[str, Any], role: str) -> list[str | dict[str, Any]]:
    return spec.get(role) or ([spec["applies_to"]["type"]] if role == "start" else [])


def clock_roles(spec: dict[str, Any]) -> dict[str, set[str]]:
    """Fact type → the roles it plays for a duration clock, whatever its ``where`` (start
    defaults to applies_to): the types the ``life:`` rules listen to."""
    roles: dict[str, set[str]] = {}
    for role in CLOCK_ROLES:
        for item in _conditions(spec, role):
            roles.setdefault(item if isinstance(item, str) else item["type"], set()).add(role)
    return roles


def unconditional_roles(spec: dict[str, Any]) -> dict[str, set[str]]:
    """Fact type → the roles any fact of the type plays (conditions written as a type)."""
    roles: dict[str, set[str]] = {}
    for role in CLOCK_ROLES:
        for item in _conditions(spec, role):
            if isinstance(item, str) or not item.get("where"):
                roles.setdefault(item if isinstance(item, str) else item["type"], set()).add(role)
    return roles


def conditional_roles(spec: dict[str, Any]) -> Conditions:
    """Fact type → ``(role, where)`` of the conditions written as patterns with a ``where``:
    the runtime checks those on the fact itself (engine/lang/where.py)."""
    roles: Conditions = {}
    for role in CLOCK_ROLES:
        for item in _conditions(spec, role):
            if isinstance(item, dict) and item.get("where"):
                roles.setdefault(item["type"], []).append((role, item["where"]))
    return roles


def describe(ruleset: RuleSet, name: str) -> str:
    """A compiled rule's name in the words of the rule files, with where it is written:
    ``target email-p2-response (applies_to) at services/email.yaml:58:5``."""
    prefix, _, ref = name.partition(":")
    ref = ref.split("@")[0]
    what = {"applies": "applies_to", "first": "clock.start_at", "down": "availability.down", "up": "availability.up",
            "over": "metric, over the bound", "under": "metric, within the bound"}
    if prefix in what and ref in ruleset.targets:
        target = ruleset.targets[ref]
        return f"target {ref} ({what[prefix]}) at {_place(target.origin)}"
    if prefix == "rule" and ref in ruleset.rules:
        return f"rule {ref} at {_place(ruleset.rules[ref].origin)}"
    if prefix == "life":
        users = [(target, sorted(roles)) for target in ruleset.targets.values() if target.measure == "duration"
                 for kind, roles in clock_roles(target.spec).items() if kind == ref]
        if users:
            shown = ", ".join(f"{'/'.join(roles)} of {target.id} at {_place(target.origin)}"
                              for target, roles in users[:3])
            more = f" and {len(users) - 3} more" if len(users) > 3 else ""
            return f"fact type {ref}: {shown}{more}"
    return name


def _place(origin: Origin) -> str:
    return f"{origin.file}:{origin.line}:{origin.column}"


def retained_types(ruleset: RuleSet) -> set[str]:
    """Fact types a join may need later: these stay in durable_rules' memory."""
    return {p["type"] for rule in ruleset.rules.values() for p in rule.when.get("patterns", [])
            if len(rule.when["patterns"]) > 1}


def matched_types(definition: Definition) -> set[str] | None:
    """The fact types some rule of a compiled definition names: a fact of any other type
    matches nothing, so the runtime need not post it. None when some pattern does not pin
    its type (then any fact may match)."""
    patterns = typed_patterns(definition)
    return None if patterns is None else {kind for kind, _ in patterns}


def typed_patterns(definition: Definition) -> list[tuple[str, Pattern]] | None:
    """Every pattern of a compiled definition with the type it pins; None when one pins none."""
    patterns = []
    for rule in definition[RULESET].values():
        for condition in rule["all"]:
            for test in condition.values():
                kind = _pinned_type(test)
                if kind is None:
                    return None
                patterns.append((kind, test))
    return patterns


def _pinned_type(test: Pattern) -> str | None:
    kind = test.get("type")
    if isinstance(kind, str) and len(test) == 1:
        return kind
    if list(test) == ["$and"]:
        return next(filter(None, (_pinned_type(part) for part in test["$and"])), None)
    return None


def required_strings(definition: Definition) -> dict[str, dict[str, frozenset[str]]] | None:
    """Fact type → {path: the strings a fact of that type must have there to match any
    pattern of the definition}: only the paths every pattern of the type tests against
    string constants. A fact with another string there matches nothing in the definition,
    so a ruleset among several need not be asked (one with a missing or non-string value
    must be). None when some pattern does not pin its type."""
    patterns = typed_patterns(definition)
    if patterns is None:
        return None
    by_type: dict[str, list[dict[str, frozenset[str]]]] = {}
    for kind, test in patterns:
        by_type.setdefault(kind, []).append(dict(string_tests(test)))
    required = {}
    for kind, tests in by_type.items():
        common = set.intersection(*(set(p) for p in tests)) - {"type"}
        required[kind] = {path: frozenset[str]().union(*(p[path] for p in tests)) for path in sorted(common)}
    return required


def join_filter(ruleset: RuleSet) -> Callable[[Fact], bool]:
    """A predicate on a fact as posted to durable_rules: False only when the fact can never
    take part in a join, because for every join pattern it fails a test that needs no other
    fact (its type, or a field that must equal one of some strings).

    Such a fact need not stay in durable_rules' memory once its single-pattern matches have
    fired. The judgement is conservative: only tests of a string field against string
    constants are decided (a missing or non-string field is not); every other test
    (comparisons, regular expressions, ``any``, references to another pattern's fields)
    counts as possibly true.
    """
    by_type: dict[str, list[StringTests]] = {}
    for rule in ruleset.rules.values():
        patterns = rule.when.get("patterns", [])
        if len(patterns) > 1:
            for spec in patterns:
                by_type.setdefault(spec["type"], []).append(string_tests(pattern(spec)))

    def may_join(fact: Fact) -> bool:
        return any(allows(fact, required) for required in by_type.get(fact.get("type") or "", ()))
    return may_join


def allows(fact: Fact, required: Iterable[tuple[str, frozenset[str]]]) -> bool:
    """False when, for some ``(path, strings)`` of ``required``, the fact holds a string at
    ``path`` that is none of them. A missing or non-string value is not decided here."""
    for path, allowed in required:
        found = field_at(fact, path)
        if isinstance(found, str) and found not in allowed:
            return False
    return True


def string_tests(test: Pattern) -> StringTests:
    """The parts of a pattern that need a field to equal one of some strings."""
    parts = test["$and"] if list(test) == ["$and"] else [test]
    return [choice for choice in map(_string_choice, parts) if choice is not None]


def _string_choice(test: Pattern) -> tuple[str, frozenset[str]] | None:
    """``{path: "x"}`` or ``{"$or": [{path: "x"}, {path: "y"}, ...]}`` → (path, {"x", "y"})."""
    if list(test) == ["$or"]:
        choices = [_string_choice(part) for part in test["$or"]]
        found = [c for c in choices if c is not None]
        paths = {path for path, _ in found}
        if len(found) != len(choices) or len(paths) != 1:
            return None
        return paths.pop(), frozenset[str]().union(*(strings for _, strings in found))
    if len(test) == 1:
        (path, value), = test.items()
        if not path.startswith("$") and isinstance(value, str):
            return path, frozenset([value])
    return None


