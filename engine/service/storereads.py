"""Reads the store alone answers: traces, definitions, a stored fact explained, the rule
versions put in force and what they can name, a month's decisions.

None of them takes the write lock or reads the live engine, so any process that reaches
the store can answer them, beside the one that writes.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from engine.eval.trace import Lookup, derivation
from engine.service.explain import explain_stored
from engine.service.reports import SPAN_MARGIN
from engine.service.state import ServiceState
from engine.service.vocabulary import Vocabulary, in_force_and_before
from engine.service.waivers import waiving
from engine.service.whatif import PREVIEW_BOUNDS
from engine.store.base import every


def _decision_nodes(node: dict):
    """The decision nodes of a trace, the root first."""
    if node.get("ref", "").startswith("decision:") and "kind" in node:
        yield node
    for child in node.get("children", ()):
        yield from _decision_nodes(child)


class StoreReads:
    """What the store holds, read for the API, the console and the reports."""

    def __init__(self, state: ServiceState, retain: timedelta | None):
        self.state = state
        self.retain = retain                   # as the live engine forgets finished clocks
        self._vocabulary: tuple[str, Vocabulary] | None = None   # (version in force, its vocabulary)

    def definition(self, rule: dict | None) -> str | None:
        """The YAML text of the definition a decision's ``rule`` names, as the version that
        made the decision has it (None if that version or place is unknown)."""
        if not rule or not rule.get("file"):
            return None
        ruleset = self.state.versions.get(rule.get("ruleset") or self.state.ruleset.version)
        return None if ruleset is None else ruleset.source(rule["file"], rule.get("line") or 0)

    def trace(self, decision_id: str) -> dict:
        """The derivation tree of a stored decision (KeyError if there is none), each
        definition as the version that decided had it, with the waivers that name the
        decision or hold it in their period (``waivers``, whatever their status)."""
        store = self.state.store
        tree = derivation(decision_id, Lookup(store.decision, store.fact_by_ref, self.state.versions.get))
        nodes = list(_decision_nodes(tree))
        found = store.retractions(node["ref"][len("decision:"):] for node in nodes)
        for node in nodes:
            retraction = found.get(node["ref"][len("decision:"):])
            if retraction is not None:
                node["retracted_by"] = retraction
        decision = store.decision(decision_id)
        tree["waivers"] = waiving(store.waivers(), decision) if decision is not None else []
        return tree

    def explain_fact(self, fact_id: str, source: str | None = None) -> dict:
        """Which clocks a stored fact moved and why it left the others, as the engine stood
        when it arrived (engine.service.explain; UnknownFact, AmbiguousFact, ReplayLimit).
        Replays into a throwaway engine: reads only, no lock."""
        state = self.state
        return explain_stored(state.store, fact_id, source, ruleset=state.ruleset, versions=state.versions,
                              retain=self.retain, bounds=PREVIEW_BOUNDS, pmap=state.scope.pmap)

    def vocabulary(self) -> Vocabulary:
        """Services, targets and decision kinds of every rule set put in force: what a
        stored record can name (engine.service.vocabulary). Kept until the rules in force
        change."""
        current = self.state.ruleset
        known = self._vocabulary
        if known is None or known[0] != current.version:
            versions = [c["ruleset"] for c in self.state.store.cutovers()]
            known = self._vocabulary = (current.version, in_force_and_before(current, versions,
                                                                             self.state.versions.get))
        return known[1]

    def rule_versions(self) -> list[dict]:
        """Every rule set put in force, oldest first: ``{version, at, after_fact, by,
        in_force}`` (the last cut-over is the version in force; ``by``: the token's name, or
        None if recorded before who was kept)."""
        changes = self.state.store.cutovers()
        return [{"version": c["ruleset"], "at": c["at"], "after_fact": c["after_fact"], "by": c["by"],
                 "in_force": n == len(changes) - 1} for n, c in enumerate(changes)]

    def versions_in(self, start: datetime, end: datetime) -> list[dict]:
        """The versions in force at some time in [start, end), oldest first."""
        versions = self.rule_versions()
        return [v for n, v in enumerate(versions)
                if v["at"] < end and (n + 1 == len(versions) or versions[n + 1]["at"] > start)]

    def month_decisions(self, service: str, start: datetime, end: datetime) -> list[dict]:
        """A service's decisions of a month (widened by SPAN_MARGIN, since each target takes
        the month in its own timezone), and every retraction: what a report reads."""
        store = self.state.store
        decisions = list(every(store.list_decisions, service=service, since=start - SPAN_MARGIN,
                               until=end + SPAN_MARGIN))
        return decisions + list(every(store.list_decisions, service=service, kind="retracted"))
