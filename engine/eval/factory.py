"""Making clocks for targets: their definitions, marks and clock conditions, computed once
per target and shared by every clock of it.

Each cache keeps the target beside what was computed from it, so the target outlives the
entry and its ``id`` cannot be reused by another object while the entry is there.
"""
from __future__ import annotations

from datetime import timedelta

from engine.eval.budget import BudgetClock, budget_spec
from engine.eval.clock import Bounds, Clock, Definition, DurationClock, Marks, WindowClock, marks_for
from engine.eval.compiler import Conditions, Fact, conditional_roles, unconditional_roles
from engine.eval.network import running_data
from engine.lang.calendar import Calendar
from engine.lang.model import Target
from schemas.values import DeadlineGoal


class ClockFactory:
    """Clocks as the engine makes them, and what they are made of."""

    def __init__(self) -> None:
        self._marks: dict[tuple[int, timedelta], tuple[Target, Marks]] = {}
        self._definitions: dict[int, tuple[Target, Definition]] = {}
        self._conditions: dict[int, tuple[Target, Conditions]] = {}
        self._running: dict[int, tuple[Target, Fact]] = {}

    def make(self, target: Target, bounds: Bounds | None) -> Clock:
        """A fresh clock of ``target``: a duration clock, or one for the window ``bounds``."""
        definition = self.definition(target)
        if bounds is None:
            return DurationClock(definition)
        return BudgetClock(definition, bounds) if target.budget_clock else WindowClock(definition, bounds)

    def definition(self, target: Target) -> Definition:
        """What the target's clocks count by."""
        found = self._definitions.get(id(target))
        if found is None:
            roles = unconditional_roles(target.spec) if target.measure == "duration" else {}
            chosen: dict[str, Calendar] = {c.id: c for c in (target.calendar, *target.calendars.values())} \
                if target.calendar_by else {}
            definition = Definition(target.calendar, target.goal, lambda budget: self.marks(target, budget), roles,
                                    target.valid_span(), chosen,
                                    budget_spec(target) if target.budget_clock else None,
                                    target.spec.get("cycles", "once"))
            found = self._definitions[id(target)] = (target, definition)
        return found[1]

    def marks(self, target: Target, budget: timedelta) -> Marks:
        """A target's marks for a budget (a window's budget follows its service time). A
        deadline goal's budgets differ with every start: their marks are made, not kept."""
        if isinstance(target.goal, DeadlineGoal):
            return marks_for(budget, target.warn_at, target.escalations)
        key = (id(target), budget)
        found = self._marks.get(key)
        if found is None:
            found = self._marks[key] = (target, marks_for(budget, target.warn_at, target.escalations))
        return found[1]

    def conditions(self, target: Target) -> Conditions:
        """Fact type → (role, where) of the target's clock conditions written as patterns:
        checked on each fact (engine.lang.where), as durable_rules matches by type alone."""
        found = self._conditions.get(id(target))
        if found is None:
            found = self._conditions[id(target)] = (target, conditional_roles(target.spec))
        return found[1]

    def running_data(self, target: Target) -> Fact:
        """What a ``clock.running`` fact of the target's clocks says of it (engine.eval.network
        ``running_data``): fixed per target, copied into each such fact."""
        found = self._running.get(id(target))
        if found is None:
            found = self._running[id(target)] = (target, running_data(target))
        return found[1]
