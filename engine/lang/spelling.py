"""Near misses of names in rules and facts, for "did you mean": a fact type, field or
activity one or two typing slips (a letter left out, added, changed, or two neighbours
swapped) from a known one. One place for the lint, the checks, the catalogue and explain."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def one_edit(a: str, b: str) -> bool:
    """True when one insertion, deletion, substitution or swap of neighbours turns a into b."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like ``name`` and at most two typing slips from it (a letter
    left out, added, changed, or two swapped), for "did you mean"; None if none is."""
    close = [other for other in known if edits(name, other) <= 2]
    found = difflib.get_close_matches(name, close, n=1, cutoff=0)
    return found[0] if found else None


def by_likeness(name: str, known: Iterable[str]) -> list[str]:
    """``known``, the names most like ``name`` first (fewest typing slips, then by name):
    a list of choices that starts with the one most likely meant."""
    return sorted(known, key=lambda other: (edits(name.casefold(), other.casefold()), other))


def edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps
    of neighbours."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]
