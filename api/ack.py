"""``/ack/<token>``: acknowledge an escalation from the link in its message
(engine/notify/acklink.py). The signed link is the authority, so no API token is asked for.

GET shows what would be acknowledged and a form; it changes nothing (mail scanners and
link previews fetch links). POST, from that form only (it carries a field only slm can make
for this link), records an ``escalation.acknowledged`` fact: the level repeats no more
(engine/eval/acknowledge.py), the fact is chained like every other, and the console's
trace names who acknowledged. A second POST is the same fact again: a duplicate.
"""
from __future__ import annotations

import hmac
import logging

from flask import Blueprint, abort, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from engine.eval.acknowledge import ACK_TYPE
from engine.lang.errors import FactError
from engine.notify.acklink import AckLinks, LinkError
from schemas.values import format_instant

from .context import current_service
from .ui import CSP

bp = Blueprint("ack", __name__, url_prefix="/ack")
LINKS = "slm_ack_links"
SOURCE = "slm/ack"
FORM_FIELD = "confirm"
log = logging.getLogger("slm.api")


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"       # the link is a credential
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(HTTPException)
def _error(err: HTTPException):
    """A person followed a link: an HTML page, not problem details."""
    status = err.code or 500
    return render_template("ui/ack_error.html", status=status, message=err.description), status


def _opened(token: str) -> tuple[AckLinks, dict, dict]:
    """The links' signer, the notification and its decision a token names; an error page
    (404, or 410 for an expired link) otherwise."""
    links: AckLinks | None = current_app.extensions.get(LINKS)
    if links is None:
        abort(404, description="this service signs no acknowledgement links")
    service = current_service()
    try:
        note_id = links.open(token, service.now())
    except LinkError as err:
        abort(410 if err.expired else 404, description=str(err))
    note = service.store.notification(note_id)
    decision = service.store.decision(note["decision"]) if note else None
    if note is None or decision is None or decision.get("kind") != "escalation":
        abort(404, description="this link names no escalation of this service")
    return links, note, decision


def _acknowledgement(note: dict) -> dict | None:
    """The stored acknowledgement of this notification, if it was made."""
    return current_service().store.fact(SOURCE, _fact_id(note))


def _fact_id(note: dict) -> str:
    return "ack-" + note["id"]


@bp.get("/<token>")
def confirm(token: str):
    """What the link acknowledges, and the button that does it. Changes nothing."""
    links, note, decision = _opened(token)
    return render_template("ui/ack.html", decision=decision, note=note, done=_acknowledgement(note),
                           form=links.form_token(token), form_field=FORM_FIELD)


@bp.post("/<token>")
def acknowledge(token: str):
    """Record the acknowledgement (from the confirmation page's form only)."""
    links, note, decision = _opened(token)
    if not hmac.compare_digest(request.form.get(FORM_FIELD, ""), links.form_token(token)):
        abort(400, description="acknowledge with the button of the page this link opens")
    service = current_service()
    if _acknowledgement(note) is not None:         # a second click: said once, recorded once
        return render_template("ui/ack.html", decision=decision, note=note, done=_acknowledgement(note), form=None,
                               form_field=FORM_FIELD)
    fact = {"id": _fact_id(note), "source": SOURCE, "type": ACK_TYPE, "time": format_instant(service.now()),
            "subject": decision["subject"], "service": decision["service"],
            "data": {"decision": decision["id"], "target": decision["target"], "cycle": decision.get("cycle"),
                     "level": decision.get("level"), "activity": decision.get("activity"),
                     "by": note["recipient"]}}
    try:
        service.facts.ingest([fact])
    except FactError as err:
        log.warning("an acknowledgement of %s was refused: %s", decision["id"], err)
        abort(422, description=f"slm could not record this acknowledgement: {err}")
    return render_template("ui/ack.html", decision=decision, note=note, done=_acknowledgement(note),
                           form=None, form_field=FORM_FIELD, just=True)
