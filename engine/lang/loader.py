"""Load a rules directory into a RuleSet, whole or not at all.

Stage one of the pipeline: read YAML (with positions), validate each document against
its kind's schema, build the model, run the static checks. Every problem found anywhere
is collected and raised together as a RuleSetError.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields

from engine.lang import checks
from engine.lang.calendar import ServiceCalendar
from engine.lang.catalogue import build_catalogue
from engine.lang.errors import Problem, RuleSetError
from engine.lang.followsun import AnyOfCalendar
from engine.lang.inhibit import build_inhibits
from engine.lang.maintenance import ExcludingCalendar, MaintenanceWindows
from engine.lang.mapping import build_mappings
from engine.lang.model import (
    Agreement,
    BurnLevel,
    Credits,
    CreditTier,
    Escalation,
    EscalationLevel,
    Origin,
    ReviewPack,
    Rule,
    RuleSet,
    Service,
    Target,
)
from engine.lang.oncall_load import Schedules
from engine.lang.spelling import by_likeness
from engine.lang.writeback import build_writeback
from engine.lang.yamlsource import Document, load_documents
from schemas.rules import KIND_SCHEMAS
from schemas.values import DeadlineGoal

BUILTIN_CALENDAR = "24x7"
RULE_SUFFIXES = (".yaml", ".yml")
# Files the rules name and that are part of the rule set (hashed into its version, stored
# with it) but are no rule documents: on-call schedules (engine/lang/oncall.py).
SIDE_SUFFIXES = (".ics",)


def load_rules(root: str | Path) -> RuleSet:
    """Load every ``*.yaml``/``*.yml`` under ``root`` (any depth), with the on-call
    schedules (``*.ics``) beside them, or raise RuleSetError."""
    root = Path(root)
    if not root.is_dir():
        raise RuleSetError([Problem(str(root), 1, 1, "no such rules directory", "missing")])
    files, names = {}, {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in RULE_SUFFIXES + SIDE_SUFFIXES and p.is_file()):
        try:
            files[_display(path)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise RuleSetError([Problem(_display(path), 1, 1, f"cannot read file: {err}", "io")]) from None
        names[_display(path)] = path.relative_to(root).as_posix()
    return load_texts(files, root=str(root), names=names)


def load_texts(files: dict[str, str], root: str = "", names: dict[str, str] | None = None) -> RuleSet:
    """Load a rule set from ``{file name: YAML text}`` (used for uploads and tests).

    ``names``: each file's path relative to the rules directory, where the names given
    are not (``load_rules`` names files as the user would open them, for messages). The
    version hashes those relative paths and the contents only, so the same files give
    the same version wherever the directory is and however it was named."""
    problems: list[Problem] = []
    documents: list[tuple[Document, dict[str, Any]]] = []
    if not any(_is_rule_file(name) for name in files):
        problems.append(Problem(root or ".", 1, 1, "no rule files (*.yaml, *.yml) found", "missing"))
    for name, text in files.items():
        if not _is_rule_file(name):
            continue            # a schedule: read where a rule names it
        docs, syntax = load_documents(text, name)
        problems.extend(syntax)
        unreadable = {(p.line, p.column) for p in syntax}
        for doc in docs:
            found: list[Problem] = []
            loaded = _validate(doc, found)          # a value that could not be read: one error, not two
            problems.extend(p for p in found if (p.line, p.column) not in unreadable)
            if loaded is not None:
                documents.append((doc, loaded))
    rule_files = sorted(name for name in files if _is_rule_file(name))
    if rule_files and not documents and not problems:
        problems.append(Problem(rule_files[0], 1, 1, f"no rule documents in {len(rule_files)} file(s): an empty "
                                                     "rule set would stop every clock", "missing"))
    ruleset = None
    if not problems:
        ruleset = _build(documents, files, root, problems, names or {})
    if problems:
        raise RuleSetError(problems)
    assert ruleset is not None      # built, since there were no problems before it
    return ruleset


def _is_rule_file(name: str) -> bool:
    """A YAML rule file; any other file of a rule set is a side file a rule names (or none).
    Uploads name their files as they like: what does not end in a side file's suffix is YAML."""
    return not name.lower().endswith(SIDE_SUFFIXES)


def version_of(files: dict[str, str]) -> str:
    """sha256 over file names and contents, in name order: the ruleset version."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return "sha256:" + digest.hexdigest()


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _validate(doc: Document, problems: list[Problem]) -> dict[str, Any] | None:
    data = doc.data
    if not isinstance(data, dict):
        problems.append(doc.problem((), "a rule document is a mapping with 'kind' and 'id'"))
        return None
    kind = data.get("kind")
    # kind is any YAML value; only a string can name a schema (kind: [a] names none)
    schema_class = KIND_SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema_class is None:
        where = ("kind",) if "kind" in data else ()
        expected = ", ".join(KIND_SCHEMAS)
        message = f"kind: {kind!r} is not a kind (expected one of: {expected})" if kind else \
            f"missing 'kind' (expected one of: {expected})"
        problems.append(doc.problem(where, message))
        return None
    try:
        return cast(dict[str, Any], schema_class().load(data))
    except ValidationError as err:
        _place_errors(doc, schema_class(), err.messages, (), problems)
        return None


def _place_errors(doc: Document, schema: Schema, messages: list[Any] | dict[str | int, Any],
                  path: tuple[str | int, ...], problems: list[Problem]) -> None:
    """Turn marshmallow's nested error dict into placed Problems."""
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, (dict, list)):
                _place_errors(doc, schema, message, path, problems)
            else:
                problems.append(_problem(doc, schema, path, str(message)))
        return
    for key, sub in messages.items():
        if key == "_schema":
            _place_errors(doc, schema, sub, path, problems)
        else:
            _place_errors(doc, schema, sub, path + (key,), problems)


def _problem(doc: Document, schema: Schema, path: tuple[str | int, ...], message: str) -> Problem:
    name = next((p for p in reversed(path) if isinstance(p, str)), None)
    if message == "Unknown field.":
        allowed = _allowed_fields(schema, path[:-1])
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return doc.problem(path, f"unknown field '{name}'{hint}", "unknown-field", key=True)
    if message == "Missing data for required field.":
        return doc.problem(path[:-1], f"missing required field '{name}'", "missing-field")
    prefix = f"{name}: " if name else ""
    return doc.problem(path, prefix + message[:1].lower() + message[1:] if message[:1].isupper()
                       and not message.startswith(("'", '"')) else prefix + message)


def _allowed_fields(schema: Schema, path: tuple[str | int, ...]) -> list[str]:
    """The field names a schema accepts at a path, for 'unknown field' hints."""
    for part in path:
        if isinstance(part, int):
            continue
        field = next((f for f in schema.fields.values() if (f.data_key or f.name) == part), None)
        while isinstance(field, fields.List):
            field = field.inner
        if not isinstance(field, fields.Nested):
            return []
        schema = field.schema
    return sorted(cast(str, f.data_key or f.name) for f in schema.fields.values())     # a bound field has a name


def _origin(doc: Document, path: tuple[str | int, ...] = ()) -> Origin:
    line, column = doc.place(path)
    return Origin(doc.file, line, column)


def _build(documents: list[tuple[Document, dict[str, Any]]], files: dict[str, str], root: str, problems: list[Problem],
           names: dict[str, str]) -> RuleSet:
    """Second pass: ids unique, model objects built, references checked."""
    seen: dict[str, Document] = {}
    for doc, loaded in documents:
        if loaded["id"] in seen:
            first = seen[loaded["id"]]
            problems.append(doc.problem(("id",), f"id '{loaded['id']}' is already used at "
                                        f"{first.file}:{first.place(('id',))[0]}", "duplicate"))
        seen.setdefault(loaded["id"], doc)
    sources = {names.get(name, name): text for name, text in files.items()}
    ruleset = RuleSet(root=root, version=version_of(sources), files=sources,
                      file_names={name: names.get(name, name) for name in files}, calendars={},
                      default_holders={}, services={}, agreements={}, targets={}, escalations={},
                      raci={}, raci_origin={}, rules={})
    ruleset.calendars[BUILTIN_CALENDAR] = ServiceCalendar.always()
    by_kind: dict[str, list[tuple[Document, dict[str, Any]]]] = {}
    for doc, loaded in documents:
        by_kind.setdefault(loaded["kind"], []).append((doc, loaded))
    for doc, loaded in by_kind.get("Calendar", []):
        if loaded["id"] == BUILTIN_CALENDAR:
            problems.append(doc.problem(("id",), f"'{BUILTIN_CALENDAR}' is built in and cannot be redefined"))
            continue
        holidays = loaded["holidays"]
        try:
            ruleset.calendars[loaded["id"]] = ServiceCalendar(
                loaded["id"], loaded["timezone"], loaded["hours"], holidays.get("country"),
                holidays.get("subdivision"), holidays.get("dates", ()))
        except (ValueError, KeyError) as err:
            field = "timezone" if "zone" in str(err).lower() else "holidays"
            problems.append(doc.problem((field,), f"{field}: {err}"))
            ruleset.broken.add(loaded["id"])      # reported once, here: its users say nothing more
    schedules = Schedules(doc_files=names, sources=sources)
    for doc, loaded in by_kind.get("Roles", []):
        for role, holders in loaded["holders"].items():
            if role in ruleset.default_holders:
                problems.append(doc.problem(("holders", role), f"role '{role}' already has default holders",
                                            "duplicate", key=True))
            ruleset.default_holders[role] = schedules.holders(doc, ("holders", role), holders, problems)
    for doc, loaded in by_kind.get("Service", []):
        roles = {role: schedules.holders(doc, ("roles", role), holders, problems)
                 for role, holders in loaded["roles"].items()}
        ruleset.services[loaded["id"]] = Service(loaded["id"], loaded.get("name", loaded["id"]),
                                                 roles, loaded.get("calendar"), _origin(doc))
    ruleset.warnings.extend(schedules.warnings)
    for doc, loaded in by_kind.get("Maintenance", []):
        _build_maintenance(doc, loaded, ruleset, problems)
    for doc, loaded in by_kind.get("Agreement", []):
        _build_agreement(doc, loaded, ruleset, problems)
    for doc, loaded in by_kind.get("Raci", []):
        for activity, roles in loaded["activities"].items():
            if activity in ruleset.raci:
                problems.append(doc.problem(("activities", activity), f"activity '{activity}' is defined twice",
                                            "duplicate", key=True))
            ruleset.raci[activity] = {role: _letters(value) for role, value in roles.items()}
            line, column = doc.place(("activities", activity), key=True)
            ruleset.raci_origin[activity] = Origin(doc.file, line, column)
        for index, activity in enumerate(loaded["manual"]):
            if activity not in loaded["activities"]:
                problems.append(doc.problem(("manual", index), f"manual: '{activity}' is not an activity of "
                                            f"this Raci (activities: {', '.join(loaded['activities'])})",
                                            "unknown-reference"))
            ruleset.raci_manual.add(activity)
    for doc, loaded in by_kind.get("Escalation", []):
        scope = loaded["applies_to"]
        levels = []
        for index, level in enumerate(loaded["levels"]):
            call = level.get("call")
            writeback = None
            if isinstance(call, dict):
                writeback = build_writeback(doc, ("levels", index), call, names.get(doc.file, doc.file), problems,
                                            ruleset.warnings)
                call = None
            levels.append(EscalationLevel(loaded["id"], index, level["at"], level["activity"], level.get("repeat"),
                                          _origin(doc, ("levels", index)), call, writeback))
        ruleset.escalations[loaded["id"]] = Escalation(loaded["id"], scope.get("targets") or [],
                                                       scope.get("metric"), scope.get("service"), levels,
                                                       _origin(doc))
    _bind_escalations(ruleset)
    for doc, loaded in by_kind.get("Rule", []):
        ruleset.rules[loaded["id"]] = Rule(loaded["id"], loaded.get("description", ""), loaded["when"],
                                           loaded["then"], _origin(doc))
    ruleset.catalogue = build_catalogue(by_kind.get("Facts", []), problems)
    ruleset.mappings = build_mappings(by_kind.get("Mapping", []), ruleset, problems)
    ruleset.inhibits = build_inhibits(by_kind.get("Inhibit", []), ruleset, problems)
    docs_by_id = {loaded["id"]: doc for doc, loaded in documents}
    for problem in checks.check(ruleset, documents, docs_by_id):
        (ruleset.warnings if problem.severity == "warning" else problems).append(problem)
    ruleset.warnings.sort()
    _relative_origins(ruleset)
    return ruleset


def _relative_origins(ruleset: RuleSet) -> None:
    """From here on (decisions, traces, the API) a definition's file is named relative to
    the rules directory, never as the server's file system has it: problems found while
    loading were named as the user opens the files already."""
    def relative(origin: Origin) -> Origin:
        return Origin(ruleset.file_names.get(origin.file, origin.file), origin.line, origin.column)

    for table in (ruleset.services, ruleset.agreements, ruleset.targets, ruleset.escalations, ruleset.rules,
                  ruleset.inhibits):
        for item in table.values():
            if isinstance(getattr(item, "origin", None), Origin):
                object.__setattr__(item, "origin", relative(item.origin))
            for level in getattr(item, "levels", None) or []:
                if isinstance(getattr(level, "origin", None), Origin):
                    object.__setattr__(level, "origin", relative(level.origin))
    for activity, origin in ruleset.raci_origin.items():
        ruleset.raci_origin[activity] = relative(origin)


def _build_maintenance(doc: Document, loaded: dict[str, Any], ruleset: RuleSet, problems: list[Problem]) -> None:
    """A Maintenance document's windows, added to its service's."""
    service = loaded["service"]
    if service not in ruleset.services:
        problems.append(doc.problem(("service",), f"service: unknown service '{service}' (known: "
                                    f"{', '.join(sorted(ruleset.services)) or 'none'})", "unknown-reference"))
        return
    windows = ruleset.maintenance.setdefault(service, MaintenanceWindows(service))
    if "weekly" in loaded:
        try:
            ZoneInfo(loaded["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(doc.problem(("timezone",), f"timezone: unknown time zone '{loaded['timezone']}' "
                                                       f"(examples: Europe/London, UTC)"))
            return
        windows.weekly.append((loaded["id"], loaded["timezone"], loaded["weekly"]))
    windows.once.extend((once["from"], once["to"], loaded["id"]) for once in loaded["once"])
    windows.once.sort()


def _build_agreement(doc: Document, loaded: dict[str, Any], ruleset: RuleSet, problems: list[Problem]) -> None:
    valid = loaded["valid"]
    agreement = Agreement(loaded["id"], loaded["type"], loaded["status"], loaded["service"],
                          valid.get("from"), valid.get("to"), _origin(doc), loaded.get("name", ""),
                          loaded.get("customer", ""), loaded.get("provider", ""))
    ruleset.agreements[agreement.id] = agreement
    for index, spec in enumerate(loaded["targets"]):
        path = ("targets", index)
        measure = ("duration" if "clock" in spec else "availability" if "availability" in spec
                   else "ratio" if "ratio" in spec else "threshold")
        section = spec.get("clock") or spec.get("availability") or spec.get("metric") or spec.get("ratio")
        section_name = {"duration": "clock", "availability": "availability", "threshold": "metric",
                        "ratio": "ratio"}[measure]
        service = ruleset.services.get(agreement.service)
        own = section.get("calendar")
        section["calendar"] = own or (service and service.calendar) or BUILTIN_CALENDAR
        calendar: ServiceCalendar | AnyOfCalendar | ExcludingCalendar | None
        chosen: dict[str, ServiceCalendar] = {}
        if isinstance(section["calendar"], dict) and "by" in section["calendar"]:
            found = _by_field(doc, path + (section_name, "calendar"), section["calendar"], measure, ruleset,
                              problems)
            if found is None:
                ruleset.broken.add(spec["id"])
                continue
            calendar, chosen = found
        elif isinstance(section["calendar"], dict):
            calendar = _any_of(doc, path + (section_name, "calendar", "any_of"), section["calendar"]["any_of"],
                               ruleset, problems)
            if calendar is None:
                ruleset.broken.add(spec["id"])
                continue
        else:
            calendar = ruleset.calendars.get(section["calendar"])
        if calendar is None:
            ruleset.broken.add(spec["id"])      # references to the target are not errors of their own
            if own is None or section["calendar"] in ruleset.broken:
                continue            # the calendar is unknown or broken: reported there, once
            known = ", ".join(by_likeness(section["calendar"], ruleset.calendars))
            problems.append(doc.problem(path + (section_name, "calendar"),
                                        f"calendar: unknown calendar '{section['calendar']}' (known: {known})",
                                        "unknown-reference"))
            continue
        if "maintenance" in section.get("exclude", ()) and agreement.service in ruleset.maintenance:
            calendar = ExcludingCalendar(calendar, ruleset.maintenance[agreement.service])
        if isinstance(spec["goal"], DeadlineGoal) and not (isinstance(calendar, (ServiceCalendar, AnyOfCalendar))
                                                           and calendar.week):
            problems.append(doc.problem(path + ("goal",), f"goal: a deadline counts business days of the target's "
                                        f"calendar, and '{calendar.id}' has no service hours", "invalid"))
            continue
        if spec["id"] in ruleset.targets:
            first = ruleset.targets[spec["id"]].origin
            problems.append(doc.problem(path + ("id",), f"target id '{spec['id']}' is already used at "
                                        f"{first.file}:{first.line}", "duplicate"))
            continue
        ruleset.targets[spec["id"]] = Target(
            id=spec["id"], name=spec.get("name", spec["id"]), measure=measure, agreement=agreement,
            goal=spec["goal"], warn_at=spec["warn_at"], underpinned_by=spec["underpinned_by"],
            on_change=spec["on_change"], description=spec.get("description", ""),
            spec=section, calendar=calendar, origin=_origin(doc, path),
            calendar_by=section["calendar"]["by"] if chosen else None, calendars=chosen,
            burn_rate=[BurnLevel(level["factor"], level["long"], level["short"],
                                 _origin(doc, path + ("burn_rate", number)))
                       for number, level in enumerate(spec.get("burn_rate", ()))],
            forecast_over=spec["forecast"]["over"] if "forecast" in spec else None,
            prometheus=spec.get("prometheus"))
    if "credits" in loaded:
        agreement.credits = _credits(doc, loaded["credits"], agreement, ruleset, problems)
    if "review_pack" in loaded:
        service = ruleset.services.get(agreement.service)
        calendar = ruleset.calendars.get((service and service.calendar) or BUILTIN_CALENDAR)
        if calendar is not None:           # an unknown service calendar is reported at the Service
            agreement.review_pack = ReviewPack(loaded["review_pack"]["activity"], calendar,
                                               _origin(doc, ("review_pack", "activity")))


def _by_field(doc: Document, path: tuple[str | int, ...], spec: dict[str, Any], measure: str, ruleset: RuleSet,
              problems: list[Problem]) -> tuple[ServiceCalendar, dict[str, ServiceCalendar]] | None:
    """``calendar: {by, map, default}``: the default calendar and value -> calendar, each
    known (else an error at its place). Only a duration clock is a ticket's to choose."""
    if measure != "duration":
        problems.append(doc.problem(path + ("by",), "calendar: by chooses a ticket's calendar, and only a clock "
                                                    "target counts per ticket (give a window target one calendar)"))
        return None
    named = [(path + ("map", value), name) for value, name in spec["map"].items()]
    named.append((path + ("default",), spec["default"]))
    for place, name in named:
        if name not in ruleset.calendars:
            if name not in ruleset.broken:
                known = ", ".join(by_likeness(name, ruleset.calendars))
                problems.append(doc.problem(place, f"calendar: unknown calendar '{name}' (known: {known})",
                                            "unknown-reference"))
            return None
    return (ruleset.calendars[spec["default"]],
            {value: ruleset.calendars[name] for value, name in spec["map"].items()})


def _any_of(doc: Document, path: tuple[str | int, ...], names: list[str], ruleset: RuleSet,
            problems: list[Problem]) -> AnyOfCalendar | None:
    """``calendar: {any_of: [...]}``: the calendars named, each known (else an error at its
    place; a broken one was reported where it is defined)."""
    members = []
    for index, name in enumerate(names):
        found = ruleset.calendars.get(name)
        if found is None:
            if name not in ruleset.broken:
                known = ", ".join(by_likeness(name, ruleset.calendars))
                problems.append(doc.problem(path + (index,), f"calendar: unknown calendar '{name}' (known: {known})",
                                            "unknown-reference"))
            return None
        members.append(found)
    return AnyOfCalendar(members)


def _credits(doc: Document, spec: dict[str, Any], agreement: Agreement, ruleset: RuleSet,
             problems: list[Problem]) -> Credits | None:
    """An agreement's credits with their targets resolved: named ones must be the agreement's
    own, and have the figure the tiers read (a duration target has no availability)."""
    own = [t for t in ruleset.targets.values() if t.agreement is agreement]
    figure = "windows" if spec["of"] == "availability" else "duration"
    path: tuple[str | int, ...]
    if "targets" not in spec:
        chosen = [t.id for t in own if (t.measure != "duration") == (figure == "windows")]
        if not chosen:
            kind = "availability or threshold" if figure == "windows" else "duration (clock)"
            problems.append(doc.problem(("credits", "of"), f"credits of {spec['of']}: agreement "
                                        f"'{agreement.id}' has no {kind} target to read it from", "invalid"))
            return None
    else:
        chosen = []
        for index, name in enumerate(spec["targets"]):
            path = ("credits", "targets", index)
            target = ruleset.targets.get(name)
            if name in ruleset.broken:
                continue
            if target is None or target.agreement is not agreement:
                known = ", ".join(by_likeness(name, [t.id for t in own])) or "none"
                problems.append(doc.problem(path, f"credits: '{name}' is not a target of agreement "
                                            f"'{agreement.id}' (its targets: {known})", "unknown-reference"))
            elif spec["of"] == "availability" and target.measure == "duration":
                problems.append(doc.problem(path, f"credits of availability: '{name}' is a duration target, "
                                            "which has no availability (use of: compliance)", "invalid"))
            else:
                chosen.append(name)
    tiers = sorted((CreditTier(tier["below"], tier["credit"]) for tier in spec["tiers"]),
                   key=lambda tier: tier.below, reverse=True)
    return Credits(spec["of"], chosen, tiers, _origin(doc, ("credits",)))


def _bind_escalations(ruleset: RuleSet) -> None:
    """Give each target the levels of the escalations that cover it (by id, or by metric
    and service), in escalation id order: known statically, so the engine needs no
    run-time matching to find a clock's escalations."""
    for escalation in sorted(ruleset.escalations.values(), key=lambda e: e.id):
        for target in ruleset.targets.values():
            if escalation.targets:
                covered = target.id in escalation.targets
            else:
                covered = (target.measure == "threshold" and target.spec.get("name") == escalation.metric
                           and escalation.service in (None, target.service))
            if covered:
                target.escalations.extend(escalation.levels)


def _letters(value: object) -> list[str]:
    return [part.strip() for part in str(value).replace(",", "/").split("/")]
