"""The rules in force: inspect, check uploads, reload from the rules directory atomically."""
from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint

from schemas.api import RuleFilesSchema, RulesSummarySchema

from .auth import OWNER, READER, requires

blp = Blueprint("rules", __name__, url_prefix="/v1", description="The rule set in force")


def _summary(ruleset) -> dict:
    return {"version": ruleset.version, "files": sorted(ruleset.files), "summary": ruleset.summary(),
            "warnings": [str(w) for w in ruleset.warnings]}


@blp.route("/rules")
@requires(blp, READER)
@blp.response(200, RulesSummarySchema)
def get_rules():
    """Version (a hash of the files' contents), files and a summary of the rules in force."""
    return _summary(current_app.extensions["slm"].ruleset)


@blp.route("/rules/check", methods=["POST"])
@requires(blp, OWNER)
@blp.arguments(RuleFilesSchema)
@blp.response(200, RulesSummarySchema)
def check_rules(body):
    """Validate uploaded rule files as one set; changes nothing. 422 lists each problem."""
    return _summary(current_app.extensions["slm"].check(body["files"]))


@blp.route("/rules/reload", methods=["POST"])
@requires(blp, OWNER)
@blp.response(200, RulesSummarySchema)
def reload_rules():
    """Load the rules directory and swap it in; a bad set is refused and the old one stays."""
    return _summary(current_app.extensions["slm"].reload())
