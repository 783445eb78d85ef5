"""A clock as plain data and back: what a snapshot holds of each clock, and what a rolling
budget keeps of its settled past (engine.eval.settle). The clock's definition is not
part of it: it is bound again from the rule set on load."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from engine.eval.clock import Clock

US = timedelta(microseconds=1)


def saved_instant(value: datetime | None) -> str | None:
    """An instant as a snapshot keeps it: Python's own ISO form."""
    return None if value is None else value.isoformat()


def loaded_instant(value: str | None) -> datetime | None:
    """What :func:`saved_instant` wrote (never input from outside)."""
    return None if value is None else datetime.fromisoformat(value)


def clock_out(clock: Clock) -> dict[str, Any]:
    """The clock's state as JSON-ready data (its window included, to make it again)."""
    saved: dict[str, Any] = {
        "cycle": clock.cycle, "counted_before": clock.counted_before // US,
        "running_since": saved_instant(clock.running_since), "paused_total": clock.paused_total // US,
        "halted_at": saved_instant(clock.halted_at), "fired": sorted(map(list, clock.fired), key=str),
        "breached": clock.breached, "because": clock.because,
        "pending": None if clock.pending is None else
        [[amount // US, order, repeat, position] for amount, order, repeat, position, _ in clock.pending],
    }
    window = clock.window
    if window is not None:
        saved["window"] = [saved_instant(window.start), saved_instant(window.end), window.label]
    saved.update(clock.own_state())
    return saved


def clock_in(clock: Clock, saved: dict[str, Any]) -> None:
    """Give a fresh clock of the same target and window the state :func:`clock_out` gave."""
    clock.cycle = saved["cycle"]
    clock.counted_before = timedelta(microseconds=saved["counted_before"])
    clock.running_since = loaded_instant(saved["running_since"])
    clock.paused_total = timedelta(microseconds=saved["paused_total"])
    clock.halted_at = loaded_instant(saved["halted_at"])
    clock.fired = {tuple(f) for f in saved["fired"]}
    clock.breached = saved["breached"]
    clock.because = list(saved["because"])
    clock.load_own_state(saved)                  # first: a deadline cycle's marks are priced here
    if saved["pending"] is None:
        clock.pending = None
    else:
        clock.pending = [(timedelta(microseconds=a), order, repeat, position, clock.marks[position])
                         for a, order, repeat, position in saved["pending"]]
