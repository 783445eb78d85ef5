"""The YAML text of one definition, cut from the rule files by its origin (file, line,
column): what an auditor reads beside a decision to see the rule exactly as written.

A definition's lines are its first line and every following line indented at least as far
as its column (a mapping's keys), up to the end of its YAML document; trailing comments
and blank lines belong to whatever follows.
"""
from __future__ import annotations


def definition_text(files: dict[str, str], file: str, line: int, column: int | None = None) -> str | None:
    """The definition starting at ``file:line:column`` in ``files``; None if not there.
    Without a column (decisions record file and line only) it is read off the line: the
    first key after the indentation and any ``- `` of a list item."""
    text = files.get(file)
    if text is None:
        return None
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    if column is None:
        first = lines[line - 1]
        body = first.lstrip()
        column = len(first) - len(body) + 1
        while body.startswith("- "):
            column, body = column + 2, body[2:]
    indent = column - 1
    taken = [lines[line - 1]]
    for following in lines[line:]:
        stripped = following.strip()
        if following.startswith(("---", "...")):
            break
        if stripped and not stripped.startswith("#") and len(following) - len(following.lstrip()) < indent:
            break
        taken.append(following)
    while len(taken) > 1 and (not taken[-1].strip() or taken[-1].strip().startswith("#")):
        taken.pop()
    return "\n".join(taken)
