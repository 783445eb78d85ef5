"""An engine's whole state as plain data, to compare two engines or one before and after."""
from __future__ import annotations

import json
import zlib

import durable_rules_engine
import orjson

from engine.eval.engine import Engine


def durable_memory(engine: Engine) -> list[list[str]]:
    """The facts each durable_rules ruleset of the engine holds, as sorted JSON texts."""
    return [sorted(json.dumps(f, sort_keys=True) for f in json.loads(durable_rules_engine.get_facts(r.handle, "0")))
            for network in engine.context.network.networks for r in network.rulesets]


def state_of(engine: Engine) -> dict:
    """Everything the engine changes: its snapshot (the schedule as the set of its entries),
    the running and finished clocks, and what durable_rules holds."""
    body = orjson.loads(zlib.decompress(engine.snapshot()))
    body["heap"] = sorted(map(tuple, body["heap"]))
    book = engine.state.book
    body.update(live=sorted(book.live), finished=sorted(book.finished), durable=durable_memory(engine))
    return body
