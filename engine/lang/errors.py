"""Errors as data: every problem in a rule set is a value with a place and a message.

`slm check` prints them, the API returns them as problem details, and a rule set with
any of them is not loaded at all.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One error, sortable by place: ``file:line:column: message``."""

    file: str
    line: int
    column: int
    message: str
    code: str = "invalid"
    severity: str = "error"     # "warning" never stops a load; it is printed by `slm check`

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self)


class RuleSetError(Exception):
    """Raised when a rule set does not load; carries every problem found, sorted."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__(self.report())

    def report(self) -> str:
        count = len(self.problems)
        head = "1 error occurred:" if count == 1 else f"{count} errors occurred:"
        return "\n".join([head, *map(str, self.problems)])


class FactError(ValueError):
    """A fact that cannot be applied; ``details`` maps field paths to messages."""

    def __init__(self, details: dict[str, list[str]]):
        self.details = details
        text = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in sorted(details.items()))
        super().__init__(text)
