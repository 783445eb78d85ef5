"""Waivers with four eyes (docs/OPERATIONS.md "Waivers"): request, approve with another
token, revoke; each step chained in the audit with the token's name."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask_smorest import abort

from engine.service.waivers import WaiverRefused
from schemas.api import WaiverArgs, WaiverListSchema, WaiverRequestSchema, WaiverRevokeSchema, WaiverSchema

from .auth import OWNER, READER, requires, token_name
from .body import BoundedBlueprint
from .context import current_service

T = TypeVar("T")

blp = BoundedBlueprint("waivers", __name__, url_prefix="/v1",
                       description="Waivers: a decision or a target's period left out of compliance, four eyes")


@blp.route("/waivers", methods=["POST"])
@requires(blp, OWNER)
@blp.arguments(WaiverRequestSchema)
@blp.response(201, WaiverSchema)
def request_waiver(body):
    """Ask to leave a decision's cycle, or a target's cycles settled in [since, until), out of
    compliance. Not in effect until a token of another name approves it."""
    return refused_as_problem(lambda: current_service().waivers.request(body, recorded_by()))


@blp.route("/waivers")
@requires(blp, READER)
@blp.arguments(WaiverArgs, location="query")
@blp.response(200, WaiverListSchema)
def list_waivers(args):
    """Every waiver, oldest request first, with who requested, approved and revoked it."""
    return {"items": current_service().store.waivers(args.get("status"))}


@blp.route("/waivers/<string:waiver_id>")
@requires(blp, READER)
@blp.response(200, WaiverSchema)
def get_waiver(waiver_id):
    """One waiver as its chained events say."""
    waiver = current_service().store.waiver(waiver_id)
    if waiver is None:
        abort(404, message=f"no waiver {waiver_id!r}")
    return waiver


@blp.route("/waivers/<string:waiver_id>/approve", methods=["POST"])
@requires(blp, OWNER)
@blp.response(200, WaiverSchema)
def approve_waiver(waiver_id):
    """Put a requested waiver in effect: 403 to the token that requested it (by name), 409
    if it is not requested (approved or revoked already)."""
    return refused_as_problem(lambda: current_service().waivers.approve(waiver_id, recorded_by()))


@blp.route("/waivers/<string:waiver_id>/revoke", methods=["POST"])
@requires(blp, OWNER)
@blp.arguments(WaiverRevokeSchema)
@blp.response(200, WaiverSchema)
def revoke_waiver(body, waiver_id):
    """End a waiver, requested or approved; 409 if it was revoked already."""
    return refused_as_problem(lambda: current_service().waivers.revoke(waiver_id, recorded_by(), body["reason"]))


def recorded_by() -> str:
    """The request's token name, which a four-eyes step (a waiver's, a restatement's) is
    recorded with (requires() let the request in, so it has a known token)."""
    name = token_name()
    if name is None:
        abort(401, message="a waiver step is recorded with the name of a bearer token")
        raise AssertionError("abort returned")      # flask_smorest.abort raises; its hint says None
    return name


def refused_as_problem(step: Callable[[], T]) -> T:
    """A four-eyes step (engine.service.waivers, shared by restatements), its refusal as the
    problem it names: 403 to the requester approving, 409 out of order, 422 on a field."""
    try:
        return step()
    except WaiverRefused as refused:
        errors = {f"json.{refused.field}": [str(refused)]} if refused.field else None
        abort(refused.status, message=str(refused), **({"errors": errors} if errors else {}))
        raise AssertionError("abort returned") from None
