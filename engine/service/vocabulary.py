"""The names a stored record can carry: the closed sets a listing's filter is checked against.

A filter on a service, a target or a decision kind no rule set ever defined matches nothing,
and so does a misspelt one (``kind=brech``): the API refuses it naming the known values
instead of answering with an empty page. The sets are those of every rule-set version put in
force (a service dropped from the rules still has its stored decisions), so they grow only
when the rules change.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from engine.lang.lint import produced_kinds
from engine.lang.model import RuleSet

SHOWN = 20     # known values named in a message at most (a rule set may have 10,000 targets)


@dataclass(frozen=True)
class Vocabulary:
    """Services, targets and decision kinds of some rule-set versions together."""

    services: frozenset[str]
    targets: frozenset[str]
    kinds: frozenset[str]

    @classmethod
    def of(cls, rulesets) -> Vocabulary:
        services, targets, kinds = set(), set(), set()
        for ruleset in rulesets:
            services.update(ruleset.services)
            targets.update(ruleset.targets)
            kinds.update(produced_kinds(ruleset))
        return cls(frozenset(services), frozenset(targets), frozenset(kinds))


def unknown_value(value: str, known, what: str) -> str | None:
    """Why ``value`` is not one of ``known`` (None if it is): the closest known values and
    the known ones, at most :data:`SHOWN` of them."""
    if value in known:
        return None
    ordered = sorted(known)
    close = difflib.get_close_matches(value, ordered, n=3, cutoff=0.75)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    listed = ", ".join(ordered[:SHOWN]) or "none"
    more = f", … ({len(ordered) - SHOWN} more)" if len(ordered) > SHOWN else ""
    return f"unknown {what} {value!r} ({hint}known: {listed}{more})"


def in_force_and_before(current: RuleSet, versions, get) -> Vocabulary:
    """The vocabulary of ``current`` and of every version in ``versions`` that ``get`` can
    load (a stored version that no longer loads adds nothing)."""
    loaded = [current] + [r for r in (get(v) for v in versions if v != current.version) if r is not None]
    return Vocabulary.of(loaded)
