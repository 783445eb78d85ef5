"""``kind: Inhibit``: while a source condition holds, the notifications it names are muted
(docs/RULES.md, "Inhibition"), as Alertmanager's inhibit_rules mute the alerts a firing
alert makes redundant: while email is down, nobody needs paging for each ticket it causes.

A source is an availability target's ``breach`` (it holds until the breached subject is
up again) or a posted ``fact`` (it holds until a fact of ``until`` of the same subject).
Loaded with the rule set; everything it names is checked here at file:line:column, so an
inhibition that loads can only be wrong about what happens.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from engine.lang.catalogue_check import pattern_problems
from engine.lang.errors import Problem
from engine.lang.lint import produced_kinds
from engine.lang.model import Origin, RuleSet, Target
from engine.lang.spelling import nearest
from engine.lang.yamlsource import Document


@dataclass(frozen=True)
class Inhibit:
    id: str
    breach: Target | None              # the source: an availability target's breach …
    fact: dict[str, Any] | None        # … or a posted fact: {type, where}
    until: tuple[str, ...]             # fact types of the source's subject that end a fact source
    service: str | None                # a fact source: only facts of this service
    target: dict[str, str]             # matcher -> glob, on the muted notification and its decision
    equal: tuple[str, ...]             # service, subject: the same in source and target
    origin: Origin

    def aims_at(self, values: dict[str, Any]) -> bool:
        """All target matchers match ``values`` (a field the decision lacks never does)."""
        return all(isinstance(value := values.get(name), str) and fnmatchcase(value, pattern)
                   for name, pattern in self.target.items())

    @property
    def where(self) -> str:
        return f"{self.origin.file}:{self.origin.line}"


def build_inhibits(documents: list[tuple[Document, dict[str, Any]]], ruleset: RuleSet,
                   problems: list[Problem]) -> dict[str, Inhibit]:
    """Every Inhibit document, checked against ``ruleset``'s targets, services, activities
    and fact catalogue."""
    out = {}
    for doc, loaded in documents:
        source = loaded["source"]
        target = None
        if "breach" in source:
            target = _breached(doc, source["breach"], ruleset, problems)
            if "subject" in loaded["equal"]:
                problems.append(doc.problem(("equal", loaded["equal"].index("subject")), "equal: a breach of an "
                                            "availability target is its service's, not a ticket's: only "
                                            "'service' can be equal", "policy"))
        else:
            problems += pattern_problems(ruleset, source["fact"], doc, ("source", "fact"))
            for index, kind in enumerate(source["until"]):
                problems += pattern_problems(ruleset, {"type": kind, "bare": True}, doc, ("source", "until", index))
            if "service" in source and source["service"] not in ruleset.services:
                problems.append(_unknown(doc, ("source", "service"), "service", source["service"],
                                         ruleset.services))
        problems += _matchers(doc, loaded["target"], ruleset)
        line, column = doc.place(())
        out[loaded["id"]] = Inhibit(loaded["id"], target, source.get("fact"), tuple(source.get("until") or ()),
                                    source.get("service"), dict(loaded["target"]), tuple(loaded["equal"]),
                                    Origin(doc.file, line, column))
    return out


def _breached(doc: Document, target_id: str, ruleset: RuleSet, problems: list[Problem]) -> Target | None:
    target = ruleset.targets.get(target_id)
    if target is None:
        problems.append(_unknown(doc, ("source", "breach"), "target", target_id, ruleset.targets))
    elif target.measure != "availability":
        problems.append(doc.problem(("source", "breach"), f"breach: '{target_id}' is a {target.measure} target; "
                                    "an inhibition holds from an availability target's breach until its subject "
                                    "is up again (for a ticket, write a fact source with until)", "policy"))
        return None
    return target


def _matchers(doc: Document, matchers: dict[str, str], ruleset: RuleSet) -> list[Problem]:
    """A matcher that can match nothing the rules could notify is a mistake, said where it is."""
    known: dict[str, set[str]] = {"service": set(ruleset.services), "target": set(ruleset.targets),
                                  "activity": set(ruleset.raci), "kind": produced_kinds(ruleset)}
    found = []
    for name, pattern in matchers.items():
        if not pattern.strip() or pattern.strip("*") == "":
            found.append(doc.problem(("target", name), f"{name}: '{pattern}' matches everything: name what to "
                                     "mute, or leave the matcher out"))
        elif name in known and not any(fnmatchcase(value, pattern) for value in known[name]):
            found.append(_unknown(doc, ("target", name), name, pattern, known[name], glob=True))
    return found


def _unknown(doc: Document, path: tuple[str | int, ...], what: str, name: str, known: Iterable[str],
             glob: bool = False) -> Problem:
    guess = nearest(name, known)
    hint = f": did you mean '{guess}'?" if guess else f" (known: {', '.join(sorted(known)) or 'none'})"
    said = f"'{name}' matches no {what} the rules know" if glob else f"unknown {what} '{name}'"
    return doc.problem(path, f"{path[-1]}: {said}{hint}", "unknown-reference")
