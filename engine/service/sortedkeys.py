"""An immutable sorted set of strings that a change copies only a little of.

The clocks read model (engine.service.clockview) serves pages of clocks in key order, of
all clocks or of one service, target or subject, and publishes a new view after every
write. Kept as one sorted tuple, every publish would copy each index it touches (a
service of 6,600 clocks: 6,600 references per write); kept unsorted, every read would
sort it. Here the keys are held in sorted chunks of at most ``2 * LOAD``: a change copies
the chunks it touches and the tuple of chunks, and the first ``n`` keys are read from the
first chunks, so a page of ten costs about ten keys. (sortedcontainers' SortedList is
chunked alike but changes in place: a view readers hold must never change, and copying
it whole per write is what this avoids.)
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from itertools import islice

LOAD = 256                     # chunks hold LOAD..2*LOAD keys after a split (fewer after removals)


class SortedKeys:
    """Sorted, immutable, shared freely between views; change it through :meth:`mutate`."""

    __slots__ = ("_chunks", "_maxes", "_size")

    def __init__(self, chunks: tuple[tuple[str, ...], ...] = (), size: int = 0):
        self._chunks = chunks
        self._maxes = tuple(chunk[-1] for chunk in chunks)
        self._size = size

    @classmethod
    def of(cls, keys: Iterable[str]) -> SortedKeys:
        """The set of ``keys`` (any order, duplicates allowed)."""
        ordered = sorted(set(keys))
        chunks = tuple(tuple(ordered[at:at + LOAD]) for at in range(0, len(ordered), LOAD))
        return cls(chunks, len(ordered))

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[str]:
        for chunk in self._chunks:
            yield from chunk

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        at = bisect_left(self._maxes, key)
        if at == len(self._chunks):
            return False
        chunk = self._chunks[at]
        found = bisect_left(chunk, key)
        return found < len(chunk) and chunk[found] == key

    def first(self, count: int | None = None) -> list[str]:
        """The first ``count`` keys in order (all of them for None)."""
        return list(self) if count is None else list(islice(self, count))

    def mutate(self) -> SortedKeysMutation:
        return SortedKeysMutation(self)

    def __repr__(self) -> str:
        return f"SortedKeys({self.first(5)!r}{'…' if self._size > 5 else ''}, size={self._size})"


EMPTY_KEYS = SortedKeys()


class SortedKeysMutation:
    """Changes to a :class:`SortedKeys` made in place, each chunk copied at most once;
    :meth:`finish` gives the new set and leaves the one it started from as it was."""

    def __init__(self, base: SortedKeys):
        self._chunks: list[tuple[str, ...] | list[str]] = list(base._chunks)
        self._maxes: list[str] = list(base._maxes)
        self._owned: list[bool] = [False] * len(self._chunks)
        self._size = base._size

    def __len__(self) -> int:
        return self._size

    def _own(self, at: int) -> list[str]:
        chunk = self._chunks[at]
        if not self._owned[at]:
            chunk = self._chunks[at] = list(chunk)
            self._owned[at] = True
        assert isinstance(chunk, list)
        return chunk

    def add(self, key: str) -> None:
        if not self._chunks:
            self._chunks, self._maxes, self._owned, self._size = [[key]], [key], [True], 1
            return
        at = bisect_left(self._maxes, key)
        if at == len(self._chunks):
            at -= 1                                   # past every key: onto the last chunk
        else:
            chunk = self._chunks[at]
            found = bisect_left(chunk, key)
            if found < len(chunk) and chunk[found] == key:
                return
        owned = self._own(at)
        insort(owned, key)
        self._size += 1
        self._maxes[at] = owned[-1]
        if len(owned) > 2 * LOAD:
            self._chunks[at + 1:at + 1] = [owned[LOAD:]]
            del owned[LOAD:]
            self._maxes[at:at + 1] = [owned[-1], self._chunks[at + 1][-1]]
            self._owned[at + 1:at + 1] = [True]

    def discard(self, key: str) -> None:
        at = bisect_left(self._maxes, key)
        if at == len(self._chunks):
            return
        chunk = self._chunks[at]
        found = bisect_left(chunk, key)
        if found == len(chunk) or chunk[found] != key:
            return
        self._size -= 1
        if len(chunk) == 1:
            del self._chunks[at], self._maxes[at], self._owned[at]
            return
        owned = self._own(at)
        del owned[found]
        self._maxes[at] = owned[-1]

    def finish(self) -> SortedKeys:
        done = SortedKeys.__new__(SortedKeys)
        done._chunks = tuple(tuple(chunk) for chunk in self._chunks)     # a tuple gives itself: not copied
        done._maxes = tuple(self._maxes)
        done._size = self._size
        return done
