"""The owner's side of facts that API nodes stored (engine.service.intake): evaluated in
the order they were stored, each settled in the same transaction as what it decided.

The owner wakes when an API node tells it that facts wait (``NOTIFY slm_facts``, on
PostgreSQL) and polls every second in case a notification was lost. Each round takes the
oldest pending facts of its partition, under the write lock, and writes them as one group
commit does: the decisions they caused, the deadlines due by the wall clock, each fact's
place in the log (``pseq``). A fact the engine cannot evaluate is set aside and marked
refused, with why: it was acknowledged, so it stays on record, but it never enters the log.

Runs for as long as this process owns the partition (a tenure); a step-down stops it, and
what it left pending is the next owner's.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from engine.service.ingestion import FactIngestion
from engine.service.keeper import EngineKeeper
from engine.service.recorder import DecisionRecorder
from engine.service.state import NotReady, ServiceState
from engine.store.connection import one_line
from engine.store.facts import FACTS_CHANNEL
from engine.store.listen import Listener
from engine.store.store import DatabaseUnavailable, LeaseLost

log = logging.getLogger("slm.service")

POLL_SECONDS = 1.0     # a notification may be lost: look again at least this often
BATCH = 500            # facts evaluated per transaction


class Backlog:
    """Evaluates the facts API nodes stored, while this process owns the partition."""

    def __init__(self, state: ServiceState, keeper: EngineKeeper, ingestion: FactIngestion,
                 recorder: DecisionRecorder, *, wake: Callable[[], None], batch: int = BATCH):
        self.state, self.keeper, self.ingestion, self.recorder = state, keeper, ingestion, recorder
        self.wake = wake                        # tells the deadline scheduler to look again
        self.batch = batch
        self.evaluated = 0                      # facts settled by this process
        self.refused = 0                        # facts its engine could not evaluate
        self._stop = threading.Event()
        self._listener: Listener | None = None

    def drain(self) -> int:
        """Evaluate one batch of pending facts; how many were taken (0: none waited)."""
        state = self.state
        if not state.store.pending_facts(limit=1):      # most rounds: nothing, and no lock taken
            return 0
        with state.write_lock, self.keeper.guarded():
            pending = state.store.pending_facts(limit=self.batch)
            if not pending:
                return 0
            job = self.ingestion.evaluate_stored(pending)
            if job.error is not None:
                raise job.error
            if job.set_aside:
                why = {pending[position][0]: "; ".join(reason for reasons in problems.values() for reason in reasons)
                       for position, problems in job.set_aside.items()}
                state.store.refuse_pending(why)
                self.refused += len(why)
                log.warning("%d stored facts could not be evaluated and were marked refused: %s", len(why),
                            "; ".join(f"seq {seq}: {reason}" for seq, reason in list(why.items())[:3]))
            state.publish()
        self.evaluated += len(pending) - len(job.set_aside)
        self.wake()
        if job.result is not None:
            self.recorder.announce(job.result)
        return len(pending)

    def run(self) -> None:
        """Drain, then wait for a notification or the poll; until :meth:`stop`."""
        self._stop.clear()
        self._listener = listener = Listener(self.state.store.db, (FACTS_CHANNEL,))
        try:
            while not self._stop.is_set():
                try:
                    while self.drain() and not self._stop.is_set():
                        pass
                except (NotReady, LeaseLost):
                    return                       # stood by: the next owner evaluates what is left
                except DatabaseUnavailable as err:
                    log.warning("evaluating stored facts paused, the database is unreachable: %s", one_line(err))
                except Exception:
                    log.exception("evaluating stored facts failed; trying again")
                listener.wait(POLL_SECONDS)
        finally:
            listener.close()

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
