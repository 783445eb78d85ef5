"""The text of a monthly review pack (docs/RULES.md "Monthly review pack"): an agreement's
month from its compliance report (engine.service.reports) as plain data, rendered by the
message templates' Jinja2 sandbox (engine.lang.templates), bounded as every message is.

Plain data in, text out: the service builds the report (engine.service.reviewpack); what
the pack says is decided here alone.
"""
from __future__ import annotations

from typing import Any

from engine.lang.templates import render

REVIEW_PACK_MESSAGE = """\
Review pack of {{ agreement }}{% if customer %} for {{ customer }}{% endif %}, service {{ service }}, {{ period }}
{% for t in targets %}- {{ t.target }} (goal {{ t.goal }}): {{ t.figures }}
  trend: {{ t.trend }}
{% if t.waived %}  waived: {{ t.waived }}
{% endif %}{% if t.recorded %}  as recorded: {{ t.recorded }}
{% endif %}{% endfor %}\
Credit due: {% if credits %}{{ credits | join('; ') }}{% else %}none (no credits in the agreement){% endif %}
{% if waivers %}Waivers:
{% for w in waivers %}- {{ w }}
{% endfor %}{% else %}Waivers: none
{% endif %}{% if restatements %}Restatements:
{% for r in restatements %}- {{ r }}
{% endfor %}{% else %}Restatements: none
{% endif %}"""


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:g} %"


def _figures(month: dict, measure: str) -> str:
    if measure == "duration":
        waived = f", {month['waived']} waived" if month["waived"] else ""
        return (f"{month['met']} met, {month['breached']} breached{waived}, "
                f"compliance {pct(month['compliance'])}")
    return f"availability {pct(month['availability'])}"


def context(report: dict, agreement: str, period: str, waivers: list[dict]) -> dict[str, Any]:
    """What the template is given: the agreement's targets in ``report`` (a compliance
    report over months up to ``period``), each with the month's figures and the trend; the
    credit due for ``period``; the waivers (in effect, touching the month) and the
    restatements the report shows."""
    rows = [row for row in report["targets"] if row["agreement"] == agreement]
    targets = []
    for row in rows:
        month = next(m for m in row["trend"] if m["period"] == period)
        figure = "compliance" if row["measure"] == "duration" else "availability"
        taken = month["waived_time"]
        targets.append({
            "target": row["target"], "goal": row["goal"], "figures": _figures(month, row["measure"]),
            "trend": ", ".join(f"{m['period']} {pct(m[figure])}" for m in row["trend"]),
            "waived": None if taken is None else (
                f"{taken['down_minutes']:g} min down in {taken['service_minutes']:g} min of service time "
                f"taken out (unwaived {pct(taken['availability_unwaived'])})"),
            "recorded": None if month["original"] is None else _figures(month["original"], row["measure"])})
    credits = [f"{pct(c['credit'])} of the month's charge" + (f" (decided by {c['decided_by']})"
                                                               if c["decided_by"] else "")
               for c in report["credits"] if c["agreement"] == agreement and c["period"] == period]
    return {"agreement": agreement, "customer": rows[0]["customer"] if rows else "", "service": report["service"],
            "period": period, "targets": targets, "credits": credits,
            "waivers": [f"{w['id']}: {w['what']}, “{w['reason']}”, requested by {w['requested_by']}, approved by "
                        f"{w['approved_by']}" for w in waivers],
            "restatements": [f"{r['id']}: “{r['reason']}”, under rules {r['rules'][:19]}…, requested by "
                             f"{r['requested_by']}, approved by {r['approved_by']}"
                             for r in report["restatements"] if r["period"] == period]}


def pack_text(report: dict, agreement: str, period: str, waivers: list[dict]) -> str:
    """The review pack, rendered in the sandbox (at most the templates' output bound)."""
    return render(REVIEW_PACK_MESSAGE, context(report, agreement, period, waivers))
