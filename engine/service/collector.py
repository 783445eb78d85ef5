"""The cyclic garbage collector held off while the engine evaluates.

Evaluation makes no cyclic garbage (docs/BENCHMARKS.md, "Ingest over HTTP", item 3): what
a write allocates is freed by reference counting. But it allocates a great deal, and each
allocation counts towards the collector's thresholds, so during a batch of 1,000 facts, or
a replay of thousands, collections run again and again and walk everything made since the
heap was last frozen (and the undo journal of the write, which lives until it ends): in
process that was a third of a batch's evaluation and a fifth of a replay's. While a write
or a replay runs, the collector is therefore off; the collections it missed run when it is
back (at the next allocation past the threshold), once.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holding = 0                 # writes and replays in progress that hold it off


@contextmanager
def collector_held() -> Iterator[None]:
    """Hold the cyclic collector off for the block (nested or from several threads: it
    comes back when the last block ends, if it was on when the first began)."""
    global _holding
    with _lock:
        if _holding == 0 and not gc.isenabled():
            outer = True                    # off already (by someone else): leave it be
        else:
            outer = False
            _holding += 1
            gc.disable()
    try:
        yield
    finally:
        if not outer:
            with _lock:
                _holding -= 1
                if _holding == 0:
                    gc.enable()
