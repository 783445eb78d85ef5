"""The sorted key sets of the clocks read model (engine.service.sortedkeys) hold exactly
the keys a plain set would, in order, and a change never shows in the set it came from."""
from __future__ import annotations

from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.service import sortedkeys
from engine.service.sortedkeys import EMPTY_KEYS, SortedKeys

keys = st.text(alphabet="abcde/-#0123", min_size=0, max_size=4)
changes = st.lists(st.tuples(st.booleans(), keys), max_size=120)


@contextmanager
def chunks_of(load: int):
    """Small chunks, so that a few dozen keys split and empty them as thousands would."""
    saved, sortedkeys.LOAD = sortedkeys.LOAD, load
    try:
        yield
    finally:
        sortedkeys.LOAD = saved


def check(found: SortedKeys, model: set[str]) -> None:
    assert list(found) == sorted(model)
    assert len(found) == len(model) and bool(found) == bool(model)
    for count in (0, 1, 3, 10, None):
        assert found.first(count) == sorted(model)[:count]
    for key in model:
        assert key in found
    assert "zzz" not in found
    assert ("" in found) == ("" in model)
    assert 7 not in found


@settings(max_examples=200, deadline=None)
@given(initial=st.lists(keys, max_size=60), rounds=st.lists(changes, max_size=5), load=st.sampled_from([1, 2, 3, 256]))
def test_changes_give_what_a_set_gives_and_leave_the_old_set_as_it_was(initial, rounds, load):
    with chunks_of(load):
        current, model = SortedKeys.of(initial), set(initial)
        check(current, model)
        for round_ in rounds:
            before, before_model = current, set(model)
            mutation = current.mutate()
            for adding, key in round_:
                if adding:
                    mutation.add(key)
                    model.add(key)
                else:
                    mutation.discard(key)
                    model.discard(key)
                assert len(mutation) == len(model)
            current = mutation.finish()
            check(current, model)
            check(before, before_model)            # shared chunks were copied, not changed


def test_keys_added_in_order_fill_chunks_from_the_end():
    with chunks_of(4):
        mutation = EMPTY_KEYS.mutate()
        for n in range(100):
            mutation.add(f"k{n:03}")
        found = mutation.finish()
    assert list(found) == [f"k{n:03}" for n in range(100)] and len(found) == 100
    assert all(len(chunk) <= 8 for chunk in found._chunks) and len(found._chunks) >= 100 // 8
    assert len(EMPTY_KEYS) == 0 and list(EMPTY_KEYS) == []
