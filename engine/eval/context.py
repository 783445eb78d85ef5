"""What the parts of one engine share while it evaluates.

The engine (engine.eval.engine) is a facade over modules with one job each: matches
(engine.eval.matches), clock transitions (engine.eval.transitions), the decisions they
issue (engine.eval.decisions), rule changes (engine.eval.cutover) and reads
(engine.eval.reads). They are plain functions over this one object, so none reaches into
another's privates: what changes is in ``state`` (what a snapshot saves), what is derived
from the rules is beside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from engine.eval.actions import RuleActions
from engine.eval.factory import ClockFactory
from engine.eval.network import MatchNetwork
from engine.eval.state import EngineState
from engine.eval.undo import Journal
from engine.lang.model import RuleSet
from schemas.records import Decision


@dataclass
class Outcome:
    """What one call decided, in the order it was decided."""

    decisions: list[Decision] = field(default_factory=list)
    duplicate: bool = False
    moved: int = 0          # clock transitions and Rule matches the fact itself caused (0: it matched nothing)


@dataclass
class Context:
    """One engine's rules, state and machinery, as its modules see them."""

    ruleset: RuleSet                      # the version in force
    versions: dict[str, RuleSet]          # every version known, those clocks still run under among them
    retain: timedelta | None              # forget a clock that finished this long ago (None: never)
    state: EngineState
    factory: ClockFactory = field(default_factory=ClockFactory)
    outcome: Outcome = field(default_factory=Outcome)    # of the call in progress
    journal: Journal | None = None        # the inverses of a write in progress (engine.eval.undo)
    # Made once the context exists, as what they call back into needs it (engine.eval.engine).
    network: MatchNetwork = field(init=False)
    actions: RuleActions = field(init=False)
