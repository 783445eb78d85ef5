"""The share of a rule set one partition's engine runs (docs/SCALING.md §2, option (b)).

With a map of more than one partition, each Rule runs in exactly one place: a local Rule
in the partition of the facts it matches, a cross-partition (global) Rule in the
partition ``global``, which the others feed with their decisions of the kinds global
Rules match. A local engine that ran a global Rule would decide on its own share of the
facts (a count across services counting one partition's); the global engine that ran a
local Rule would decide it a second time. Targets, escalations and RACI stay in every
engine's share: in ``global`` they find no facts to start a clock on.
"""
from __future__ import annotations

import dataclasses
import threading

from engine.lang.errors import RuleSetError
from engine.lang.model import RuleSet
from engine.lang.partitions import GLOBAL, PartitionMap, check_against, classify_rules, global_kinds


class RuleScope:
    """What partition ``partition`` of ``pmap`` runs of each rule set version, and which
    decision kinds it feeds to ``global``; worked out once per version."""

    def __init__(self, pmap: PartitionMap, partition: str):
        self.pmap, self.partition = pmap, partition
        self._lock = threading.Lock()
        self._known: dict[str, tuple[RuleSet, frozenset[str]]] = {}

    @property
    def whole(self) -> bool:
        """One partition: every engine runs every Rule, and nothing is fed."""
        return self.pmap.is_single

    def __call__(self, ruleset: RuleSet) -> RuleSet:
        """The rule set as this partition's engine runs it (the same version)."""
        return self._share(ruleset)[0]

    def require_fit(self, ruleset: RuleSet) -> None:
        """RuleSetError if ``ruleset`` does not fit the map (check_against): a service the
        map names that it lacks, a cross-partition Rule ``global`` could never match."""
        problems = [] if self.whole else check_against(self.pmap, ruleset)
        if problems:
            raise RuleSetError(problems)

    def fed_kinds(self, ruleset: RuleSet) -> frozenset[str]:
        """The decision kinds this partition stores in ``global``'s log (none for ``global``)."""
        return self._share(ruleset)[1]

    def _share(self, ruleset: RuleSet) -> tuple[RuleSet, frozenset[str]]:
        if self.whole:
            return ruleset, frozenset()
        with self._lock:
            known = self._known.get(ruleset.version)
            if known is None:                 # a version is a hash of its files: its share never changes
                classes = classify_rules(ruleset, self.pmap)
                wanted = GLOBAL if self.partition == GLOBAL else "local"
                rules = {rule_id: rule for rule_id, rule in ruleset.rules.items()
                         if classes[rule_id].scope == wanted}
                packs = frozenset(a.id for a in ruleset.agreements.values() if a.review_pack is not None
                                  and self.pmap.partition_of(a.service) == self.partition)
                share = dataclasses.replace(ruleset, rules=rules, pack_agreements=packs)
                kinds = frozenset() if self.partition == GLOBAL else global_kinds(classes, ruleset)
                known = self._known[ruleset.version] = (share, kinds)
            return known


def has_global_rules(ruleset: RuleSet, pmap: PartitionMap) -> bool:
    """Whether some Rule of ``ruleset`` runs in the ``global`` partition under ``pmap``."""
    return not pmap.is_single and any(c.scope == GLOBAL for c in classify_rules(ruleset, pmap).values())
