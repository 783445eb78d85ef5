"""Rule changes: checked and previewed without touching the engine, put in force by a
cut-over that never rewrites the past (docs/RULES.md, "Rule changes")."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from engine.lang.loader import load_rules, load_texts
from engine.lang.model import RuleSet
from engine.service.deadlines import Deadlines
from engine.service.keeper import EngineKeeper
from engine.service.recorder import DecisionRecorder
from engine.service.state import ServiceState
from engine.service.whatif import PREVIEW_BOUNDS, default_period, what_if

log = logging.getLogger("slm.service")


class RuleChanges:
    """Checks, previews and puts in force the rules of ``rules_dir``. Checking and
    previewing read the store only; a reload and a cut-over need the engine."""

    def __init__(self, state: ServiceState, keeper: EngineKeeper, deadlines: Deadlines,
                 recorder: DecisionRecorder, rules_dir: str | Path, *, wake: Callable[[], None]):
        self.state, self.keeper, self.deadlines, self.recorder = state, keeper, deadlines, recorder
        self.rules_dir = Path(rules_dir)
        self.wake = wake                        # tells the deadline scheduler to look again
        self.held_seconds: float | None = None  # how long the last reload held writers back (bench/reload.py)

    def preview(self, files: dict[str, str], since: datetime | None = None,
                until: datetime | None = None) -> dict:
        """What uploaded rules would have decided over the stored history (RuleSetError if
        they do not load, ReplayLimit past :data:`PREVIEW_BOUNDS`); reads only, no lock."""
        ruleset = load_texts(files, root="upload")
        start, end = default_period(self.state.now())
        return what_if(self.state.store, ruleset, since or start, until or end, bounds=PREVIEW_BOUNDS)

    def check(self, files: dict[str, str], with_rules_in_force: bool = False) -> RuleSet:
        """Validate uploaded rule files without changing anything (RuleSetError if bad).

        ``with_rules_in_force``: the uploads are checked together with the rules in force,
        an upload replacing the file of the same path (relative to the rules directory), so
        one changed file can be checked against the calendars, RACI and escalations it
        relies on without uploading them all."""
        if with_rules_in_force:
            files = {**self.state.ruleset.files, **files}
        ruleset = load_texts(files, root="upload")
        self.state.scope.require_fit(ruleset)
        return ruleset

    def reload(self, by: str | None = None) -> RuleSet:
        """Load the rules directory and put it in force now; a bad set changes nothing.

        Nothing is replayed: the running clocks carry on under the version they started
        with (or take the new definition, as their targets say), so a reload holds writers
        back for what the running clocks cost (docs/RULES.md, "Rule changes"). ``by``: the
        name of the token that asked, recorded with the cut-over."""
        state = self.state
        ruleset = load_rules(self.rules_dir)
        state.scope.require_fit(ruleset)           # partitions: the map must still fit
        state.require_engine()
        with state.write_lock, self.keeper.guarded():
            held = time.perf_counter()
            assert state.engine is not None     # the start's rebuild set it, before any write
            if ruleset.version != state.engine.ruleset.version:
                self.cut_over(ruleset, by)
                self.keeper.settle_heap(released=True)    # the replaced network is garbage now
            state.ruleset = ruleset
            state.publish()
            self.held_seconds = time.perf_counter() - held    # how long writers waited
        self.wake()
        return ruleset

    def cut_over(self, ruleset: RuleSet, by: str | None) -> None:
        """Fire what is due, then put ``ruleset`` in force at the wall clock's now, after the
        last stored fact and tick, recorded as put in force by ``by``; the change and what
        it decided stored together. Under the write lock."""
        state, store = self.state, self.state.store
        with store.transaction():
            self.deadlines.catch_up()
            store.save_ruleset(ruleset.version, ruleset.files)
            at = state.now()
            assert state.engine is not None     # the start's rebuild set it, before any write
            decided = state.engine.cut_over(ruleset, at).decisions
            store.add_cutover(ruleset.version, at, state.last_fact_seq, state.last_tick_seq, by)
            self.recorder.record(decided)
        state.versions.add(ruleset)
        state.ruleset = ruleset
        log.info("rule set %s in force from %s", ruleset.version[:19], at.isoformat())
