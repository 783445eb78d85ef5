"""Partitions by service (docs/SCALING.md §1 and §2): the map that says which partition
evaluates each service's facts, and which Rules can run inside one partition.

A partition is evaluated by one engine, which holds its facts, clocks and decisions. A
Rule whose matches may combine facts of services in different partitions cannot run in
any one of them: it runs in the partition ``global``, which the other partitions feed
with their decisions (option (b) of SCALING.md §2) and which sees nothing else. Which
Rules those are is decided here, statically, from the Rules' patterns, so that
``slm check --partitions`` can say it before anything runs.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from engine.lang.checks import JOIN_REFERENCE
from engine.lang.errors import Problem, RuleSetError
from engine.lang.model import Rule, RuleSet
from engine.lang.spelling import by_likeness, nearest
from engine.lang.yamlsource import Document, load_documents

GLOBAL = "global"           # the partition of cross-partition Rules: no map may name it
DEFAULT = "default"         # the partition of services a map does not list, and of no map at all
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAP_FIELDS = ("default", "partitions")
CODE = "partition"


class PartitionError(ValueError):
    """A partition map that cannot be, or a fact it cannot place."""


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a partition, or None if it can."""
    if name == GLOBAL:
        return f"'{GLOBAL}' is reserved for the partition of cross-partition Rules: choose another name"
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        return f"{name!r} is a number, not a partition name: write the name in quotes"
    if not isinstance(name, str) or not NAME.match(name):
        return (f"{name!r} is not a partition name: lower-case letters, digits, '-' and '_', "
                "starting with a letter or digit, at most 63 characters")
    return None


@dataclass(frozen=True)
class PartitionMap:
    """Service → partition. Two maps are equal when they place every service alike as
    written (``source`` and ``places`` say where a map was read, not what it says)."""

    services: Mapping[str, str]
    default: str = DEFAULT
    source: str | None = field(default=None, compare=False)      # the file it was read from
    # where each service key is written in ``source`` (line, column): for check_against
    places: Mapping[str, tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for service, partition in self.services.items():
            if not isinstance(service, str) or not service:
                raise PartitionError(f"a service name is a non-empty string, not {service!r}")
            problem = name_problem(partition)
            if problem:
                raise PartitionError(f"service '{service}': {problem}")
        problem = name_problem(self.default)
        if problem:
            raise PartitionError(f"default: {problem}")
        object.__setattr__(self, "services", MappingProxyType(dict(self.services)))
        object.__setattr__(self, "places", MappingProxyType(dict(self.places)))

    def __hash__(self) -> int:
        return hash(self.digest)

    def __reduce__(self) -> tuple[type[PartitionMap], tuple[dict[str, str], str, str | None,
                                                             dict[str, tuple[int, int]]]]:
        """Pickled as plain dicts (a read-only mapping view is not picklable): a worker process
        may be handed its map."""
        return PartitionMap, (dict(self.services), self.default, self.source, dict(self.places))

    @classmethod
    def single(cls) -> PartitionMap:
        """No map given: every service in the one partition ``default``, as slm ran before
        partitions."""
        return cls({})

    def partition_of(self, service: str | None) -> str:
        """The partition that evaluates the facts of ``service``; a service the map does not
        list goes to the default partition. A fact without a service can be placed only when
        there is one partition."""
        if service is None:
            if self.is_single:
                return self.default
            raise PartitionError("a fact without `service` cannot be placed when partitions are configured "
                                 f"({', '.join(self.names)}): give every fact its service")
        return self.services.get(service, self.default)

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Every partition this map can place a fact in, sorted, the default one included;
        never ``global``, which holds the cross-partition Rules and no service."""
        return tuple(sorted({*self.services.values(), self.default}))

    @property
    def is_single(self) -> bool:
        return len(self.names) == 1

    @cached_property
    def evaluated(self) -> tuple[str, ...]:
        """Every partition an engine evaluates: the map's, and with more than one of those,
        ``global``, where the cross-partition Rules run (it idles while there are none)."""
        return self.names if self.is_single else (*self.names, GLOBAL)

    @cached_property
    def canonical(self) -> str:
        """The map as canonical JSON: the same however the file was written."""
        return json.dumps({"default": self.default, "partitions": dict(sorted(self.services.items()))},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @cached_property
    def digest(self) -> str:
        """sha256 (hex) of the map's canonical JSON. The store keeps it, and a node with
        another map refuses to start."""
        return hashlib.sha256(self.canonical.encode("utf-8")).hexdigest()


# ---- reading a map file ----------------------------------------------------------------------

def load_partition_map(path: str | Path) -> PartitionMap:
    """The map written in ``path`` (YAML, docs/SCALING.md §1), or RuleSetError with every
    problem at file:line:column."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleSetError([Problem(file, 1, 1, "no such partition map file", "missing")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise RuleSetError([Problem(file, 1, 1, f"cannot read file: {err}", "io")]) from None
    return parse_partition_map(text, file)


def parse_partition_map(text: str, file: str) -> PartitionMap:
    """A map from its YAML text; ``file`` names it in problems and as its source."""
    docs, problems = load_documents(text, file)
    if problems:
        raise RuleSetError(problems)
    if not docs:
        raise RuleSetError([Problem(file, 1, 1, "empty partition map: expected a mapping with 'partitions' "
                                                "(service: partition) and optionally 'default'", "missing")])
    for extra in docs[1:]:
        problems.append(Problem(file, extra.line, extra.column,
                                "a partition map is one YAML document: remove this second one", "invalid"))
    doc = docs[0]
    services, default = _read_map(doc, problems)
    if problems:
        raise RuleSetError(problems)
    places = {service: doc.place(("partitions", service), key=True) for service in services}
    return PartitionMap(services, default, source=file, places=places)


def _read_map(doc: Document, problems: list[Problem]) -> tuple[dict[str, str], str]:
    data = doc.data
    if not isinstance(data, dict):
        problems.append(doc.problem((), "a partition map is a mapping: partitions: {service: partition}, "
                                        "and optionally default: partition"))
        return {}, DEFAULT
    for key in data:
        if key not in MAP_FIELDS:
            problems.append(doc.problem((key,), f"unknown field '{key}' (expected one of: {', '.join(MAP_FIELDS)})",
                                        "unknown-field", key=True))
    default = data.get("default", DEFAULT)
    problem = name_problem(default)
    if problem:
        problems.append(doc.problem(("default",), f"default: {problem}"))
    if "partitions" not in data:
        problems.append(doc.problem((), "missing required field 'partitions' (service: partition)", "missing-field"))
        return {}, DEFAULT
    listed = data["partitions"]
    if not isinstance(listed, dict):
        problems.append(doc.problem(("partitions",), "partitions: expected a mapping of service: partition, "
                                                     "e.g. {email: mail, hosting: web}"))
        return {}, DEFAULT
    services = {}
    for service, partition in listed.items():
        if not service:
            problems.append(doc.problem(("partitions", service), "partitions: a service name cannot be empty",
                                        key=True))
            continue
        problem = name_problem(partition)
        if problem:
            problems.append(doc.problem(("partitions", service), f"partitions.{service}: {problem}"))
            continue
        services[service] = partition
    return services, default if isinstance(default, str) else DEFAULT


def check_against(pmap: PartitionMap, ruleset: RuleSet) -> list[Problem]:
    """Every error of a map used with a rule set, sorted by place: a service the map lists
    but the rule set does not define (at the map's line), and a cross-partition Rule that
    the ``global`` partition could never match, because a pattern of it needs facts that
    never leave their own partition (at the Rule's pattern; see :func:`classify_rules`).
    A map with one partition has no cross-partition Rules."""
    problems = []
    file = pmap.source or "partition map"
    for service in sorted(pmap.services):
        if service in ruleset.services:
            continue
        line, column = pmap.places.get(service, (1, 1))
        near = nearest(service, ruleset.services)
        hint = f": did you mean '{near}'?" if near else \
            f" (services: {', '.join(by_likeness(service, ruleset.services)) or 'none'})"
        problems.append(Problem(file, line, column,
                                f"partitions: service '{service}' is not defined by the rule set{hint}",
                                "unknown-reference"))
    if not pmap.is_single:
        analysis = _analyse(ruleset, _Placement(pmap.partition_of, named=True))
        problems += _unreachable_patterns(ruleset, analysis)
    return sorted(problems)


# ---- classifying Rules -------------------------------------------------------------------------

Scope = Literal["local", "global"]


@dataclass(frozen=True)
class RuleClass:
    """Where a Rule runs: ``local`` in the partition of the facts it matches, or ``global``."""

    name: str
    scope: Scope
    reason: str         # short, for people: "joined by service: $ola.service"


def classify_rules(ruleset: RuleSet, pmap: PartitionMap) -> dict[str, RuleClass]:
    """Each Rule (``kind: Rule``; targets, clocks, escalations and RACI always run where
    their service's facts are) by id: ``local`` when every match it can make lies in one
    partition, else ``global``. A Rule that matches a decision kind some global Rule
    decides is global too (repeated until nothing changes): in a local partition it would
    miss those decisions, since global decisions are never fed back.

    With one partition every Rule is local, and the reason of each that would be global
    once services were in different partitions says so, judged as if every service had a
    partition of its own; ``slm check --partitions`` thus shows them before partitioning."""
    if pmap.is_single:
        analysis = _analyse(ruleset, _Placement(lambda service: service, named=False))
        return {rule_id: RuleClass(rule_id, "local", _would_be(ruleset.rules[rule_id], found))
                for rule_id, found in analysis.items()}
    analysis = _analyse(ruleset, _Placement(pmap.partition_of, named=True))
    return {rule_id: RuleClass(rule_id, "local" if found.local else "global",
                               found.reason if found.local else f"{found.reason}: runs in the {GLOBAL} partition")
            for rule_id, found in analysis.items()}


def global_kinds(classes: Mapping[str, RuleClass], ruleset: RuleSet) -> frozenset[str]:
    """The decision kinds global Rules match: the local partitions feed their decisions of
    these kinds (and the retractions of those) to the ``global`` partition."""
    kinds: set[str] = set()
    for rule_id, found in classes.items():
        if found.scope == GLOBAL and rule_id in ruleset.rules:
            kinds |= _matched_kinds(ruleset.rules[rule_id])
    return frozenset(kinds)


@dataclass(frozen=True)
class _Placement:
    """How services are placed for an analysis: by a map (partitions named in reasons),
    or each service alone (what would hold under any map)."""

    place: Callable[[str], str]
    named: bool

    def describe(self, services: frozenset[str]) -> str:
        parts = sorted({self.place(s) for s in services})
        shown = ", ".join(sorted(services))
        if not self.named:
            return shown
        return f"{shown} (partition {parts[0]})" if len(parts) == 1 else \
            " and ".join(f"{', '.join(sorted(s for s in services if self.place(s) == p))} ({p})" for p in parts)


@dataclass
class _Found:
    """What the analysis found of one Rule."""

    local: bool
    reason: str
    via: str | None = None          # the global Rule whose decisions made this one global


def _analyse(ruleset: RuleSet, placement: _Placement) -> dict[str, _Found]:
    found = {rule_id: _shape(rule, ruleset, placement) for rule_id, rule in sorted(ruleset.rules.items())}
    changed = True
    while changed:              # a Rule matching what global Rules decide is global: to a fixpoint
        changed = False
        made: dict[str, str] = {}
        for rule_id, result in found.items():
            if not result.local:
                for kind in sorted(_decided_kinds(ruleset.rules[rule_id])):
                    made.setdefault(kind, rule_id)
        for rule_id, result in found.items():
            hits = sorted(_matched_kinds(ruleset.rules[rule_id]) & set(made)) if result.local else []
            if hits:
                found[rule_id] = _Found(False, f"matches decision.{hits[0]}, which the global Rule "
                                               f"'{made[hits[0]]}' decides", via=made[hits[0]])
                changed = True
    return found


def _shape(rule: Rule, ruleset: RuleSet, placement: _Placement) -> _Found:
    """Local or not by the Rule's own patterns (before the fixpoint)."""
    if "count" in rule.when:
        return _count_shape(rule.when["count"], ruleset, placement)
    patterns: list[dict[str, Any]] = rule.when["patterns"]
    if len(patterns) == 1:
        return _Found(True, "one pattern")
    index = {p["as"]: i for i, p in enumerate(patterns) if p.get("as")}
    group = list(range(len(patterns)))          # union-find over patterns tied by service

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    ties, refs = [], []
    for i, spec in enumerate(patterns):
        for key, alias, name, tying in _references(spec.get("where", {})):
            if alias not in index:
                continue                        # an unknown alias: an error of its own (checks.py)
            refs.append((i, index[alias], key))
            if tying and key == "service" and name == "service":
                group[root(i)] = root(index[alias])
                ties.append(f"${alias}.service")
    components: dict[int, list[int]] = {}
    for i in range(len(patterns)):
        components.setdefault(root(i), []).append(i)
    if len(components) == 1:
        return _Found(True, "joined by service: " + ", ".join(ties))
    pins = [_meet(_pins(patterns[i], ruleset) for i in members) for members in components.values()]
    if all(p is not None for p in pins):
        services = frozenset[str]().union(*(p for p in pins if p is not None))
        if len({placement.place(s) for s in services}) <= 1:
            return _Found(True, f"service pinned to {placement.describe(services)}" if services else
                          "its patterns pin services that never meet: it never fires")
        return _Found(False, f"joins services {placement.describe(services)}")
    across = sorted({key for i, j, key in refs if root(i) != root(j)})
    return _Found(False, f"joined by {', '.join(across)} only" if across else "its patterns share no field")


def _count_shape(spec: dict[str, Any], ruleset: RuleSet, placement: _Placement) -> _Found:
    same: list[str] = spec["same"]
    kind = spec["of"]["type"]
    written = f"count same: [{', '.join(same)}]"
    own_target = [f for f in same if f in ("target", "agreement")]
    if "service" in same or (own_target and _names_targets(kind)):
        return _Found(True, written)
    pins = _pins(spec["of"], ruleset)
    if pins is not None and len({placement.place(s) for s in pins}) <= 1:
        return _Found(True, f"count of service {placement.describe(pins)}" if pins else "count of no service")
    if not same:
        return _Found(False, f"{written} counts across all services")
    if own_target:
        return _Found(False, f"{written}: the {own_target[0]} field of {kind} facts is their own, not a "
                             "target's, and does not fix the service")
    return _Found(False, f"{written} does not fix the service")


def _names_targets(kind: str) -> bool:
    """Facts whose ``target`` and ``agreement`` are the rule set's: decisions and running clocks."""
    return kind.startswith("decision.") or kind == "clock.running"


def _references(where: dict[str, Any], tying: bool = True) -> Iterator[tuple[str, str, str, bool]]:
    """Each ``key: $alias.name`` of a ``where`` as (key, alias, name, tying): ``tying`` is
    False inside ``any``, where the equality need not hold."""
    for key, cond in where.items():
        if key in ("any", "all") and isinstance(cond, list):
            for item in cond:
                yield from _references(item, tying and key == "all")
            continue
        operands = list(cond.values()) if isinstance(cond, dict) else [cond]
        for operand in operands:
            for value in operand if isinstance(operand, list) else [operand]:
                match = JOIN_REFERENCE.match(value) if isinstance(value, str) else None
                if match:
                    yield key, match.group(1), match.group(2), tying and not isinstance(cond, dict)


def _pins(spec: dict[str, Any], ruleset: RuleSet) -> frozenset[str] | None:
    """The services a pattern's facts can belong to, by its constants (``service``, and a
    decision's or running clock's ``target`` or ``agreement``); None when any service can."""
    return _where_pins(spec.get("where", {}), ruleset, _names_targets(spec["type"]))


def _where_pins(where: dict[str, Any], ruleset: RuleSet, names_targets: bool) -> frozenset[str] | None:
    found: list[frozenset[str] | None] = []
    for key, cond in where.items():
        if key == "all" and isinstance(cond, list):
            found.extend(_where_pins(item, ruleset, names_targets) for item in cond)
        elif key == "any" and isinstance(cond, list):
            branches = [_where_pins(item, ruleset, names_targets) for item in cond]
            if all(b is not None for b in branches):
                found.append(frozenset[str]().union(*(b for b in branches if b is not None)))
        else:
            values = _constants(cond)
            if values is None:
                continue
            if key == "service":
                found.append(values)
            elif names_targets and key in ("target", "agreement"):
                table = ruleset.targets if key == "target" else ruleset.agreements
                if all(v in table for v in values):
                    found.append(frozenset(table[v].service for v in values))
    return _meet(found)


def _constants(cond: object) -> frozenset[str] | None:
    """The strings a condition requires a field to equal one of (``x`` or ``{in: [x, y]}``)."""
    def constant(value: object) -> bool:
        return isinstance(value, str) and not JOIN_REFERENCE.match(value)
    if constant(cond):
        return frozenset([str(cond)])
    if isinstance(cond, dict) and isinstance(cond.get("in"), list) and all(map(constant, cond["in"])):
        return frozenset(cond["in"])
    return None


def _meet(sets: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    """What every one of several constraints allows (None: no constraint)."""
    result: frozenset[str] | None = None
    for found in sets:
        if found is not None:
            result = found if result is None else result & found
    return result


def _decided_kinds(rule: Rule) -> set[str]:
    """The decision kinds a Rule can make: its ``decide`` kinds (``notification`` when it
    only notifies), and ``retracted`` when what it rests on is retracted."""
    kinds = {step["decide"]["kind"] for step in rule.then if "decide" in step} or {"notification"}
    return kinds | {"retracted"}


def _matched_kinds(rule: Rule) -> set[str]:
    return {p["type"][len("decision."):] for p in _patterns(rule) if p["type"].startswith("decision.")}


def _patterns(rule: Rule) -> list[dict[str, Any]]:
    return [rule.when["count"]["of"]] if "count" in rule.when else list(rule.when["patterns"])


def _would_be(rule: Rule, found: _Found) -> str:
    """A Rule's reason under one partition: what it would be under a map that separates
    services, and whether the global partition could then run it."""
    if found.local:
        return found.reason
    unseen = next((p["type"] for p in _patterns(rule) if not p["type"].startswith("decision.")), None)
    refused = f", where its {unseen} pattern could never match (an error then)" if unseen else ""
    return f"{found.reason}: global once its services are in different partitions{refused}"


# ---- cross-partition Rules the global partition cannot run ---------------------------------------

def _unreachable_patterns(ruleset: RuleSet, analysis: dict[str, _Found]) -> list[Problem]:
    """A global Rule sees only the decisions fed to it: a pattern on any other fact, a
    running clock above all (clocks never leave their engine), would never match there."""
    problems = []
    documents = _rule_documents(ruleset)
    for rule_id, found in analysis.items():
        if found.local:
            continue
        rule = ruleset.rules[rule_id]
        counted = "count" in rule.when
        for index, spec in enumerate(_patterns(rule)):
            kind = spec["type"]
            if kind.startswith("decision."):
                continue
            why = ("clocks never leave their engine" if kind == "clock.running" else
                   f"the {GLOBAL} partition receives only decisions, never {kind} facts")
            message = (f"rule '{rule_id}' runs in the {GLOBAL} partition ({found.reason}), where its pattern "
                       f"on {kind} can never match: {why}; {_hint(rule, index, found)}")
            path: tuple[str | int, ...] = ("when", "of") if counted else ("when", index)
            doc = documents.get(rule_id)
            if doc is not None:
                problems.append(doc.problem(path, message, CODE))
            else:
                problems.append(Problem(rule.origin.file, rule.origin.line, rule.origin.column, message, CODE))
            break                       # one mistake, one error: the Rule as a whole is misplaced
    return problems


def _hint(rule: Rule, index: int, found: _Found) -> str:
    if found.via is not None:
        return f"keep the Rule '{found.via}' local, or this one cannot be"
    if "count" in rule.when:
        return "add `service` to `same`, or pin `service` in `of`, to make the Rule local"
    first = rule.when["patterns"][0].get("as")
    if first is None:
        return "name the first pattern (`as: x`) and add `service: $x.service` to the others to make the Rule local"
    if index == 0:
        return f"add `service: ${first}.service` to the other patterns to make the Rule local"
    return f"add `service: ${first}.service` to this pattern to make the Rule local"


def _rule_documents(ruleset: RuleSet) -> dict[str, Document]:
    """Each Rule's YAML document, its file named as the user opens it: where a pattern is
    written, for errors (the model keeps only where each Rule starts)."""
    opened = {relative: name for name, relative in ruleset.file_names.items()}
    documents: dict[str, Document] = {}
    for file in sorted({rule.origin.file for rule in ruleset.rules.values()}):
        text = ruleset.files.get(file)
        if text is None:
            continue
        for doc in load_documents(text, opened.get(file, file))[0]:
            data = doc.data
            if isinstance(data, dict) and data.get("kind") == "Rule" and isinstance(data.get("id"), str):
                documents.setdefault(data["id"], doc)
    return documents
