"""Restatements that keep the past (docs/OPERATIONS.md "Restatements"): a settled month
evaluated again and recorded as superseding decisions, in effect once another token
approves it; each step chained in the audit with the token's name."""
from __future__ import annotations

from flask_smorest import abort

from schemas.api import (
    RestatementArgs,
    RestatementListSchema,
    RestatementRequestSchema,
    RestatementSchema,
    WaiverRevokeSchema,
)

from .auth import OWNER, READER, requires
from .body import BoundedBlueprint
from .context import current_service
from .filters import check_known
from .waivers import recorded_by, refused_as_problem

blp = BoundedBlueprint("restatements", __name__, url_prefix="/v1",
                       description="Restatements: a settled month evaluated again, superseding decisions, four eyes")


@blp.route("/restatements", methods=["POST"])
@requires(blp, OWNER)
@blp.arguments(RestatementRequestSchema)
@blp.response(201, RestatementSchema)
def request_restatement(body):
    """Evaluate a settled month of a service again over the stored history (under the rules in
    force, or ``rules``) and record what it decides differently as superseding decisions.
    Not in effect until a token of another name approves it; nothing recorded is changed."""
    return refused_as_problem(lambda: current_service().restatements.request(body, recorded_by()))


@blp.route("/restatements")
@requires(blp, READER)
@blp.arguments(RestatementArgs, location="query")
@blp.response(200, RestatementListSchema)
@blp.alt_response(400, description="``service`` names no service the rules define")
def list_restatements(args):
    """Every restatement, oldest request first, with who requested, approved and revoked it."""
    check_known(args)
    return {"items": current_service().store.restatements(args.get("status"), args.get("service"))}


@blp.route("/restatements/<string:restatement_id>")
@requires(blp, READER)
@blp.response(200, RestatementSchema)
@blp.alt_response(404, description="no such restatement")
def get_restatement(restatement_id):
    """One restatement as its chained events say, with its superseding decisions."""
    restatement = current_service().store.restatement(restatement_id)
    if restatement is None:
        abort(404, message=f"no restatement {restatement_id!r}")
    return restatement


@blp.route("/restatements/<string:restatement_id>/approve", methods=["POST"])
@requires(blp, OWNER)
@blp.response(200, RestatementSchema)
@blp.alt_response(404, description="no such restatement")
@blp.alt_response(409, description="it is not requested (approved or revoked already)")
def approve_restatement(restatement_id):
    """Put a requested restatement in effect: 403 to the token that requested it (by name),
    409 if it is not requested."""
    return refused_as_problem(lambda: current_service().restatements.approve(restatement_id, recorded_by()))


@blp.route("/restatements/<string:restatement_id>/revoke", methods=["POST"])
@requires(blp, OWNER)
@blp.arguments(WaiverRevokeSchema)
@blp.response(200, RestatementSchema)
@blp.alt_response(404, description="no such restatement")
@blp.alt_response(409, description="it was revoked already")
def revoke_restatement(body, restatement_id):
    """End a restatement, requested or approved (reports show the recorded figures again);
    409 if it was revoked already."""
    return refused_as_problem(
        lambda: current_service().restatements.revoke(restatement_id, recorded_by(), body["reason"]))
