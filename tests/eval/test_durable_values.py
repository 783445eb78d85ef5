"""Every value the fact schema lets into ``data`` is one durable_rules reads and gives back
exactly (issue 20, item 9): durable_rules' parser reads an exponent only after a fraction
and an integer only as 64 bits, so the engine writes floats with a fraction and the schema
refuses larger integers; nothing valid can fail inside the engine for its numbers."""
from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from engine.eval.durable import DurableNetwork
from schemas.facts import MAX_INTEGER, MIN_INTEGER, FactData

RULES = {"values": {"seen": {"all": [{"m": {"type": "probe.value"}}]},
                    "large": {"all": [{"m": {"$and": [{"type": "probe.number"}, {"$gte": {"v": 1.0}}]}}]}}}

scalars = (st.none() | st.booleans() | st.integers(MIN_INTEGER, MAX_INTEGER)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(exclude_categories=["Cs"],
                                                                                     exclude_characters="\x00")))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                                                max_size=8), inner, max_size=4), max_leaves=12)
network = DurableNetwork(RULES)
ids = itertools.count()


@settings(max_examples=300, deadline=None)
@given(values)
def test_what_the_schema_accepts_durable_rules_gives_back_exactly(value):
    try:
        data = FactData().deserialize({"v": value})
    except ValidationError:
        return
    matches, held = network.assert_fact({"id": f"f{next(ids)}", "type": "probe.value", "data": data})
    assert matches is not None
    (name, payload), = matches
    assert payload["m"]["data"] == data
    network.retract_fact(held)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(MIN_INTEGER, MAX_INTEGER))
def test_numbers_compare_in_durable_rules_as_in_python(number):
    matches, held = network.assert_fact({"id": f"n{next(ids)}", "type": "probe.number", "v": number})
    assert (matches is not None) == (number >= 1.0)
    network.retract_fact(held)
