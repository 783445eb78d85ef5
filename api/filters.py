"""A listing's filter values checked against the names the records can carry.

``kind=brech`` or ``service=emial`` would match nothing and answer an empty page, which
reads as "nothing happened". Such a value is a 400 naming the known ones instead
(engine/service/vocabulary.py); open-ended filters (a subject, a recipient) are not checked.
"""
from __future__ import annotations

from flask_smorest import abort

from engine.service.vocabulary import unknown_value

from .context import current_service

CHECKED = {"service": "services", "target": "targets", "kind": "kinds"}


def check_known(args: dict) -> None:
    """Abort with 400 if a service, target or kind filter in ``args`` names nothing known."""
    wanted = {name: args[name] for name in CHECKED if args.get(name) is not None}
    if not wanted:
        return
    known = current_service().store_reads.vocabulary()
    errors = {}
    for name, value in wanted.items():
        problem = unknown_value(value, getattr(known, CHECKED[name]), name)
        if problem:
            errors[f"query.{name}"] = [problem]
    if errors:
        abort(400, message="a filter names nothing the rules define", errors=errors)
