"""The rules in force: inspect, check uploads, reload from the rules directory atomically."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from flask_smorest import abort

from engine.lang.diff import unified
from engine.lang.errors import Problem, RuleSetError
from schemas.api import (
    RuleCheckArgs,
    RuleFilesSchema,
    RulePreviewArgs,
    RulePreviewSchema,
    RulesSummarySchema,
    RuleVersionArgs,
    RuleVersionFilesSchema,
    RuleVersionListSchema,
)
from schemas.values import format_instant, parse_instant

from .auth import OWNER, READER, requires, token_name
from .body import BoundedBlueprint
from .context import current_service

blp = BoundedBlueprint("rules", __name__, url_prefix="/v1", description="The rule set in force")


def _summary(ruleset) -> dict:
    return {"version": ruleset.version, "files": sorted(ruleset.files), "summary": ruleset.summary(),
            "warnings": [str(_relative(w, ruleset.root)) for w in ruleset.warnings]}


def _relative(problem: Problem, root: str) -> Problem:
    """A problem of a file under the rules directory named relative to it: a client sees
    ``services/email.yaml``, never where the server keeps its rules."""
    if not root:
        return problem
    try:
        name = Path(problem.file).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return problem
    return replace(problem, file=name)


@blp.route("/rules")
@requires(blp, READER)
@blp.response(200, RulesSummarySchema)
def get_rules():
    """Version (a hash of the files' contents), files and a summary of the rules in force."""
    return _summary(current_service().state.ruleset)


@blp.route("/rules/check", methods=["POST"])
@requires(blp, OWNER)
@blp.arguments(RuleFilesSchema)
@blp.arguments(RuleCheckArgs, location="query")
@blp.response(200, RulesSummarySchema)
def check_rules(body, args):
    """Validate uploaded rule files as one set (or, with ``in_force=true``, together with the
    rules in force, an upload replacing the file of its path); changes nothing. 422 lists
    each error; warnings (lint) come back with a 200."""
    return _summary(current_service().rules.check(body["files"], args.get("in_force", False)))


@blp.route("/rules/reload", methods=["POST"])
@requires(blp, OWNER)
@blp.response(200, RulesSummarySchema)
def reload_rules():
    """Load the rules directory and swap it in; a bad set is refused and the old one stays."""
    service = current_service()
    try:
        return _summary(service.rules.reload(by=token_name()))
    except RuleSetError as err:
        raise RuleSetError([_relative(p, service.state.ruleset.root) for p in err.problems]) from None


@blp.route("/rules/versions")
@requires(blp, READER)
@blp.response(200, RuleVersionListSchema)
def list_versions():
    """Every rule set that was put in force, oldest first, with its cut-over."""
    return {"items": [{**v, "at": format_instant(v["at"])}
                      for v in current_service().store_reads.rule_versions()]}


@blp.route("/rules/versions/<string:version>")
@requires(blp, READER)
@blp.arguments(RuleVersionArgs, location="query")
@blp.response(200, RuleVersionFilesSchema)
def get_version(args, version):
    """A version's files; with ``against``, the unified diff from that version to this one."""
    store = current_service().store
    files = store.ruleset_files(version)
    if files is None:
        abort(404, message=f"no rule set {version!r}")
    against = args.get("against")
    diff = None
    if against:
        base = store.ruleset_files(against)
        if base is None:
            abort(404, message=f"no rule set {against!r} to compare with")
        diff = "".join(line + "\n" for line in unified(base, files))
    return {"version": version, "files": files, "against": against, "diff": diff}


@blp.route("/rules/preview", methods=["POST"])
@requires(blp, OWNER)
@blp.arguments(RuleFilesSchema)
@blp.arguments(RulePreviewArgs, location="query")
@blp.response(200, RulePreviewSchema)
def preview_rules(body, args):
    """What uploaded rule files would have decided over the stored facts of a period, against
    what was recorded (as ``slm replay``); changes nothing. Bounded: a period with too many
    facts, or a replay that runs too long, is refused with 422."""
    since, until = (parse_instant(args[k]) if args.get(k) else None for k in ("since", "until"))
    return current_service().rules.preview(body["files"], since, until)
