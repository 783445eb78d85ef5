"""OpenSLO v1 in and out (docs/RULES.md, "OpenSLO"): ``slm import openslo`` turns Service,
SLI, SLO, AlertPolicy and AlertCondition documents into rule files and lists what it could
not map; ``slm export openslo`` writes the documents of a service's error budgets.

How the two meet:

- an OpenSLO Service is a ``kind: Service``; its SLOs are the targets of one Agreement
  (``openslo-<service>``, an SLA), one target per objective;
- ``timeWindow`` rolling is ``window: rolling 28d``; a calendar window of 1M, 1w, 1d or
  Nd is ``month``, ``week``, ``day`` or ``Nd``;
- ``ratioMetric`` is a ratio target (``budgetingMethod: Occurrences``) counting the
  ``sli.counts`` facts named as the SLI; ``thresholdMetric`` with an objective's ``op`` and
  ``value`` is a threshold target over ``metric.sample`` facts named as the SLI;
- a metric source of type ``slm`` carries a target's measure section as slm writes it (its
  ``where``, ``calendar``, ``exclude``, an availability's ``down`` and ``up``): that is how
  an export comes back whole, availability targets included;
- an AlertCondition ``kind: burnrate`` with ``op: gte`` (or ``gt``) is a burn-rate level:
  ``threshold`` its factor, ``lookbackWindow`` its long window, ``alertAfter`` its short one.

Anything else (another metric source's query, Timeslices, notification targets, a calendar
window's start and zone, labels) is named in the import's list of what was not mapped.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from typing import Any

import yaml

from engine.lang.model import RuleSet, Target
from engine.lang.prometheus import PAGE_FROM, decimal
from schemas.rules import rolling_length

API = "openslo/v1"
KINDS = ("Service", "SLI", "SLO", "AlertPolicy", "AlertCondition")
Note = Callable[[str], None]              # records one thing not mapped
ByKind = dict[str, dict[str, tuple[str, dict[str, Any]]]]     # kind -> name -> (where, document)
SLM_SOURCE = "slm"                        # a metric source slm writes and reads back whole
BUILTIN_CALENDAR = "24x7"                  # (engine.lang.loader): written by no one
MEASURES = {"ratio": "ratio", "availability": "availability", "threshold": "metric"}
_DURATION = re.compile(r"^(\d+)([mhdwMQY])$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_CALENDAR = {"1M": "month", "1w": "week", "1d": "day"}


class UnknownService(ValueError):
    """The service asked for is not in the rules; the message lists those that are."""


@dataclass
class Imported:
    """Rule files made from OpenSLO documents (file name -> YAML text) and what could not be
    mapped, each as ``(where, what)``."""

    files: dict[str, str] = field(default_factory=dict)
    unmapped: list[tuple[str, str]] = field(default_factory=list)


# ---- reading OpenSLO ---------------------------------------------------------------------

def read_documents(texts: dict[str, str]) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str]]]:
    """Every document of every file (a file holds one, several separated by ``---``, or a
    list of them), each with where it came from; what is not an OpenSLO v1 document is
    listed instead."""
    found, skipped = [], []
    for name, text in texts.items():
        try:
            loaded = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        except yaml.YAMLError as err:
            skipped.append((name, f"not YAML: {' '.join(str(err).split())}"))
            continue
        docs = [d for doc in loaded for d in (doc if isinstance(doc, list) else [doc])]
        for index, doc in enumerate(docs, 1):
            where = f"{name}#{index}"
            if not isinstance(doc, dict):
                skipped.append((where, "not a document (a mapping)"))
            elif doc.get("apiVersion") != API:
                skipped.append((where, f"apiVersion {doc.get('apiVersion')!r} is not {API}"))
            elif doc.get("kind") not in KINDS:
                skipped.append((where, f"kind {doc.get('kind')!r} has no counterpart in slm"))
            else:
                found.append((where, doc))
    return found, skipped


def _name(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata") or {}
    return str(metadata.get("name") or "")


def _duration(text: object) -> tuple[int, str] | None:
    match = _DURATION.match(str(text).strip()) if text is not None else None
    return (int(match.group(1)), match.group(2)) if match else None


def _window(spec: dict[str, Any], note: Note) -> str | None:
    """``timeWindow`` as slm writes a window (None: not mappable, and noted)."""
    windows = spec.get("timeWindow") or []
    if not windows:
        note("timeWindow missing: read as a calendar month")
        return "month"
    window = windows[0]
    if len(windows) > 1:
        note("only the first timeWindow is kept")
    parsed = _duration(window.get("duration"))
    if parsed is None:
        note(f"timeWindow duration {window.get('duration')!r} is not a duration")
        return None
    amount, unit = parsed
    if window.get("isRolling"):
        if unit in _UNIT and amount > 0:
            return f"rolling {_span(amount * _UNIT[unit])}"
        note(f"a rolling timeWindow of {amount}{unit} has no length in slm (minutes, hours, days, weeks)")
        return None
    if window.get("calendar"):
        note("the calendar window's startTime and timeZone are not kept: slm's windows begin on the "
             "target calendar's day, week and month")
    text = f"{amount}{unit}"
    if text in _CALENDAR:
        return _CALENDAR[text]
    if unit == "d" and amount > 0:
        return f"{amount}d"
    if unit == "w" and amount > 0:
        return f"{7 * amount}d"
    note(f"a calendar timeWindow of {text} has no counterpart in slm (1M, 1w, 1d, Nd)")
    return None


def _goal(objective: dict[str, Any], note: Note) -> str | None:
    if "target" in objective:
        share = Fraction(str(objective["target"]))
    elif "targetPercent" in objective:
        share = Fraction(str(objective["targetPercent"])) / 100
    else:
        note("an objective without target or targetPercent")
        return None
    if not 0 < share < 1:
        note(f"an objective target of {float(share):g} is not between 0 and 1")
        return None
    return f"{decimal(share * 100)}%"


def _burn_levels(conditions: Iterable[tuple[dict[str, Any], str]], note: Note) -> list[dict[str, Any]]:
    levels = []
    for condition, name in conditions:
        spec = (condition.get("spec") or {}).get("condition") or {}
        if spec.get("kind") != "burnrate":
            note(f"AlertCondition {name}: condition kind {spec.get('kind')!r} (only burnrate is mapped)")
            continue
        if spec.get("op") not in ("gte", "gt"):
            note(f"AlertCondition {name}: a burn rate {spec.get('op')} its threshold is no alert slm makes "
                 "(it fires at or above a factor)")
            continue
        long = _duration(spec.get("lookbackWindow"))
        if long is None or long[1] not in _UNIT or long[0] <= 0:
            note(f"AlertCondition {name}: lookbackWindow {spec.get('lookbackWindow')!r} is not minutes, hours, "
                 "days or weeks")
            continue
        long_length = long[0] * _UNIT[long[1]]
        after = _duration(spec.get("alertAfter"))
        short_length = after[0] * _UNIT[after[1]] if after and after[1] in _UNIT else None
        if short_length is None or not timedelta(0) < short_length < long_length:
            short_length = max(timedelta(minutes=1), (long_length / 12) // timedelta(minutes=1) * timedelta(minutes=1))
            note(f"AlertCondition {name}: alertAfter {spec.get('alertAfter')!r} is no short window within the "
                 f"lookbackWindow: the short window is a twelfth of it")
        if spec.get("op") == "gt":
            note(f"AlertCondition {name}: op gt read as gte")
        try:
            factor = Fraction(str(spec.get("threshold")))
        except (ValueError, ZeroDivisionError):
            factor = Fraction(0)
        if factor <= 0:
            note(f"AlertCondition {name}: threshold {spec.get('threshold')!r} is no factor above 0")
            continue
        levels.append({"factor": _number(factor), "long": _span(long_length), "short": _span(short_length)})
    return levels


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(decimal(value))


def _span(length: timedelta) -> str:
    minutes = length // timedelta(minutes=1)
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def import_openslo(texts: dict[str, str]) -> Imported:
    """Rule files from the OpenSLO documents of ``texts`` (file name -> text)."""
    docs, skipped = read_documents(texts)
    out = Imported(unmapped=list(skipped))
    by_kind: ByKind = {kind: {} for kind in KINDS}
    for where, doc in docs:
        by_kind[doc["kind"]].setdefault(_name(doc), (where, doc))
    services: dict[str, dict[str, Any]] = {}
    for name, (_, doc) in by_kind["Service"].items():
        services[name] = {"kind": "Service", "id": name}
        display = (doc.get("metadata") or {}).get("displayName")
        if display:
            services[name]["name"] = str(display)
        description = (doc.get("spec") or {}).get("description")
        if description:
            services[name]["description"] = str(description)
    targets: dict[str, list[dict[str, Any]]] = {}
    used: set[str] = set(services)
    for name, (where, doc) in by_kind["SLO"].items():
        spec = doc.get("spec") or {}
        service = str(spec.get("service") or "")

        def note(what: str, where: str = where, name: str = name) -> None:
            out.unmapped.append((where, f"SLO {name}: {what}"))

        if not service:
            note("names no service: left out")
            continue
        made = _targets(name, spec, by_kind, note, used)
        if made:
            services.setdefault(service, {"kind": "Service", "id": service})
            used.add(service)
            targets.setdefault(service, []).extend(made)
    for kind in ("SLI", "AlertPolicy", "AlertCondition"):
        named = _referenced(by_kind, kind)
        for name, (where, _) in by_kind[kind].items():
            if name not in named:
                out.unmapped.append((where, f"{kind} {name}: no SLO uses it"))
    for service, definition in services.items():
        documents: list[dict[str, Any]] = [definition]
        if targets.get(service):
            agreement = _unique(f"openslo-{service}", used)
            documents.append({"kind": "Agreement", "id": agreement, "type": "SLA", "service": service,
                              "targets": targets[service]})
        out.files[f"{service}.yaml"] = ("# Made by slm import openslo from OpenSLO v1 documents "
                                        "(docs/RULES.md, \"OpenSLO\").\n"
                                        + yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True))
    return out


def _referenced(by_kind: ByKind, kind: str) -> set[str]:
    names: set[str] = set()
    for _, slo in by_kind["SLO"].values():
        spec = slo.get("spec") or {}
        if kind == "SLI" and spec.get("indicatorRef"):
            names.add(str(spec["indicatorRef"]))
        for policy in _policies(spec, by_kind, lambda _: None):
            if kind == "AlertPolicy":
                names.add(_name(policy))
            for _, condition_name in _conditions(policy, by_kind, lambda _: None):
                names.add(condition_name)
    return names


def _unique(name: str, used: set[str]) -> str:
    chosen, n = name, 1
    while chosen in used:
        n += 1
        chosen = f"{name}-{n}"
    used.add(chosen)
    return chosen


def _policies(spec: dict[str, Any], by_kind: ByKind, note: Note) -> list[dict[str, Any]]:
    out = []
    for entry in spec.get("alertPolicies") or []:
        ref = entry if isinstance(entry, str) else entry.get("alertPolicyRef") if isinstance(entry, dict) else None
        if ref is not None:
            found = by_kind["AlertPolicy"].get(str(ref))
            if found is None:
                note(f"alert policy {ref!r} is not among the documents")
            else:
                out.append(found[1])
        elif isinstance(entry, dict) and entry.get("kind") == "AlertPolicy":
            out.append(entry)
    return out


def _conditions(policy: dict[str, Any], by_kind: ByKind, note: Note) -> list[tuple[dict[str, Any], str]]:
    out = []
    for entry in (policy.get("spec") or {}).get("conditions") or []:
        if not isinstance(entry, dict):
            continue
        if "conditionRef" in entry:
            found = by_kind["AlertCondition"].get(str(entry["conditionRef"]))
            if found is None:
                note(f"alert condition {entry['conditionRef']!r} is not among the documents")
            else:
                out.append((found[1], str(entry["conditionRef"])))
        elif entry.get("kind") == "AlertCondition":
            out.append((entry, _name(entry)))
    return out


def _targets(name: str, spec: dict[str, Any], by_kind: ByKind, note: Note, used: set[str]) -> list[dict[str, Any]]:
    """The targets of one SLO, one per objective."""
    indicator = spec.get("indicator")
    if indicator is None and spec.get("indicatorRef"):
        found = by_kind["SLI"].get(str(spec["indicatorRef"]))
        if found is None:
            note(f"indicatorRef {spec['indicatorRef']!r} is not among the documents: left out")
            return []
        indicator = found[1]
    if not isinstance(indicator, dict):
        note("has no indicator: left out")
        return []
    sli_name = _name(indicator) or name
    sli = indicator.get("spec") or {}
    window = _window(spec, note)
    if window is None:
        note("left out: its window")
        return []
    method = spec.get("budgetingMethod", "Occurrences")
    levels = []
    for policy in _policies(spec, by_kind, note):
        if (policy.get("spec") or {}).get("notificationTargets"):
            note(f"AlertPolicy {_name(policy)}: notification targets are not mapped (an Escalation and a "
                 "Raci say who is told)")
        levels += _burn_levels(_conditions(policy, by_kind, note), note)
    out = []
    objectives = spec.get("objectives") or []
    if not objectives:
        note("has no objectives: left out")
    for index, objective in enumerate(objectives):
        measure = _measure(sli_name, sli, objective, method, note)
        goal = _goal(objective, note)
        if measure is None or goal is None:
            continue
        key, section = measure
        target: dict[str, Any] = {"id": _unique(name if index == 0 else f"{name}-{index + 1}", used)}
        title = objective.get("displayName")
        target["name"] = str(spec.get("description") or name) if not title or len(objectives) == 1 \
            else f"{spec.get('description') or name}: {title}"
        target[key] = {**section, "window": window}
        target["goal"] = goal
        if levels:
            target["burn_rate"] = levels
        out.append(target)
    return out


def _measure(sli_name: str, sli: dict[str, Any], objective: dict[str, Any], method: str,
             note: Note) -> tuple[str, dict[str, Any]] | None:
    if "ratioMetric" in sli:
        ratio = sli["ratioMetric"] or {}
        source = _source(ratio.get("total"))
        if source.get("type") == SLM_SOURCE and isinstance(source.get("spec"), dict):
            return _own(source["spec"], note)
        if method != "Occurrences":
            note(f"budgetingMethod {method} read as Occurrences (good ÷ total events of the window)")
        note(f"SLI {sli_name}: the metric source ({source.get('type')}) is not queried: post its good and total "
             f"counts as sli.counts facts named {sli_name}")
        return "ratio", {"name": sli_name}
    if "thresholdMetric" in sli:
        source = _source(sli["thresholdMetric"])
        if source.get("type") == SLM_SOURCE and isinstance(source.get("spec"), dict):
            return _own(source["spec"], note)
        op, value = objective.get("op"), objective.get("value")
        if op not in ("lte", "lt", "gte", "gt") or not isinstance(value, (int, float)) or isinstance(value, bool):
            note(f"a threshold objective needs op (lte, lt, gte, gt) and a numeric value, not {op!r} {value!r}")
            return None
        if op in ("lt", "gt"):
            note(f"op {op} read as {op}e: slm judges a sample at the value good")
        if method != "Timeslices":
            note(f"budgetingMethod {method} read as time: the share of service time the samples hold good")
        note(f"SLI {sli_name}: the metric source ({source.get('type')}) is not queried: post its values as "
             f"metric.sample facts named {sli_name}")
        return "metric", {"name": sli_name, "above" if op in ("lte", "lt") else "below": value}
    note("the indicator has neither ratioMetric nor thresholdMetric: left out")
    return None


def _source(metric: object) -> dict[str, Any]:
    if isinstance(metric, dict):
        source = metric.get("metricSource")
        return source if isinstance(source, dict) else {}
    return {}


def _own(spec: dict[str, Any], note: Note) -> tuple[str, dict[str, Any]] | None:
    """A metric source slm wrote: its measure section whole."""
    for key in ("ratio", "availability", "metric"):
        if isinstance(spec.get(key), dict):
            return key, dict(spec[key])
    note("an slm metric source without ratio, availability or metric")
    return None


# ---- writing OpenSLO ---------------------------------------------------------------------

def export_openslo(ruleset: RuleSet, service: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The OpenSLO documents of ``service``'s error budgets (agreements in force), and the
    targets left out, with why."""
    definition = ruleset.services.get(service)
    if definition is None:
        known = ", ".join(sorted(ruleset.services)) or "none"
        raise UnknownService(f"unknown service {service!r} (services: {known})")
    docs: list[dict[str, Any]] = [{"apiVersion": API, "kind": "Service",
                                   "metadata": {"name": service, "displayName": definition.name}, "spec": {}}]
    skipped = []
    for target in sorted(ruleset.targets.values(), key=lambda t: t.id):
        if target.service != service or target.agreement.status == "retired":
            continue
        if target.measure == "duration":
            skipped.append((target.id, "a duration target keeps no error budget (OpenSLO has no clock of a ticket)"))
            continue
        docs += _target_documents(target, service)
    return docs, skipped


def _target_documents(target: Target, service: str) -> list[dict[str, Any]]:
    key = MEASURES[target.measure]
    section = {k: v for k, v in target.spec.items()       # as written: defaults left out
               if k != "window" and v not in ({}, [], None) and not (k == "calendar" and v == BUILTIN_CALENDAR)}
    source = {"metricSource": {"type": SLM_SOURCE, "spec": {key: section}}}
    if target.measure == "ratio":
        indicator: dict[str, Any] = {"ratioMetric": {"counter": False, "good": {
            "metricSource": {"type": SLM_SOURCE, "spec": {"counts": section["name"], "field": "good"}}},
            "total": source}}
        method = "Occurrences"
    else:
        indicator = {"thresholdMetric": source}
        method = "Timeslices"
    goal = target.goal
    assert isinstance(goal, Fraction)
    objective: dict[str, Any] = {"displayName": target.name, "target": float(decimal(goal))}
    if target.measure == "threshold":
        objective |= {"op": "lte", "value": section["above"]} if "above" in section else \
            {"op": "gte", "value": section["below"]}
    slo_spec: dict[str, Any] = {"description": target.name, "service": service, "indicatorRef": f"{target.id}-sli",
                                "timeWindow": [_time_window(target)], "budgetingMethod": method,
                                "objectives": [objective]}
    docs = [{"apiVersion": API, "kind": "SLI", "metadata": {"name": f"{target.id}-sli"}, "spec": indicator}]
    if target.burn_rate:
        conditions = []
        for level in target.burn_rate:
            name = f"{target.id}-burn-{level.text[:-1].replace('.', '-')}x"
            conditions.append(name)
            docs.append({"apiVersion": API, "kind": "AlertCondition", "metadata": {"name": name},
                         "spec": {"description": f"the error budget burns at {level.text} or faster over both the "
                                                 f"last {_span(level.long)} and the last {_span(level.short)}",
                                  "severity": "page" if level.factor >= PAGE_FROM else "ticket",
                                  "condition": {"kind": "burnrate", "op": "gte", "threshold": _number(level.factor),
                                                "lookbackWindow": _span(level.long),
                                                "alertAfter": _span(level.short)}}})
        policy = f"{target.id}-burn-rate"
        docs.append({"apiVersion": API, "kind": "AlertPolicy", "metadata": {"name": policy},
                     "spec": {"alertWhenBreaching": True,
                              "conditions": [{"conditionRef": name} for name in conditions]}})
        slo_spec["alertPolicies"] = [{"alertPolicyRef": policy}]
    docs.append({"apiVersion": API, "kind": "SLO", "metadata": {"name": target.id}, "spec": slo_spec})
    return docs


def _time_window(target: Target) -> dict[str, Any]:
    length = rolling_length(target.spec.get("window"))
    if length is not None:
        return {"duration": _span(length), "isRolling": True}
    window = str(target.spec.get("window", "month"))
    duration = {"month": "1M", "week": "1w", "day": "1d"}.get(window, window)
    return {"duration": duration, "isRolling": False,
            "calendar": {"startTime": "2020-01-01 00:00:00", "timeZone": str(getattr(target.calendar, "zone", "UTC"))}}


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True)
