"""The console's pages: overview, decisions, a decision's trace, a clock's timeline, the
service review, the rules and the audit. Each reads through the same service and store
methods as the JSON API, so a page and its API answer cannot disagree.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import abort, current_app, g, redirect, render_template, request, session, url_for

from engine.eval.acknowledge import ACK_TYPE
from engine.lang.diff import unified
from engine.lang.errors import RuleSetError
from engine.lang.loader import load_rules
from engine.notify.silence import from_events
from engine.service.review import BUCKETS
from engine.service.state import NotReady, Standby
from engine.service.whatif import ReplayLimit
from schemas.api import CURSOR, PERIOD
from schemas.strings import PERIOD_RANGE
from schemas.values import format_hours, format_whole_duration, parse_duration, parse_instant

from ..auth import AUDITOR, OWNER, READER
from ..context import current_service
from . import bp, charts
from .session import page

PAGE_SIZE = 50
NEAREST = 5                       # running clocks per service on the overview
KINDS = ("breach", "warning", "met", "escalation", "retracted")


@bp.app_context_processor
def _globals():
    return {"role": g.get("role"), "READER": READER, "AUDITOR": AUDITOR, "OWNER": OWNER}


@bp.app_template_filter("when")
def _when(text) -> str:
    """An instant as people read it: ``2026-11-30 09:15:00 UTC``."""
    at = parse_instant(text) if isinstance(text, str) else text
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("service_time")
def _service_time(text, target_id: str) -> str:
    """A clock's duration as people count it: in hours, never days, when the target's
    calendar is not round the clock (30 business hours are not "1d6h")."""
    target = current_service().state.ruleset.targets.get(target_id)
    if not isinstance(text, str) or target is None or target.calendar.all_hours:
        return text
    try:
        return format_hours(parse_duration(text))
    except ValueError:
        return text


@bp.app_template_filter("dict_without")
def _dict_without(values: dict, key: str) -> dict:
    return {k: v for k, v in values.items() if k != key}


def _now() -> datetime:
    return current_service().now()


# ---- overview -------------------------------------------------------------------------

@bp.route("/")
@page()
def overview():
    service = current_service()
    now = _now()
    period = now.strftime("%Y-%m")
    try:
        clocks = service.engine_reads.clocks()
    except NotReady as not_ready:
        standby = str(not_ready) if isinstance(not_ready, Standby) else None
        return render_template("ui/starting.html", progress=service.state.progress(), standby=standby), 503
    budgets = service.engine_reads.budgets()
    services = []
    for sid, definition in sorted(service.state.ruleset.services.items()):
        running = [_progress(c) for c in clocks if c["service"] == sid and not c["shadow"]]
        running.sort(key=lambda c: -c["share"])
        recent = []
        for kind in ("breach", "warning"):
            page_, _ = service.store.list_decisions(service=sid, kind=kind, since=_stamp(now - timedelta(hours=24)),
                                                    limit=200)
            recent += page_
        recent = service.store.with_retractions(recent)
        recent.sort(key=lambda d: d["at"], reverse=True)
        services.append({"id": sid, "name": definition.name, "clocks": running[:NEAREST], "running": len(running),
                         "recent": recent[:10], "recent_total": len(recent),
                         "budgets": [_budget(b) for b in budgets if b["service"] == sid],
                         "report": service.engine_reads.compliance(sid, period)})
    fragment = request.args.get("fragment") == "1"
    return render_template("ui/overview_body.html" if fragment else "ui/overview.html",
                           services=services, period=period, now=now)


def _progress(clock: dict) -> dict:
    """A running clock with its share of the budget used and a colour class (an error
    budget's: the share of its window's budget used)."""
    target = current_service().state.ruleset.targets.get(clock["target"])
    if clock.get("error_budget"):
        share = 1 - clock["error_budget"]["remaining"]
        clock = {**clock, "remaining": f"{clock['error_budget']['remaining']:.0%} of the budget"}
    else:
        budget, counted = parse_duration(clock["budget"]), parse_duration(clock["counted"])
        share = counted / budget if budget else 0.0
    warns = [float(level.share) for level in target.warn_at] if target else []
    css = "breach" if share >= 1 else "warn" if warns and share >= min(warns) else "ok"
    return {**clock, "share": share, "percent": min(share, 1.0) * 100, "css": css}


def _budget(found: dict) -> dict:
    """An error budget as the overview shows it: its figures, a colour class and its
    burn-down chart (api.ui.charts.burn_down)."""
    figures = found["error_budget"]
    projected = figures["projected_exhaustion"]
    css = "breach" if figures["exhausted"] else "warn" if figures["at_risk"] or figures["burning"] else "ok"
    title = f"Error budget of {found['target']} over {figures['window']}: {figures['remaining']:.0%} left"
    chart = charts.burn_down(found["burn_down"], found["look_ahead"],
                             None if projected is None else parse_instant(projected), title)
    if figures["unit"] == "events":
        amount = f"{figures['bad']:g} of {figures['budget']:g} bad events"
    else:
        amount = " of ".join(format_whole_duration(timedelta(seconds=figures[k])) for k in ("bad", "budget"))
    return {**found, **figures, "css": css, "chart": chart, "amount": amount,
            "used_percent": min(max(1 - figures["remaining"], 0.0), 1.0) * 100}


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- decisions and traces -------------------------------------------------------------

@bp.route("/decisions")
@page()
def decisions():
    args = request.args
    filters = {k: args.get(k) or None for k in ("service", "target", "subject", "kind")}
    filters["retracted"] = {"true": True, "false": False}.get(args.get("retracted") or "")
    problems = {}
    for name in ("since", "until"):
        value = args.get(name) or None
        if value and len(value) == 10:          # a date from <input type=date>: its UTC midnight
            value += "T00:00:00Z"
        if value:
            try:
                parse_instant(value)
            except ValueError as err:
                problems[name] = str(err)
                value = None
        filters[name] = value
    cursor = args.get("cursor") if CURSOR.match(args.get("cursor") or "") else None
    store = current_service().store
    items, after = store.list_decisions(**filters, cursor=cursor, limit=PAGE_SIZE)
    items = store.with_retractions(items)
    ruleset = current_service().state.ruleset
    return render_template("ui/decisions.html", items=items, next=after, args=args, problems=problems,
                           services=sorted(ruleset.services), targets=sorted(ruleset.targets), kinds=KINDS)


@bp.route("/decisions/<string:decision_id>")
@page()
def trace(decision_id):
    service = current_service()
    decision = service.store.decision(decision_id)
    if decision is None:
        abort(404, description=f"no decision {decision_id!r}")
    tree = service.store_reads.trace(decision_id)
    notes, _ = service.store.list_notifications(decision=decision_id, limit=1000)

    def excerpt(rule: dict | None) -> str | None:
        return service.store_reads.definition(rule)

    return render_template("ui/trace.html", decision=decision, tree=tree, notifications=notes, excerpt=excerpt,
                           acknowledged=_acknowledgements(service, decision))


def _acknowledgements(service, decision: dict) -> list[dict]:
    """The ``escalation.acknowledged`` facts that answered this escalation (who, when, how)."""
    if decision.get("kind") != "escalation" or decision.get("subject") is None:
        return []
    found, _ = service.store.list_facts(subject=decision["subject"], type=ACK_TYPE, limit=1000)
    return [stored["fact"] for stored in found if (stored["fact"].get("data") or {}).get("decision") == decision["id"]]


# ---- clocks -------------------------------------------------------------------------------

@bp.route("/clocks/<string:target>/<path:subject>")
@page()
def clock(target, subject):
    timeline = current_service().engine_reads.clock_timeline(target, subject)
    if timeline is None:
        abort(404, description=f"nothing is known of clock {target}/{subject}")
    svg = charts.timeline(timeline, f"Timeline of {target} for {subject}")
    return render_template("ui/clock.html", tl=timeline, svg=svg, zone=timeline.target.calendar.timezone)


# ---- service review -----------------------------------------------------------------------

TREND_MONTHS = 5        # the review's trend: the month reviewed and the five before it

@bp.route("/reports")
@page()
def reports():
    service = request.args.get("service") or sorted(current_service().state.ruleset.services)[0]
    period = request.args.get("period") or _now().strftime("%Y-%m")
    return redirect(url_for("ui.review", service=service, period=period))


@bp.route("/reports/<string:service>/<string:period>")
@page()
def review(service, period):
    slm = current_service()
    if service not in slm.state.ruleset.services or not PERIOD.match(period):
        abort(404, description=f"no service {service!r} or {period!r} is not {PERIOD_RANGE}")
    result = slm.engine_reads.review(service, period)
    for entry in result["targets"]:
        target = slm.state.ruleset.targets[entry["target"]]
        entry["weekly_svg"] = charts.weekly(entry["weeks"], f"{entry['target']}: met and breached per week")
        if "spread" in entry:
            entry["spread_svg"] = charts.spread(BUCKETS, entry["spread"],
                                                f"{entry['target']}: time taken against the goal")
        if "burn" in entry:
            entry["burn_svg"] = charts.burn(entry["burn"], target.calendar.timezone,
                                            f"{entry['target']}: downtime budget used over the month")
    year, month = map(int, period.split("-"))
    before = f"{year - (month == 1)}-{12 if month == 1 else month - 1:02d}"
    after = f"{year + (month == 12)}-{1 if month == 12 else month + 1:02d}"
    first = max(year * 12 + month - 1 - TREND_MONTHS, 1970 * 12)   # the trend: this month and those before
    months = f"{first // 12:04d}-{first % 12 + 1:02d}..{period}"
    trends = {row["target"]: row["trend"] for row in slm.engine_reads.compliance(service, months)["targets"]}
    for entry in result["targets"]:
        entry["trend"] = trends[entry["target"]]
        figure = "compliance" if entry["measure"] == "duration" else "availability"
        goal = None if entry["measure"] == "duration" else float(entry["goal"].rstrip("%"))
        entry["trend_of"] = figure
        if any(m[figure] is not None for m in entry["trend"]):
            entry["trend_svg"] = charts.trend([(m["period"], m[figure]) for m in entry["trend"]], goal,
                                              f"{entry['target']}: {figure} per month")
    return render_template("ui/review.html", report=result, service=slm.state.ruleset.services[service],
                           services=sorted(slm.state.ruleset.services), before=before, after=after, buckets=BUCKETS)


# ---- rules and audit ----------------------------------------------------------------------

@bp.route("/rules")
@page()
def rules():
    slm = current_service()
    history = _history(slm)
    diff = None
    against = request.args.get("diff")
    if against:
        old = slm.store.ruleset_files(against)
        if old is None:
            abort(404, description=f"no rule set {against!r} was ever loaded")
        diff = unified(old, slm.state.ruleset.files, "earlier", "in force")
    return render_template("ui/rules.html", ruleset=slm.state.ruleset, history=history, diff=diff, against=against,
                           message=request.args.get("message"), preview=None)


@bp.route("/rules/preview", methods=["POST"])
@page(OWNER)
def preview_rules():
    """What the rules directory as it is on disk now would have decided over the last 90
    days of stored history, against the record: the what-if before a reload."""
    slm = current_service()
    history = _history(slm)
    preview, message = None, None
    try:
        preview = slm.rules.preview(load_rules(slm.rules.rules_dir).files)
    except RuleSetError as err:
        message = f"The rules directory does not load: {err.report()}"
    except ReplayLimit as err:
        message = str(err)
    return render_template("ui/rules.html", ruleset=slm.state.ruleset, history=history, diff=None, against=None,
                           message=message, preview=preview)


def _history(slm) -> list[dict]:
    """The versions put in force, newest first."""
    return [{"at": _when(v["at"]), "hash": v["version"], "in_force": v["in_force"]}
            for v in reversed(slm.store_reads.rule_versions())]


@bp.route("/rules/reload", methods=["POST"])
@page(OWNER)
def reload_rules():
    try:
        grant = current_app.extensions["slm_tokens"].grant_of_digest(session.get("token", ""))
        ruleset = current_service().rules.reload(by=None if grant is None else grant.name)
        message = f"Rules in force: version {ruleset.version[:19]}…"
    except RuleSetError as err:
        message = f"Refused; the rules in force stay. {err.report()}"
    except Standby as standby:
        message = f"Not reloaded: {standby}."
    except NotReady:
        message = "The service is still rebuilding its state; try again in a moment."
    return redirect(url_for("ui.rules", message=message))


@bp.route("/silences")
@page()
def silences():
    """Every silence, newest first: what it mutes, when, who made it and why, who ended it
    (made and ended through the API or ``slm silence``)."""
    slm = current_service()
    now = slm.state.now()
    found = [s.as_dict(now) for s in reversed(list(from_events(slm.store.silence_events()).values()))]
    return render_template("ui/silences.html", silences=found)


# what the audit page calls each chain and one record of it (as `slm audit verify` does)
CHAINS = {"decisions": ("Decisions", "decision"), "facts": ("Facts", "fact"),
          "notifications": ("Notifications", "notification"),
          "deliveries": ("Delivery outcomes", "delivery outcome"), "cutovers": ("Rule changes", "cut-over"),
          "silences": ("Silences", "silence event"), "waivers": ("Waivers", "waiver event"),
          "restatements": ("Restatements", "restatement event")}


@bp.route("/audit")
@page(AUDITOR)
def audit():
    """Every audit chain verified, as ``slm audit verify`` does (store.verify_audit)."""
    result = current_service().store.verify_audit() if request.args.get("verify") == "1" else None
    return render_template("ui/audit.html", result=result, names=CHAINS, checked_at=_now())
