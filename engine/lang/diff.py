"""The difference between two versions of a rule set's files, as a unified diff."""
from __future__ import annotations

import difflib


def unified(old: dict[str, str], new: dict[str, str], old_label: str = "a", new_label: str = "b") -> list[str]:
    """Lines of a unified diff from ``old`` to ``new`` (path -> text), file by file in path
    order; a file only one side has is compared with ``/dev/null``."""
    lines: list[str] = []
    for name in sorted(set(old) | set(new)):
        lines += difflib.unified_diff(old.get(name, "").splitlines(), new.get(name, "").splitlines(),
                                      fromfile=f"{old_label}/{name}" if name in old else "/dev/null",
                                      tofile=f"{new_label}/{name}" if name in new else "/dev/null", lineterm="")
    return lines
