"""Undoing a write: the engine's state as it was before a fact that failed in it.

While a write is in progress (:meth:`engine.eval.engine.Engine.begin`) every change to the
engine's state leaves its inverse in a :class:`Journal`: a clock record is copied before
its first change (:func:`engine.eval.book.record_image`), a fact durable_rules holds is
retracted again, one it let go of is asserted again, an entry put in or taken out of the
state's maps and sets is taken out or put back. Rolling back to a mark runs the inverses
newest first, so the engine stands exactly where it stood at the mark, and what
durable_rules holds is what the state says it holds. It costs what the write touched,
never the size of the state.

What cannot be undone is said by :class:`Irreversible`: durable_rules failed inside its
own memory (anything but refusing a fact's text before reading it into memory), so what
it holds is not known; the caller then rebuilds the engine from the store.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, MutableMapping, MutableSet
from typing import Any

Inverse = Callable[[], object]        # what it returns is not used
_MISSING: Any = object()


class Irreversible(RuntimeError):
    """The engine cannot be rolled back exactly: it must be rebuilt."""


class Journal:
    """The inverses of the changes made since the write began, newest last."""

    def __init__(self) -> None:
        self._inverses: list[Inverse] = []
        self._kept: set[int] = set()        # ids of objects copied since the last mark

    def mark(self) -> int:
        """A place to roll back to (objects are copied afresh after it)."""
        self._kept = set()
        return len(self._inverses)

    def undo(self, inverse: Inverse) -> None:
        """Run ``inverse`` if the write is rolled back past this point."""
        self._inverses.append(inverse)

    def keep(self, obj: object, image: Callable[[], Inverse]) -> None:
        """Before ``obj`` first changes after the last mark: ``image()`` copies what it is
        and gives what puts that back."""
        if id(obj) not in self._kept:
            self._kept.add(id(obj))
            self._inverses.append(image())

    def made(self, obj: object) -> None:
        """``obj`` was made after the last mark, and what undoes its making takes it away
        whole: its changes until the next mark need no copy of it."""
        self._kept.add(id(obj))

    def rollback(self, mark: int) -> None:
        """Undo every change made since ``mark``, newest first."""
        self._kept = set()
        inverses = self._inverses
        while len(inverses) > mark:
            inverses.pop()()

    # -- the inverses of the common changes ----------------------------------------------
    def put(self, mapping: MutableMapping[Any, Any], key: Hashable) -> None:
        """``mapping[key]`` is about to be set or deleted: undo puts back what it was."""
        old = mapping.get(key, _MISSING)
        self._inverses.append(lambda: _set(mapping, key, old))

    def copied(self, mapping: MutableMapping[Any, Any], key: Hashable) -> None:
        """``mapping[key]``, a container, is about to change in place (or go): undo puts back
        a copy of it as it is now."""
        old = mapping.get(key, _MISSING)
        copy = old if old is _MISSING else old.copy()
        self._inverses.append(lambda: _set(mapping, key, copy))

    def appended(self, mapping: MutableMapping[Any, Any], key: Hashable) -> None:
        """A value is about to be appended to ``mapping.setdefault(key, [])``: undo takes
        it off again, and the key if it is new."""
        existed = key in mapping

        def inverse() -> None:
            mapping[key].pop()
            if not existed:
                del mapping[key]
        self._inverses.append(inverse)

    def add(self, members: MutableSet[Any], item: Hashable) -> None:
        """``item`` is about to be added to ``members``: undo takes it out if it was new."""
        if item not in members:
            self._inverses.append(lambda: members.discard(item))


def _set(mapping: MutableMapping[Any, Any], key: Hashable, value: Any) -> None:
    if value is _MISSING:
        mapping.pop(key, None)
    else:
        mapping[key] = value
