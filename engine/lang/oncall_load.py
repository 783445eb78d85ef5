"""Reading the on-call schedules role holders name (``{oncall: FILE.ics}``) while a rule set
loads: each path resolved against the rule file that names it, the file parsed and checked
once, every mistake placed at the ``oncall:`` that named it (engine/lang/oncall.py says
what a schedule is).
"""
from __future__ import annotations

import posixpath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.lang.errors import Problem
from engine.lang.oncall import PREFIX, OnCall, Schedule, ScheduleError
from engine.lang.yamlsource import Document

Path = tuple[str | int, ...]


class Schedules:
    """The schedules of one rule-set load, by (relative path, time zone)."""

    def __init__(self, doc_files: dict[str, str], sources: dict[str, str]):
        """``doc_files``: a file as documents name it -> its path relative to the rules
        directory; ``sources``: relative path -> text, every file of the set."""
        self.relative = doc_files
        self.shown = {rel: name for name, rel in doc_files.items()}     # how the user names a file
        self.sources = sources
        self.warnings: list[Problem] = []
        self._parsed: dict[tuple[str, str], Schedule | ScheduleError] = {}

    def holders(self, doc: Document, path: Path, holders: list[str | dict[str, Any]],
                problems: list[Problem]) -> list[str | OnCall]:
        """A role's holders as loaded, each ``{oncall: …}`` read into an OnCall (or an
        error at its place, the holder left out)."""
        raw = _at(doc.data, path)
        out: list[str | OnCall] = []
        for index, holder in enumerate(holders):
            if isinstance(holder, str):
                out.append(holder)
                continue
            place = path + ((index,) if isinstance(raw, list) else ())
            found = self._on_call(doc, place, holder, problems)
            # a schedule that failed (reported here) still holds the role: no error of its own for each activity
            out.append(found if found is not None else PREFIX + str(holder["oncall"]))
        if any(isinstance(h, OnCall) and not h.fallback for h in out) and \
                not any(isinstance(h, str) for h in out):
            line, column = doc.place(path)
            self.warnings.append(Problem(
                doc.file, line, column, f"role '{path[-1]}' is held by an on-call schedule alone, with no "
                f"fallback: a decision at an instant nobody is on call notifies no one of this role (add "
                f"fallback: ADDRESS to the schedule)", "oncall", "warning"))
        return out

    def _on_call(self, doc: Document, place: Path, holder: dict[str, Any],
                 problems: list[Problem]) -> OnCall | None:
        try:
            ZoneInfo(holder["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(doc.problem(place + ("timezone",), f"timezone: unknown time zone "
                                        f"'{holder['timezone']}' (examples: Europe/London, UTC)"))
            return None
        written = holder["oncall"].strip()
        base = posixpath.dirname(self.relative.get(doc.file, doc.file))
        target = posixpath.normpath(posixpath.join(base, written))
        if written.startswith("/") or target == ".." or target.startswith("../"):
            problems.append(doc.problem(place + ("oncall",), f"oncall: '{written}' is outside the rules directory: "
                                        "a schedule is part of the rule set, written beside its rules"))
            return None
        if target not in self.sources:
            missing = posixpath.normpath(posixpath.join(posixpath.dirname(doc.file), written))
            known = sorted(self.shown.get(n, n) for n in self.sources if n.lower().endswith(".ics"))
            problems.append(doc.problem(place + ("oncall",), f"oncall: no such file '{missing}' (a path "
                                        f"relative to this rule file; schedules found: {', '.join(known) or 'none'})",
                                        "unknown-reference"))
            return None
        key = (target, holder["timezone"])
        if key not in self._parsed:
            try:
                self._parsed[key] = Schedule(target, self.sources[target], holder["timezone"])
            except ScheduleError as err:
                self._parsed[key] = err
        parsed = self._parsed[key]
        if isinstance(parsed, ScheduleError):
            problems.append(doc.problem(place + ("oncall",), f"oncall: {self._show(target)}:{parsed.line}: "
                                        f"{parsed.message}"))
            return None
        return OnCall(parsed, tuple(holder["fallback"]))

    def _show(self, relative: str) -> str:
        return self.shown.get(relative, relative)


def _at(data: object, path: Path) -> object:
    """The value written at ``path`` of a document's data."""
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data
