"""Restatements that keep the past (docs/OPERATIONS.md "Restatements"): a settled month of
a service evaluated again over the stored history (what-if, engine/service/whatif.py),
under the rules in force or a stored version, with a reason. What it decides differently is
recorded as superseding decisions, each naming the recorded decisions it replaces; nothing
recorded is changed or deleted. It counts in reports only once a token of another name
approves it, the four-eyes rule of waivers (engine/service/waivers.py).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from engine.eval.clock import month_span
from engine.eval.packs import KIND as REVIEW_PACK
from engine.lang.loader import load_texts
from engine.lang.model import RuleSet
from engine.service.reports import SPAN_MARGIN
from engine.service.waivers import WaiverRefused, approvable, revocable
from engine.service.whatif import Bounds, ReplayLimit, recorded, replay, standing
from engine.store.store import Store
from schemas.values import format_instant, report_months

# what a restatement may replay in one request (a month and its warm-up)
RESTATE_BOUNDS = Bounds(max_facts=500_000, max_seconds=120.0)
COMPARED = ("at", "data")          # a replayed decision that differs in these supersedes the recorded one


class Restatements:
    """Request (evaluate and record), approve and revoke restatements."""

    def __init__(self, store: Store, ruleset: Callable[[], RuleSet], now: Callable[[], datetime],
                 bounds: Bounds = RESTATE_BOUNDS):
        self.store, self.ruleset, self.now, self.bounds = store, ruleset, now, bounds

    def request(self, asked: dict, by: str) -> dict:
        """Restate ``asked["service"]``'s month ``asked["period"]`` (YYYY-MM, ended at least a
        day ago) for ``asked["reason"]``, under ``asked.get("rules")`` (a stored version or
        a unique prefix of one; default: the rules in force). Recorded ``requested``."""
        reason = (asked.get("reason") or "").strip()
        if not reason:
            raise WaiverRefused(422, "a restatement needs a reason", "reason")
        ruleset = self._rules(asked.get("rules"))
        service = asked.get("service")
        if service not in ruleset.services:
            raise WaiverRefused(422, f"unknown service {service!r} in rules {ruleset.version[:19]}… (services: "
                                     f"{', '.join(sorted(ruleset.services))})", "service")
        period = asked.get("period") or ""
        try:
            months = report_months(period)
        except ValueError as err:
            raise WaiverRefused(422, str(err), "period") from None
        if len(months) != 1:
            raise WaiverRefused(422, f"{period!r}: a restatement restates one month, YYYY-MM", "period")
        start, end = month_span(period)
        since, until = start - SPAN_MARGIN, end + SPAN_MARGIN
        now = self.now()
        if now < until:
            raise WaiverRefused(422, f"{period} is not settled: a month can be restated from "
                                     f"{format_instant(until)} on (a day after it ends)", "period")
        try:
            replayed = replay(self.store, ruleset, since, until, bounds=self.bounds)
        except ReplayLimit as err:
            raise WaiverRefused(422, str(err), "period") from None
        replayed.decisions += [d.as_dict() for d in replayed.engine.advance(until).decisions]
        ours = {t.id for t in ruleset.targets.values() if t.service == service}
        after = {k: d for k, d in standing(replayed.decisions, since, until).items() if d.get("target") in ours}
        before = {k: d for k, d in standing(recorded(self.store, since, until), since, until).items()
                  if d.get("service") == service and d["kind"] != REVIEW_PACK}      # a pack is sent, not restated
        superseding = [_superseding(d, before.get(k)) for k, d in sorted(after.items(), key=_settling_first)
                       if k not in before or any(before[k].get(f) != d.get(f) for f in COMPARED)]
        withdrawn = {k: d for k, d in before.items() if k not in after}
        for decision in superseding:          # a cycle decided otherwise: its new decision replaces the old
            if not decision["supersedes"]:
                same = [k for k, d in withdrawn.items() if _cycle(d) == _cycle(decision)]
                decision["supersedes"] = sorted(withdrawn.pop(k)["id"] for k in same)
        withdraws = sorted(d["id"] for d in withdrawn.values())
        windows, down_spans = {}, {}
        for target in sorted(ours):
            if ruleset.targets[target].measure != "duration":
                reading = replayed.engine.window_reading(target, period, until)
                if reading is not None:
                    windows[target] = [reading[0] // timedelta(microseconds=1),
                                       reading[1] // timedelta(microseconds=1)]
                    spans = replayed.engine.window_down_spans(target, period, until) or []
                    down_spans[target] = [[format_instant(a), format_instant(b)] for a, b in spans]
        return self.store.request_restatement(
            {"service": service, "period": period, "reason": reason, "rules": ruleset.version,
             "facts": replayed.facts, "decisions": superseding, "withdraws": withdraws, "windows": windows,
             "down_spans": down_spans},
            by, now)

    def approve(self, restatement_id: str, by: str) -> dict:
        """Put a requested restatement in effect; refused (403) to the token that requested it."""
        return self._step(restatement_id, "approved", by, approvable("restatement", restatement_id, by))

    def revoke(self, restatement_id: str, by: str, reason: str) -> dict:
        """End a restatement, requested or approved: reports show the recorded figures again."""
        if not (reason or "").strip():
            raise WaiverRefused(422, "a revocation needs a reason", "reason")
        return self._step(restatement_id, "revoked", by, revocable("restatement", restatement_id), reason.strip())

    def _step(self, restatement_id: str, event: str, by: str, check, reason: str | None = None) -> dict:
        restatement = self.store.restatement_event(restatement_id, event, by, self.now(), check, reason)
        if restatement is None:
            raise WaiverRefused(404, f"no restatement {restatement_id!r}")
        return restatement

    def _rules(self, version: str | None) -> RuleSet:
        """The rules to restate by: the rules in force, or a version put in force once (its
        full hash or a prefix only one of them has)."""
        if not version:
            return self.ruleset()
        known = sorted({c["ruleset"] for c in self.store.cutovers()})
        found = [v for v in known if v == version] or [v for v in known if v.startswith(version)]
        if len(found) != 1:
            what = "names no version put in force" if not found else f"is the start of {len(found)} versions"
            raise WaiverRefused(422,
                                f"rules {version!r} {what}: give a version of GET /v1/rules/versions", "rules")
        files = self.store.ruleset_files(found[0])
        if files is None:
            raise WaiverRefused(422, f"rules {found[0][:19]}… are not stored in the database", "rules")
        return load_texts(files, root=f"version {found[0][:19]}")


def _settling_first(item: tuple[tuple, dict]) -> tuple:
    """Decisions by what they are about, those that settle a cycle (met, breach) first."""
    about, decision = item
    return (decision["kind"] not in ("met", "breach"), str(about))


def _cycle(decision: dict) -> tuple:
    return decision.get("target"), decision.get("subject"), decision.get("cycle")


def _superseding(replayed: dict, replaced: dict | None) -> dict:
    """A replayed decision as the restatement records it: what it is about, when, its
    figures, the rule that decided it, and ``supersedes`` (the recorded decision it replaces,
    if any). Its id is given when the restatement is recorded."""
    kept = {k: replayed.get(k) for k in ("kind", "target", "subject", "service", "agreement", "at", "level",
                                         "cycle", "activity", "repeat", "data", "rule", "shadow")}
    return {**kept, "supersedes": [] if replaced is None else [replaced["id"]]}


def in_force(restatements: list[dict]) -> dict[str, dict]:
    """Month → the restatement of one service's that counts: of the approved ones, the one
    approved last (``restatements``: that service's)."""
    out: dict[str, dict] = {}
    for r in sorted((r for r in restatements if r["status"] == "approved"), key=lambda r: r["approved_at"]):
        out[r["period"]] = r
    return out
