"""Firing the clocks' deadlines at the wall clock, each catch-up stored as a tick.

The engine runs in event time; the wall clock only decides when a deadline is due. What a
catch-up fires is stored with a tick that records how far it moved the engine's time, so a
replay stands where the live engine stood when the next fact came (engine.service.recovery).
"""
from __future__ import annotations

import logging
from datetime import datetime

from engine.service.keeper import EngineKeeper
from engine.service.recorder import DecisionRecorder, Ingested
from engine.service.state import ServiceState
from engine.store.store import LeaseLost
from schemas.records import Decision

log = logging.getLogger("slm.service")


class Deadlines:
    """Fires what is due (for a write in progress, or as a tick of its own) and says when
    the next deadline falls. Needs the engine: for the process that holds it."""

    def __init__(self, state: ServiceState, keeper: EngineKeeper, recorder: DecisionRecorder):
        self.state, self.keeper, self.recorder = state, keeper, recorder

    def fire_due(self) -> tuple[datetime | None, list[Decision]]:
        """Fire every deadline due by the wall clock: advance deadline by deadline (not
        straight to now), so a fact a few seconds late is only late for the engine if a
        deadline really fired in between. (The instant reached, if the engine's time
        moved; what was decided.) Under the write lock."""
        engine = self.state.engine
        assert engine is not None           # the start's rebuild set it, before any write
        now = self.state.now()
        reached = None
        decided: list[Decision] = []
        while (deadline := engine.next_deadline()) is not None and deadline <= now:
            decided += engine.advance(deadline).decisions
            reached = deadline
            if engine.next_deadline() == deadline:
                raise RuntimeError(f"the engine did not move past the deadline {deadline}")
        return reached, decided

    def catch_up(self, result: Ingested | None = None) -> None:
        """Fire what is due and store it. Every catch-up that moved the engine's time is
        stored as one tick, decisions or not: where the engine's time stood when the next
        fact came decides how that fact is reconciled, so a replay must stand there too.
        Under the write lock, inside a transaction."""
        reached, decided = self.fire_due()
        if reached is None:
            return
        state = self.state
        state.last_tick_seq = state.store.add_tick(state.last_fact_seq, reached)
        for record, notes in self.recorder.record(decided):
            if result is not None:
                result.decisions.append(record)
                result.notifications.extend(notes)

    def tick(self) -> Ingested:
        """Fire every deadline that is due by the wall clock; store what it decided."""
        state = self.state
        result = Ingested()
        if not state.ready.is_set():
            return result
        with state.write_lock:
            if not state.ready.is_set():            # stood by (or began rebuilding) meanwhile
                return result
            try:
                with self.keeper.guarded():
                    with state.store.transaction():
                        self.catch_up(result)
                    state.publish()
            except LeaseLost as lost:               # the keeper stood this process by: nothing to retry
                log.warning("a clock tick was not stored: %s", lost)
                return Ingested()
        self.recorder.announce(result)
        return result

    def next_deadline(self) -> datetime | None:
        """The engine's next deadline (None: none, or no engine yet); waits for the write lock."""
        with self.state.write_lock:
            engine = self.state.engine
            return engine.next_deadline() if engine else None
