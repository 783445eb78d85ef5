"""``slm export prometheus-rules SERVICE``: Prometheus recording and alerting rules for a
service's error budgets, laid out as Sloth generates them (docs/RULES.md, "Prometheus
rules"), so dashboards and alert routes made for Sloth's rules work on them unchanged.

Per target that keeps an error budget and names its PromQL (``prometheus: {errors,
total}``), three groups, as Sloth's:

- ``sloth-slo-sli-recordings-<id>``: ``slo:sli_error:ratio_rate<w>`` = errors ÷ total over
  each window ``w`` the target's burn-rate levels read (and 5m), and over the budget's
  period as the mean of the 5m ratio;
- ``sloth-slo-meta-recordings-<id>``: the objective, the error budget, the period in days,
  the current and period burn rates, the budget left, ``sloth_slo_info``;
- ``sloth-slo-alerts-<id>``: one alert per severity, each level a condition that holds when
  both its short and its long window burn faster than its factor: levels of factor 6 and
  above page (``sloth_severity: page``), the others open a ticket, as Sloth's defaults
  (14.4x and 6x page, 3x and 1x ticket).

What PromQL cannot know is said in a comment of the output: a target's calendar hours and
maintenance windows (Prometheus counts every minute), a calendar window (Sloth's periods
roll: a month is read as 30 days).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import yaml

from engine.lang.model import RuleSet, Target
from schemas.rules import WINDOW_PLACEHOLDER
from schemas.values import format_duration

FIVE_MINUTES = timedelta(minutes=5)
PAGE_FROM = Fraction(6)                      # a level of this factor or more pages, as Sloth's 14.4x and 6x
CALENDAR_DAYS = {"month": 30, "week": 7, "day": 1}


class UnknownService(ValueError):
    """The service asked for is not in the rules; the message lists those that are."""


@dataclass
class Export:
    """The rules written (a Prometheus rule file as data) and what was left out, and why."""

    groups: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)      # (target, why)
    notes: list[str] = field(default_factory=list)                    # what the rules cannot count

    def text(self, service: str) -> str:
        head = [f"# Prometheus rules of the error budgets of service {service!r}, written by slm export",
                "# prometheus-rules as Sloth lays them out (docs/RULES.md, \"Prometheus rules\")."]
        head += [f"# {note}" for note in self.notes]
        head += [f"# left out: {target}: {why}" for target, why in self.skipped]
        return "\n".join(head) + "\n" + yaml.dump({"groups": self.groups}, Dumper=_Dumper, sort_keys=False,
                                                  allow_unicode=True, width=1000)


def prometheus_rules(ruleset: RuleSet, service: str) -> Export:
    """The rules of every target of ``service`` (of agreements in force) that keeps an error
    budget; a target that cannot be written is listed in ``skipped``."""
    if service not in ruleset.services:
        known = ", ".join(sorted(ruleset.services)) or "none"
        raise UnknownService(f"unknown service {service!r} (services: {known})")
    out = Export()
    for target in sorted(ruleset.targets.values(), key=lambda t: t.id):
        if target.service != service or target.agreement.status == "retired":
            continue
        if target.measure == "duration":
            out.skipped.append((target.id, "a duration clock keeps no error budget"))
            continue
        if target.prometheus is None:
            out.skipped.append((target.id, "names no PromQL (prometheus: {errors, total})"))
            continue
        out.groups += _groups(target, service)
        out.notes += _cannot_count(target)
    return out


def window_days(target: Target) -> tuple[str, str | None]:
    """The budget's period as Sloth names it (``28d``) and, for a calendar window, what it
    stands for (a month is read as 30 rolling days)."""
    rolling = target.rolling
    if rolling is not None:
        return format_duration(rolling), None
    window = str(target.spec.get("window", "month"))
    days = CALENDAR_DAYS.get(window) or int(window[:-1])
    return f"{days}d", window


def decimal(value: Fraction) -> str:
    """A fraction as a decimal Prometheus reads back exactly when it has one (0.001), else
    as the nearest float."""
    numerator, denominator = value.numerator, value.denominator
    rest = denominator
    for prime in (2, 5):
        while rest % prime == 0:
            rest //= prime
    if rest != 1:
        return repr(float(value))
    return format(Decimal(numerator) / Decimal(denominator), "f")


def _groups(target: Target, service: str) -> list[dict[str, Any]]:
    spec = target.prometheus or {}
    goal = target.goal
    assert isinstance(goal, Fraction)            # a budget target's goal is a share
    budget = decimal(1 - goal)
    ident = f"{service}-{target.id}"
    own = {"sloth_id": ident, "sloth_service": service, "sloth_slo": target.id}
    labels = {**spec.get("labels", {}), **own}
    selector = "{" + ", ".join(f'{k}="{v}"' for k, v in own.items()) + "}"
    period, _ = window_days(target)
    windows = sorted({FIVE_MINUTES} | {w for level in target.burn_rate for w in (level.long, level.short)})
    sli = [{"record": f"slo:sli_error:ratio_rate{format_duration(w)}",
            "expr": _ratio(spec["errors"], spec["total"], format_duration(w)),
            "labels": {**labels, "sloth_window": format_duration(w)}} for w in windows]
    sli.append({"record": f"slo:sli_error:ratio_rate{period}",
                "expr": f"sum_over_time(slo:sli_error:ratio_rate5m{selector}[{period}])\n"
                        f"/ ignoring (sloth_window)\n"
                        f"count_over_time(slo:sli_error:ratio_rate5m{selector}[{period}])\n",
                "labels": {**labels, "sloth_window": period}})
    meta = [
        {"record": "slo:objective:ratio", "expr": f"vector({decimal(goal)})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector(1-{decimal(goal)})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({period[:-1]})", "labels": labels},
        {"record": "slo:current_burn_rate:ratio", "expr": _over_budget("slo:sli_error:ratio_rate5m", selector),
         "labels": labels},
        {"record": "slo:period_burn_rate:ratio", "expr": _over_budget(f"slo:sli_error:ratio_rate{period}", selector),
         "labels": labels},
        {"record": "slo:period_error_budget_remaining:ratio",
         "expr": f"1 - slo:period_burn_rate:ratio{selector}", "labels": labels},
        {"record": "sloth_slo_info", "expr": "vector(1)",
         "labels": {**labels, "sloth_mode": "slm-export", "sloth_objective": decimal(goal * 100),
                    "sloth_spec": "slm"}},
    ]
    groups = [{"name": f"sloth-slo-sli-recordings-{ident}", "rules": sli},
              {"name": f"sloth-slo-meta-recordings-{ident}", "rules": meta}]
    alerts = []
    name = spec.get("alert") or "".join(part.capitalize() for part in target.id.replace("_", "-").split("-")) \
        + "ErrorBudgetBurn"
    for severity, levels in (("page", [lv for lv in target.burn_rate if lv.factor >= PAGE_FROM]),
                             ("ticket", [lv for lv in target.burn_rate if lv.factor < PAGE_FROM])):
        if not levels:
            continue
        conditions = [f"(\n    (slo:sli_error:ratio_rate{format_duration(lv.short)}{selector} > "
                      f"({decimal(lv.factor)} * {budget}))\n"
                      f"    and ignoring (sloth_window)\n"
                      f"    (slo:sli_error:ratio_rate{format_duration(lv.long)}{selector} > "
                      f"({decimal(lv.factor)} * {budget}))\n)"
                      for lv in sorted(levels, key=lambda lv: -lv.factor)]
        alerts.append({"alert": name, "expr": "\nor ignoring (sloth_window)\n".join(conditions) + "\n",
                       "labels": {**spec.get("labels", {}), "sloth_severity": severity,
                                  "slm_levels": ",".join(lv.text for lv in levels)},
                       "annotations": {
                           "summary": f"{target.name}: the error budget burns too fast",
                           "title": f"({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO "
                                    f"error budget burn rate is too fast."}})
    if alerts:
        groups.append({"name": f"sloth-slo-alerts-{ident}", "rules": alerts})
    return groups


def _ratio(errors: str, total: str, window: str) -> str:
    return (f"({errors.replace(WINDOW_PLACEHOLDER, window)})\n/\n"
            f"({total.replace(WINDOW_PLACEHOLDER, window)})\n")


def _over_budget(record: str, selector: str) -> str:
    return (f"{record}{selector}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\n"
            f"slo:error_budget:ratio{selector}\n")


def _cannot_count(target: Target) -> list[str]:
    notes = []
    if not target.calendar.all_hours:
        notes.append(f"{target.id}: counts every minute; slm counts the service hours of calendar "
                     f"{target.calendar.id!r} only")
    if target.excludes_maintenance:
        notes.append(f"{target.id}: counts maintenance windows, which slm leaves out")
    period, calendar = window_days(target)
    if calendar is not None:
        notes.append(f"{target.id}: the calendar window {calendar!r} is read as the last {period}, rolling")
    return notes


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL) as literal blocks, as Sloth writes them; shared label
    maps written out each time (no YAML anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)
