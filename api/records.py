"""What came out: decisions and their traces, notifications, live clocks, reports, audit."""
from __future__ import annotations

from flask import current_app, jsonify, request
from flask_smorest import abort

from engine.notify.deliver import redact
from engine.service.reportcsv import report_csv
from engine.service.reports import customers
from engine.service.vocabulary import unknown_value
from engine.store.chain import AuditKeyError
from schemas.api import (
    AuditSchema,
    CheckpointSchema,
    ClockArgs,
    ClockListSchema,
    ComplianceReportSchema,
    DecisionArgs,
    DecisionPageSchema,
    NotificationArgs,
    NotificationPageSchema,
    NotificationSchema,
    ReadDecisionSchema,
    ReportArgs,
    TraceSchema,
)

from .auth import ADMIN, AUDITOR, READER, requires
from .body import BoundedBlueprint
from .context import current_service
from .filters import check_known

blp = BoundedBlueprint("decisions", __name__, url_prefix="/v1",
                description="Decisions, traces, notifications, clocks, reports and the audit log")


def _page(list_page, args: dict) -> dict:
    limit, cursor = args.pop("limit"), args.pop("cursor", None)
    items, after = list_page(**args, cursor=cursor, limit=limit)
    return {"items": items, "next": after}


@blp.route("/decisions")
@requires(blp, READER)
@blp.arguments(DecisionArgs, location="query")
@blp.response(200, DecisionPageSchema)
def list_decisions(args):
    """Decisions in log order; follow ``next`` for the next page."""
    check_known(args)
    # Stored decisions are their schema's dump already (tests/api/test_records.py): answered as
    # read, since dumping a page of them again cost twice what reading it does.
    store = current_service().store
    page = _page(store.list_decisions, args)
    page["items"] = store.with_retractions(page["items"])
    return jsonify(page)


@blp.route("/decisions/<string:decision_id>")
@requires(blp, READER)
@blp.response(200, ReadDecisionSchema)
def get_decision(decision_id):
    """One decision as recorded (with the rule-set version it came from), with
    ``retracted_by`` if it was retracted."""
    store = current_service().store
    decision = store.decision(decision_id)
    if decision is None:
        abort(404, message=f"no decision {decision_id!r}")
    return store.with_retractions([decision])[0]


@blp.route("/decisions/<string:decision_id>/trace")
@requires(blp, READER)
@blp.response(200, TraceSchema)
def get_trace(decision_id):
    """The derivation tree: decisions, clock readings and facts, each with its rule's file and line."""
    try:
        return current_service().store_reads.trace(decision_id)
    except KeyError:
        abort(404, message=f"no decision {decision_id!r}")


@blp.route("/notifications")
@requires(blp, READER)
@blp.arguments(NotificationArgs, location="query")
@blp.response(200, NotificationPageSchema)
def list_notifications(args):
    """Notifications derived through the RACI matrix, one per recipient per decision, with
    their delivery: status, attempts, last error, next attempt and the message they went
    out in. URLs are shown without their secrets."""
    page = _page(current_service().store.list_notifications, args)
    page["items"] = [_shown(n) for n in page["items"]]
    return page


@blp.route("/notifications/<string:notification_id>/retry", methods=["POST"])
@requires(blp, ADMIN)
@blp.response(200, NotificationSchema)
def retry_notification(notification_id):
    """Queue a failed (or undeliverable, or cancelled) notification again, due now."""
    service = current_service()
    service.state.require_owner()          # a standby writes nothing (503)
    try:
        record = service.store.requeue(notification_id)
    except ValueError as err:
        abort(409, message=str(err))
    if record is None:
        abort(404, message=f"no notification {notification_id!r}")
    if service.delivery is not None:
        service.delivery.handoff([notification_id])
    return _shown(record)


def _shown(record: dict) -> dict:
    return {**record, "recipient": redact(record["recipient"])}


@blp.route("/clocks")
@requires(blp, READER)
@blp.arguments(ClockArgs, location="query")
@blp.response(200, ClockListSchema)
def list_clocks(args):
    """Running clocks now: counted, remaining, next deadline."""
    check_known(args)
    clocks, total = current_service().engine_reads.clock_page(
        **{k: args.get(k) for k in ("service", "target", "subject")}, limit=args["limit"])
    # The read model's clocks have the schema's fields and order already (tests/service/test_clockview.py):
    # answered as they are, since dumping thousands through the schema cost more than reading them.
    return jsonify({"items": clocks, "total": total})


JSON, CSV = "application/json", "text/csv"


@blp.route("/reports/compliance")
@requires(blp, READER)
@blp.arguments(ReportArgs, location="query")
@blp.response(200, ComplianceReportSchema)
@blp.doc(responses={"200": {"description": "OK", "content": {
    JSON: {"schema": ComplianceReportSchema}, CSV: {"schema": {"type": "string"}, "example": (
    "period,service,customer,agreement,target,goal,subjects,met,breached,waived,compliance,availability,credit\r\n"
    "2026-11,email,Finance,sla-email,email-availability,99.9%,1,0,1,0,0,99.8611,10\r\n")}}}})
def compliance_report(args):
    """Per target of a service over a month or a range of months (of one customer's agreements
    with ``customer``): subjects, met, breached, compliance %, availability %, the trend month
    by month and the service credits due. ``Accept: text/csv`` gives the table as CSV, a row
    per target and month (and per target over a range)."""
    service = current_service()
    problem = unknown_value(args["service"], service.state.ruleset.services, "service")
    if problem:
        abort(400, message="the report is of a service of the rules in force", errors={"query.service": [problem]})
    if args.get("customer") is not None:
        problem = unknown_value(args["customer"], customers(service.state.ruleset), "customer")
        if problem:
            abort(400, message="the report is of a customer an agreement in force names",
                  errors={"query.customer": [problem]})
    report = service.engine_reads.compliance(args["service"], args["period"], args.get("customer"))
    if request.accept_mimetypes.best_match([JSON, CSV]) == CSV:
        return current_app.response_class(report_csv(report), mimetype=CSV)
    return report


@blp.route("/audit/verify")
@requires(blp, AUDITOR)
@blp.response(200, AuditSchema)
def verify():
    """Walk every audit chain (decisions, facts, notifications, deliveries); the first broken record of
    each. The top level is the decision chain's result."""
    result = current_service().store.verify_audit()
    decisions = result["chains"]["decisions"]
    return {"ok": result["ok"], "checked": decisions["checked"], "first_broken": decisions["first_broken"],
            "chains": result["chains"]}


@blp.route("/audit/checkpoint")
@requires(blp, AUDITOR)
@blp.response(200, CheckpointSchema)
def audit_checkpoint():
    """The heads of the audit chains, signed with the audit key: keep it elsewhere, and
    check it later with ``slm audit verify --checkpoint FILE``."""
    try:
        return current_service().store.audit_checkpoint()
    except AuditKeyError as err:
        abort(409, message=f"{err} (the service runs without one)")
