"""The one place that talks to durable_rules: compiled rules in, matches out.

:class:`DurableNetwork` is the narrow interface the engine uses: ``assert_fact(fact)`` →
the matches it caused (and the fact as held, to retract it by), ``retract_fact(held)``.
Everything that knows how durable_rules' C core is built (its fixed table sizes, its
32-bit fact-id hash, the calls an action cycle takes, which of its failures leave its
memory as it was) lives here and nowhere else.
"""
from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence

import durable_rules_engine
import orjson
from durable.engine import MessageObservedException

from engine.eval.compiler import RULESET, Fact, Pattern, allows, matched_types, required_strings

Payload = dict[str, Fact]       # a match's facts by pattern alias ("m", or the Rule's aliases)
Match = tuple[str, Payload]     # (rule name, payload)
Result = Sequence[int]          # what durable_rules' assert and retract return: (status, state offset, ...)

# durable_rules' alpha network has fixed-size link tables (src/rules/rules.h, rete.c): a test
# node links at most NEXT_BUCKET_LENGTH (512) other tests, in an open-addressed hash set whose
# probes never stop once it is full (create_ruleset, and every fact that reaches the node, then
# loop for ever); NEXT_LIST_LENGTH (128) ``$nex`` tests or ``$or`` ends; BETA_LIST_LENGTH (256)
# rules ending on it. Rules are split over as many rulesets as keep every table below its size;
# the hash set to 480, as its probes start in its first 32 slots: a fact's every field is looked
# up there, and in a set filled past that, each lookup walks nearly all of it (at 10,000
# targets, 511 made facts 1.8 times slower).
_LINKS = {"next": 480, "nex": 127, "beta": 255}

# durable_rules reads a fact's text into an object before it touches its memory
# (src/rules/events.c, handleMessage: constructObject first): a fact refused with one of
# these codes (src/rules/rules.h: ERR_PARSE_*, and the property and size limits
# src/rules/state.c checks as it reads) changed nothing. Any other failure happened inside
# its memory, which is then not known (:attr:`DurableNetwork.damaged`).
_REFUSED_UNREAD = frozenset({201, 202, 203, 204, 205, 302, 313, 314})
_ERROR_CODE = re.compile(r"error code: (\d+)")


def _refused_unread(error: Exception) -> bool:
    found = _ERROR_CODE.search(str(error)) if isinstance(error, durable_rules_engine.error) else None
    return found is not None and int(found.group(1)) in _REFUSED_UNREAD


class _Shard:
    """The rules of one durable_rules ruleset, and the alpha network durable_rules will build
    for them, counted: the tests it shares (same parent, same test) and each node's links."""

    def __init__(self) -> None:
        self.rules: dict[str, Pattern] = {}
        self._nodes: dict[tuple[int, str], int] = {}          # (parent, test) -> node
        self._links: dict[tuple[int, str], int] = {}          # (node, kind of link) -> links
        self._ids = itertools.count(1)            # 0: the root every pattern starts from

    def take(self, name: str, spec: Pattern) -> bool:
        """Add the rule if every table stays within its size; say whether it was added."""
        nodes: dict[tuple[int, str], int] = {}
        links: dict[tuple[int, str], int] = {}

        def link(node: int, kind: str) -> None:
            links[node, kind] = links.get((node, kind), 0) + 1

        def alpha(test: Pattern, parent: int) -> int:        # as rete.c's createAlpha
            (op, value), = test.items()
            if op == "$and":
                for part in value:
                    parent = alpha(part, parent)
                return parent
            if op == "$or":                               # a node of its own, each branch linked to it
                forward = next(self._ids)
                for part in value:
                    link(alpha(part, parent), "nex")
                return forward
            key = (parent, json.dumps(test, sort_keys=True))
            found = self._nodes.get(key) or nodes.get(key)
            if found is None:
                found = nodes[key] = next(self._ids)
                link(parent, "nex" if op == "$nex" else "next")
            return found

        for condition in spec["all"]:
            (test,) = condition.values()
            link(alpha(test, 0), "beta")
        if any(self._links.get(key, 0) + count > _LINKS[key[1]] for key, count in links.items()):
            return False
        self._nodes.update(nodes)
        for key, count in links.items():
            self._links[key] = self._links.get(key, 0) + count
        self.rules[name] = spec
        return True


# durable_rules' session state (``"0"``, the only one the engine uses) holds every fact and
# frame the ruleset ever kept, and ``delete_ruleset`` does not free it: ~1.2 MB per 20 facts,
# lost with each engine replaced. ``delete_state`` frees it, but its C code frees the
# session's action context (two pointers) without knowing whether an action ever set them:
# ``createStateNode`` leaves them as ``malloc`` gave them, so a session that never ran an
# action has garbage there, and freeing it crashed the process now and then. Each ruleset
# therefore gets one rule of its own, and runs it once when it is made: after an action the
# context is set and then cleared to NULL, so ``delete_state`` is safe from then on.
_PRIMER_TYPE = "slm.session.primed"
_PRIMER_RULE = "slm_session_primer"
_PRIMER = {"all": [{"m": {"type": _PRIMER_TYPE}}]}


class _Ruleset:
    """One durable_rules ruleset, driven synchronously (see :class:`DurableNetwork`)."""

    def __init__(self, name: str, rules: dict[str, Pattern]):
        self.damaged = False                # a call failed inside durable_rules' memory
        plain = {rule: {k: v for k, v in spec.items() if k != "run"} for rule, spec in rules.items()}
        plain[_PRIMER_RULE] = _PRIMER
        self.handle: int | None = durable_rules_engine.create_ruleset(name, _json(plain))
        self._prime()
        self.types = matched_types({RULESET: rules})                     # None: any type
        self.required = required_strings({RULESET: rules}) or {}
        self.joins = matched_types({RULESET: {r: s for r, s in rules.items() if len(s["all"]) > 1}})

    def posts(self, fact_type: str) -> bool:
        return self.types is None or fact_type in self.types

    def may_match(self, fact: Fact) -> bool:
        """False when the fact has a string where all this ruleset's patterns for its type
        need another (see :func:`required_strings`): asking would find nothing."""
        return allows(fact, self.required.get(fact["type"], {}).items())

    def _prime(self) -> None:
        """Create the session and run one action in it (see ``_PRIMER``), leaving nothing held."""
        primer = {"id": _PRIMER_TYPE, "type": _PRIMER_TYPE}
        if self.outcome(self.assert_fact(primer)) != [(_PRIMER_RULE, {"m": primer})]:
            raise RuntimeError("durable_rules did not run the session primer")
        durable_rules_engine.retract_fact(self.handle, _json(primer))

    def close(self) -> None:
        """Free the session state, then the ruleset (each is kept until deleted)."""
        if self.handle is not None:
            durable_rules_engine.delete_state(self.handle, "0")
            durable_rules_engine.delete_ruleset(self.handle)
            self.handle = None

    def holds(self, fact_type: str) -> bool:
        """Could a join of this ruleset need a fact of this type later?"""
        return self.joins is None or fact_type in self.joins

    def assert_fact(self, fact: Fact) -> Result:
        return self.assert_text(_json(fact))

    def assert_text(self, text: str) -> Result:
        """Assert a fact given as the JSON durable_rules reads (:func:`_json`)."""
        try:
            result: Result = durable_rules_engine.assert_fact(self.handle, text)
        except Exception as error:
            self.damaged = self.damaged or not _refused_unread(error)
            raise
        return result

    def retract_fact(self, fact: Fact) -> list[Match] | None:
        return self.retract_text(_json(fact))

    def retract_text(self, text: str) -> list[Match] | None:
        """Retract a fact given as the JSON it was asserted as."""
        try:
            result = durable_rules_engine.retract_fact(self.handle, text)
        except Exception:
            self.damaged = True
            raise
        return self.outcome(result)

    def outcome(self, result: Result) -> list[Match] | None:
        if result[0] == 1:
            return None
        try:
            return self._actions(0 if result[0] == 3 else result[1])
        except Exception:               # actions left queued, or half taken
            self.damaged = True
            raise

    def _actions(self, state_offset: int) -> list[Match]:
        matches: list[Match] = []
        started = durable_rules_engine.start_action_for_state(self.handle, state_offset)
        if not started:
            return matches
        state, message = started
        while message:
            matches.append(next(iter(orjson.loads(message).items())))
            durable_rules_engine.update_state(self.handle, state)
            message = durable_rules_engine.complete_and_start_action(self.handle, state_offset)
        return matches


class DurableNetwork:
    """The compiled rules as durable_rules rulesets, driven synchronously: assert or retract a
    fact, get back the matches it caused as ``(rule name, payload)``, in durable_rules' own
    order within a ruleset.

    One ruleset when durable_rules' tables allow (see ``_LINKS``), else several, each rule
    whole in one of them (the first it fits in); a fact goes to those whose rules name its
    type, and stays only in those whose joins may need it.

    This is what durable_rules' ``Host.assert_fact``/``retract_fact`` do for a ruleset whose
    actions only record their match, over the same extension calls (assert, start the
    state's actions, update the state, complete and start the next), less the Host's
    per-call machinery the engine never uses: background timer threads, action leases,
    closures, an exception that serialises the whole fact to JSON when nothing matched,
    and decoding then re-encoding the session state around every action. Each payload is
    decoded afresh from durable_rules' JSON, so the engine may keep it without copying.

    durable_rules knows a fact in its memory by a 32-bit hash of its ``id`` alone: a new
    fact whose id hashes like a held one's is refused as "already observed" (nothing else
    changes), and with tens of thousands of facts held that happens. The engine's ids are
    its own (rules read ``fid``), so such a fact is asserted again under a suffixed id.
    """

    def __init__(self, definition: dict[str, dict[str, Pattern]]):
        (name, rules), = definition.items()
        shards = [_Shard()]
        for rule, spec in rules.items():
            if not any(shard.take(rule, spec) for shard in shards):
                shards.append(_Shard())
                if not shards[-1].take(rule, spec):
                    raise ValueError(f"{rule}: too many tests for durable_rules in one rule")
        self.rulesets = [_Ruleset(name if n == 0 else f"{name}_{n}", shard.rules)
                         for n, shard in enumerate(shards)]
        self._routes: dict[str, list[_Ruleset]] = {}

    @property
    def damaged(self) -> bool:
        """A call failed inside durable_rules' memory: what it holds is not known."""
        return any(ruleset.damaged for ruleset in self.rulesets)

    def _route(self, fact: Fact) -> list[_Ruleset]:
        """The rulesets a fact could match in: those naming its type; of several, only
        those its string fields allow (each pattern of a ruleset lives in one of them)."""
        fact_type = fact["type"]
        if fact_type not in self._routes:
            self._routes[fact_type] = [r for r in self.rulesets if r.posts(fact_type)]
        candidates = self._routes[fact_type]
        if len(candidates) == 1:
            return candidates
        return [r for r in candidates if r.may_match(fact)]

    def assert_fact(self, fact: Fact, keep: bool = True) -> tuple[list[Match] | None, Fact]:
        """(The matches, or None when durable_rules did not handle the fact and so keeps
        nothing of it; the fact as durable_rules holds it, to retract it by.)

        ``keep=False``: the caller would retract the fact at once if it matched anything
        (no join needs it): it is retracted here, from the text it was asserted as, rather
        than encoded again for :meth:`retract_fact`."""
        held, fact_type = fact, fact["type"]
        for attempt in range(1, 100):
            routed = self._route(fact)
            if not routed:
                return None, held
            text = _json(held)                           # encoded once for every ruleset and retraction
            results: list[tuple[_Ruleset, Result]] = []
            for ruleset in routed:
                try:
                    result = ruleset.assert_text(text)
                except Exception:                        # refused: out of the others again
                    _take_back(results, text)
                    raise
                if result[0] == 2:                       # refused: out of all, again as another id
                    _take_back(results, text)
                    break
                results.append((ruleset, result))
            else:
                matches = None
                for ruleset, result in results:
                    found = ruleset.outcome(result)
                    if found is not None:
                        matches = (matches or []) + found
                    if not ruleset.holds(fact_type):
                        ruleset.retract_text(text)
                if not keep and matches is not None:     # as retract_fact(held) would
                    for ruleset, _ in results:
                        if ruleset.holds(fact_type):
                            ruleset.retract_text(text)
                return matches, held
            held = {**fact, "id": f"{fact['id']}~{attempt}"}
        raise MessageObservedException(fact)

    def retract_fact(self, held: Fact) -> None:
        text = None
        for ruleset in self._route(held):
            if ruleset.holds(held["type"]):
                text = text or _json(held)
                ruleset.retract_text(text)

    def close(self) -> None:
        """Free durable_rules' memory of these rulesets and the facts they hold (it keeps
        both until they are deleted: ~80 MB for the shipped rules with a large state)."""
        for ruleset in self.rulesets:
            ruleset.close()


def _take_back(results: list[tuple[_Ruleset, Result]], text: str) -> None:
    """Take a fact (as asserted: its JSON) back out of the rulesets that took it; its
    matches are dropped, not left queued."""
    for taken, earlier in results:
        taken.outcome(earlier)
        taken.retract_text(text)


def _json(fact: Fact) -> str:
    """The fact as durable_rules reads it. orjson is ~5x faster than json here (every fact
    and every re-entering decision passes through); what it refuses (integers beyond 64
    bits) falls back to json. durable_rules' parser reads an exponent only after a
    fraction (``1.0e-7``, not ``1e-7``: src/rules/json.c, getNumber), so a float written
    without one is written again with it."""
    try:
        text = orjson.dumps(fact)
        if _BARE_EXPONENT.search(text):            # rare: only then is the fact walked
            text = orjson.dumps(_with_fractions(fact))
    except TypeError:                              # the fact schema refuses such integers
        return json.dumps(fact, ensure_ascii=False)
    return text.decode()


_BARE_EXPONENT = re.compile(rb"[:,\[]-?[0-9]+[eE]")   # may also match inside a string: harmless


def _with_fractions(value: object) -> object:
    """``value`` with each float that JSON would write as ``1e-07`` written as ``1.0e-07``."""
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text:
            return orjson.Fragment(text.replace("e", ".0e", 1))
        return value
    if isinstance(value, dict):
        return {key: _with_fractions(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_fractions(item) for item in value]
    return value
