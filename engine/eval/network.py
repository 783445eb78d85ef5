"""The engine's durable_rules networks: what is compiled, what is posted, what is held,
and the queue of matches waiting to be handled.

Two networks per rule set: one for targets (it holds no fact: no target joins) and one
for Rules (it holds the facts their joins may still need, in ``EngineState.held``). This
module decides what to post and keep; engine.eval.durable knows how durable_rules is
driven. They stay apart: that one is about durable_rules' C core, this one about the
engine's rules.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from engine.eval.compiler import (
    RULESET,
    Definition,
    Fact,
    Pattern,
    allows,
    compile_ruleset,
    join_filter,
    matched_types,
    retained_types,
    string_tests,
    typed_patterns,
)
from engine.eval.durable import DurableNetwork, Match, Payload
from engine.eval.undo import Journal
from engine.lang.model import RuleSet, Target

Handler = Callable[[str, Payload], None]


class MatchNetwork:
    """The compiled rules of the version in force (plus what earlier versions' running
    clocks need), and the matches they found, handled in phase order."""

    # Set while a write is in progress (engine.eval.undo): a fact kept in durable_rules is
    # retracted again on a rollback, one taken out is asserted again.
    journal: Journal | None = None

    def __init__(self, ruleset: RuleSet, carried: list[tuple[str, Target]], phase: Callable[[str], int],
                 handle: Handler):
        """``phase(match name)``: the order in which one fact's matches are handled;
        ``handle(name, payload)``: what :meth:`drain` does with each."""
        self._phase = phase
        self._handle = handle
        self._queue: deque[Match] = deque()
        self._orders: dict[str, tuple[int, str]] = {}
        definition, targets, rules = _compiled(ruleset, carried)
        self._targets = DurableNetwork({RULESET: targets})
        self._rules = DurableNetwork({RULESET + "_rules": rules})
        self._rule_specs = rules
        self._derive(ruleset, definition)

    def compile(self, ruleset: RuleSet, carried: list[tuple[str, Target]], keep_rules: bool = False) -> bool:
        """Build the networks again for ``ruleset`` plus the signal and lifecycle rules of
        the ``carried`` (version, target) whose clocks still run; whether the Rules' network
        is new. ``keep_rules``: keep the Rules' network, and what it holds, when the Rules
        compile as they did (a rule change that touches targets only)."""
        definition, targets, rules = _compiled(ruleset, carried)
        self._targets.close()
        self._targets = DurableNetwork({RULESET: targets})
        renewed = not (keep_rules and rules == self._rule_specs)
        if renewed:
            self._rules.close()
            self._rules = DurableNetwork({RULESET + "_rules": rules})
            self._rule_specs = rules
        self._derive(ruleset, definition)
        return renewed

    def _derive(self, ruleset: RuleSet, definition: Definition) -> None:
        """What the engine asks of the rules before and after matching."""
        self.matched = matched_types(definition)        # None: any type may match
        self.retained = retained_types(ruleset)          # types a join may need later
        self.may_join = join_filter(ruleset)
        self.joined_clocks = _clocks_a_rule_may_join(ruleset, definition)

    @property
    def networks(self) -> tuple[DurableNetwork, DurableNetwork]:
        """The durable_rules networks of the targets and of the Rules, as compiled now."""
        return self._targets, self._rules

    @property
    def shards(self) -> tuple[int, int]:
        """How many durable_rules rulesets the targets and the Rules took (see engine.eval.durable)."""
        targets, rules = self.networks
        return len(targets.rulesets), len(rules.rulesets)

    @property
    def busy(self) -> bool:
        """Matches are waiting: the engine is in the middle of evaluating."""
        return bool(self._queue)

    @property
    def damaged(self) -> bool:
        """A call failed inside durable_rules' memory (engine.eval.durable): what it holds
        may not be what ``held`` says."""
        return self._targets.damaged or self._rules.damaged

    def discard(self) -> None:
        """Drop the matches still waiting (an evaluation that failed half-way)."""
        self._queue.clear()

    def posts(self, fact_type: str) -> bool:
        """Could a fact of this type match anything? (No rule names it: it cannot.)"""
        return self.matched is None or fact_type in self.matched

    def post(self, fact: Fact, held: dict[str, Fact]) -> None:
        """Assert a fact; queue its matches; keep it in ``held`` if a join may need it later.

        A fact no rule could match is not posted; one durable_rules did not handle is not
        in its memory, so there is nothing to retract; one that no join could ever use is
        retracted at once.
        """
        if not self.posts(fact["type"]):
            return
        fact_type = fact["type"]
        matches, _ = self._targets.assert_fact(fact)      # holds nothing: no target joins
        rules = self._rules
        keep = fact_type in self.retained and self.may_join(fact)
        found, kept = rules.assert_fact(fact, keep)       # (not kept: retracted there)
        if found is not None:
            matches = (matches or []) + found
            if keep:
                if self.journal is not None:
                    self.journal.put(held, fact["id"])
                    self.journal.undo(lambda: rules.retract_fact(kept))
                held[fact["id"]] = kept
        if matches:
            if len(matches) > 1:
                matches.sort(key=self._order)
            self._queue.extend(matches)

    def _order(self, match: Match) -> tuple[int, str]:
        """Where a match goes among one fact's matches: by phase, then by name."""
        name = match[0]
        found = self._orders.get(name)
        if found is None:
            found = self._orders[name] = (self._phase(name), name)
        return found

    def rehold(self, held: dict[str, Fact]) -> None:
        """Put the facts a join may still use back into a fresh durable_rules memory (after
        a state is restored, or the Rules changed). Their matches were acted on when first
        asserted: discarded."""
        rules = self._rules
        for key, fact in list(held.items()):
            _, held[key] = rules.assert_fact({**fact, "id": key})

    def retract(self, fact_id: str, held: dict[str, Fact]) -> None:
        """Take a fact out of durable_rules' memory, if it is there. (A retraction matches
        nothing: no rule negates.)"""
        fact = held.pop(fact_id, None)
        if fact is not None:
            rules = self._rules
            rules.retract_fact(fact)
            if self.journal is not None:
                self.journal.undo(lambda: _hold_again(rules, fact_id, fact, held))

    def drain(self) -> None:
        """Handle the waiting matches, and those handling them causes, in order."""
        while self._queue:
            name, payload = self._queue.popleft()
            self._handle(name, payload)

    def close(self) -> None:
        """Free what durable_rules holds for these networks (call when they are replaced)."""
        self._targets.close()
        self._rules.close()


def _compiled(ruleset: RuleSet, carried: list[tuple[str, Target]]) -> tuple[Definition, dict[str, Pattern],
                                                                              dict[str, Pattern]]:
    """(The whole definition, the targets' rules, the Rules' rules)."""
    definition = compile_ruleset(ruleset, carried)
    compiled = definition[RULESET]
    rules = {name: spec for name, spec in compiled.items() if name.startswith("rule:")}
    return definition, {n: s for n, s in compiled.items() if n not in rules}, rules


def _hold_again(rules: DurableNetwork, key: str, fact: Fact, held: dict[str, Fact]) -> None:
    """Put a retracted fact back into durable_rules' memory (rolling a write back), as
    :meth:`MatchNetwork.rehold` does: its matches were acted on when first asserted."""
    _, held[key] = rules.assert_fact({**fact, "id": key})


def running_data(target: Target) -> Fact:
    """What a ``clock.running`` fact says of its target, fixed for all its clocks."""
    return {"target": target.id, "agreement": target.agreement.id, "agreement_type": target.agreement.type,
            "measure": target.measure, "metric": target.spec.get("name") if target.measure == "threshold" else None}


def _clocks_a_rule_may_join(ruleset: RuleSet, definition: Definition) -> frozenset[str]:
    """The targets whose running clocks some Rule pattern on ``clock.running`` may match,
    judged from what the pattern requires of the fact's string fields that are fixed per
    target (target, agreement, agreement type, measure, metric, service)."""
    typed = typed_patterns(definition)
    if typed is None:                       # some pattern pins no type: it may match any clock
        return frozenset(ruleset.targets)
    patterns: Iterable[Fact] = [test for kind, test in typed if kind == "clock.running"]
    out = set()
    for target in ruleset.targets.values():
        probe = {"type": "clock.running", "service": target.service, "data": running_data(target)}
        if any(allows(probe, string_tests(test)) for test in patterns):
            out.add(target.id)
    return frozenset(out)
