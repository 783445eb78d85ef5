"""Write-back: an escalation level's ``call`` that updates the ticket or page itself (a Jira
comment and field update, a ServiceNow Table API PATCH, a PagerDuty Events API v2 trigger)
instead of POSTing slm's own webhook (docs/RULES.md, "Write-back").

The rule names which environment variables hold the credentials, never the secrets. Every
text of the request is a template, compiled when the rules load (an error at its place) and
rendered in the sandbox when the decision is routed (engine/notify/route.py): the stored
notification holds the request as it will be sent, less the secrets, which
engine/notify/writeback.py reads from the environment when it sends.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from engine.lang.errors import Problem
from engine.lang.templates import render, template_error
from engine.lang.yamlsource import Document

KINDS = ("jira", "servicenow", "pagerduty")
_LITERAL = ("url", "table", "credentials")     # taken as written, never rendered


@dataclass(frozen=True, eq=False)
class WriteBack:
    """One level's write-back: its kind, its spec as loaded (templates unrendered), and
    where it is written (``file:line``, named in delivery errors)."""

    kind: str
    spec: dict[str, Any]
    where: str

    def request(self, context: dict[str, Any]) -> dict[str, Any]:
        """The request for one decision: every template rendered with ``context`` (the
        decision's record and its ``message``), the credentials still only named."""
        out: dict[str, Any] = {"kind": self.kind, "where": self.where}
        for key, value in self.spec.items():
            out[key] = value if key in _LITERAL else _rendered(value, context)
        return out

    @staticmethod
    def recipient(request: dict[str, Any]) -> str:
        """What the notification names as its recipient: the API URL of the record written."""
        base = str(request["url"]).rstrip("/")
        if request["kind"] == "jira":
            return f"{base}/rest/api/2/issue/{request['issue']}"
        if request["kind"] == "servicenow":
            return f"{base}/api/now/table/{request['table']}/{request.get('sys_id') or request['number']}"
        return base


def build_writeback(doc: Document, path: tuple[str | int, ...], call: dict[str, Any], file: str,
                    problems: list[Problem], warnings: list[Problem]) -> WriteBack | None:
    """A level's write-back from its loaded ``call`` (one kind: the schema saw to it); each
    template that would not compile an error at its place, each credential variable this
    environment lacks a warning (``slm serve`` would fail to deliver it). ``file``: the rule
    file relative to the rules directory, as delivery errors name it."""
    [(kind, spec)] = call.items()
    failed = False
    texts = [found for key, value in spec.items() if key not in _LITERAL
             for found in _texts(value, path + ("call", kind, key))]
    for where, text in texts:
        found = template_error(text)
        if found is not None:
            failed = True
            problems.append(doc.problem(where, f"{where[-1]}: template error on its line {found[0]}: {found[1]}"))
    for name, variable in spec["credentials"].items():
        if variable not in os.environ:
            line, column = doc.place(path + ("call", kind, "credentials", name))
            warnings.append(Problem(doc.file, line, column, f"credentials: {variable} is not set in this "
                                    f"environment: slm serve needs it to write back to {kind} (its {name})",
                                    "credentials", "warning"))
    line = doc.place(path)[0]
    return None if failed else WriteBack(kind, spec, f"{file}:{line}")


def _texts(value: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every text of a spec that is rendered, with its place."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _texts(item, path + (key,))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in _texts(item, path + (index,))]
    return []


def _rendered(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context) if "{" in value else value
    if isinstance(value, dict):
        return {key: _rendered(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [_rendered(item, context) for item in value]
    return value
