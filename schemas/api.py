"""Schemas of the HTTP API: query arguments, response bodies and problem details.

The same classes validate requests and, through apispec, make ``/openapi.json``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from . import strings
from .limits import DEFAULT_LIMIT, MAX_CLOCKS, MAX_LIMIT
from .records import NOTIFICATION_STATUSES, SILENCE_MATCHERS
from .strings import KNOWN, MAX_WAIT_SECONDS, Matches
from .values import parse_duration, parse_rfc3339, report_months

PERIOD = re.compile(strings.PERIOD)
CURSOR = re.compile(strings.CURSOR)


def known(names: str, description: str, **kwargs: Any) -> fields.String:
    """A name the rules define (strings.KNOWN)."""
    return fields.String(metadata={"description": description, KNOWN: names}, **kwargs)


def text(description: str | None = None, **kwargs: Any) -> fields.String:
    """Free text in a query string: anything but NUL (api/body.py refuses it, 400)."""
    metadata: dict[str, Any] = {"pattern": strings.NO_NUL}
    if description:
        metadata["description"] = description
    return fields.String(metadata=metadata, **kwargs)


class InstantArg(fields.String):
    """An RFC 3339 time in a query string, checked (kept as text)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "date-time", "pattern": strings.INSTANT, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> str:
        written = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_rfc3339(written)
        except ValueError as err:
            raise ValidationError(str(err)) from None
        return written


class QuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE


class PageArgs(QuerySchema):
    cursor = fields.String(metadata={"description": "`next` of the previous page"},
                           validate=Matches(strings.CURSOR, error="not a cursor from this API: pass the "
                                                          "`next` of the previous page (digits)"))
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(1, MAX_LIMIT),
                           metadata={"description": f"items per page (1–{MAX_LIMIT})"})


class TimeRangeArgs(PageArgs):
    since = InstantArg(metadata={"description": "from this instant (inclusive), RFC 3339"})
    until = InstantArg(metadata={"description": "up to this instant (exclusive), RFC 3339"})


DEFINED = "; one the rules define (else 400 naming the known ones)"


class DecisionArgs(TimeRangeArgs):
    service = known("services", "a service" + DEFINED)
    target = known("targets", "a target" + DEFINED)
    subject = text()
    kind = known("kinds", "warning, breach, met, escalation, retracted, cancelled or a kind a Rule decides" + DEFINED)
    retracted = fields.Boolean(truthy={"true"}, falsy={"false"},
                               metadata={"description": "`true`: only decisions a later `retracted` decision "
                                                        "superseded; `false`: only the others"})


def _wait(value: str) -> timedelta:
    """A duration of at most MAX_WAIT_SECONDS, written as strings.WAIT says."""
    if not strings.matches(strings.WAIT, value):
        try:
            parse_duration(value)
        except ValueError as err:
            raise ValidationError(str(err)) from None
        raise ValidationError(f"wait at most {MAX_WAIT_SECONDS}s, written without spaces (e.g. 5s, PT5S)")
    return parse_duration(value)


class IngestArgs(QuerySchema):
    wait = fields.Function(deserialize=_wait, metadata={
        "type": "string", "example": "5s", "pattern": strings.WAIT,
        "description": f"on an API node (`--role api`): wait up to this long (at most {MAX_WAIT_SECONDS}s, "
                       "e.g. `5s`) for the partition's owner to evaluate the facts, and list their decisions; "
                       "facts still pending then are answered `evaluated: false`, with 202. A node that "
                       "evaluates facts itself answers at once, always with 200"})


class FactArgs(TimeRangeArgs):
    service = known("services", "a service" + DEFINED)
    subject = text()
    type = fields.String(validate=Matches(strings.TYPE_NAME, error="not a dotted type name (example: incident.opened)"))


class NotificationArgs(PageArgs):
    decision = text()
    recipient = text()
    status = fields.String(validate=validate.OneOf(NOTIFICATION_STATUSES, error="unknown status {input!r} "
                                                                                "(known: {choices})"))


class ClockArgs(QuerySchema):
    service = known("services", "a service" + DEFINED)
    target = known("targets", "a target" + DEFINED)
    subject = text()
    limit = fields.Integer(load_default=MAX_LIMIT, validate=validate.Range(1, MAX_CLOCKS),
                           metadata={"description": "at most this many clocks (ordered by key)"})


class ReportArgs(QuerySchema):
    service = known("services-in-force", "a service of the rules in force (else 400 naming them)", required=True)
    period = fields.String(required=True, validate=Matches(strings.PERIODS,
                                                           error=f"expected {strings.PERIODS_RANGE}, e.g. 2026-11 "
                                                                 "or 2026-09..2026-11"),
                           metadata={"description": "a calendar month, YYYY-MM, or the months from one to another "
                                                    "inclusive, YYYY-MM..YYYY-MM (the last not before the first, at "
                                                    f"most {strings.MAX_MONTHS} months), each taken in each target's "
                                                    "calendar timezone"})
    customer = known("customers-in-force", "only the agreements naming this customer (one an agreement of the "
                                           "rules in force names, else 400 naming them)")

    @validates_schema
    def _months(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "period" in data:
            try:
                report_months(data["period"])
            except ValueError as err:
                raise ValidationError(str(err), "period") from None


class RuleRefSchema(Schema):
    id = fields.String()
    file = fields.String()
    line = fields.Integer()
    ruleset = fields.String()
    text = fields.String(allow_none=True, metadata={"description": "in a trace: the definition's YAML text as "
                                                                  "this rule-set version has it"})


class DecisionSchema(Schema):
    """A decision as recorded (``schemas.records.Decision``; a test keeps the two in step)."""

    id = fields.String(required=True)
    kind = fields.String(required=True)
    target = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    service = fields.String(allow_none=True)
    agreement = fields.String(allow_none=True)
    agreement_type = fields.String(allow_none=True)
    at = fields.String(required=True)
    shadow = fields.Boolean()
    cycle = fields.Integer(allow_none=True)
    level = fields.String()
    activity = fields.String()
    repeat = fields.Integer()
    severity = fields.String(metadata={"description": "a Rule's decisions: as its `decide` says"})
    message = fields.String(metadata={"description": "a Rule's decisions: its rendered message"})
    data = fields.Dict()
    rule = fields.Nested(RuleRefSchema)
    because = fields.List(fields.String())


class RetractedBySchema(Schema):
    """The decision that retracted this one: when, and why."""

    id = fields.String()
    at = fields.String()
    reason = fields.String(allow_none=True)


class ReadDecisionSchema(DecisionSchema):
    """A decision as the API answers it: the record, and ``retracted_by`` if a later
    decision retracted it (not part of the record: it is found by the retraction's
    ``data.retracts``)."""

    retracted_by = fields.Nested(RetractedBySchema, metadata={"description": "present only if it was retracted"})


class NotificationSchema(Schema):
    """A notification as recorded (``schemas.records.Notification``; a test keeps the two in step)."""

    id = fields.String(required=True)
    decision = fields.String(required=True)
    activity = fields.String()
    recipient = fields.String()
    roles = fields.List(fields.String())
    raci = fields.String()
    channel = fields.String(metadata={"description": "email, webhook, chat, writeback or default (no channel)"})
    message = fields.String()
    status = fields.String(metadata={"description": "pending, retrying, sent, failed, muted, cancelled "
                                                    "or undeliverable"})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.String(allow_none=True, metadata={"description": "when it is tried next"})
    message_id = fields.String(allow_none=True,
                               metadata={"description": "the message it went out in (Message-ID / Idempotency-Key)"})
    oncall = fields.List(fields.Dict(), metadata={
        "description": "present when an on-call schedule routed it: per schedule, the schedule (relative to the "
                       "rules directory), the role, the decision's instant, whom it gave and the event that gave "
                       "them (event, uid, from, to), or, nobody being on call, the fallback told"})
    call = fields.Dict(metadata={
        "description": "present for a write-back (channel writeback): the request as rendered when routed, "
                       "its kind (jira, servicenow, pagerduty), URL and texts; the credentials only by the "
                       "names of their environment variables"})


class StoredFactSchema(Schema):
    seq = fields.Integer()
    received_at = fields.String()
    outcome = fields.List(fields.String(), allow_none=True,
                          metadata={"description": "ids of the decisions the fact caused (null: not evaluated yet)"})
    evaluated = fields.Boolean(metadata={"description": "false while the fact waits for its partition's owner"})
    refused = fields.String(metadata={"description": "why the owner's engine could not evaluate the fact"})
    fact = fields.Dict()


class DecisionPageSchema(Schema):
    items = fields.List(fields.Nested(ReadDecisionSchema))
    next = fields.String(allow_none=True, metadata={"description": "cursor of the next page"})


class NotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema))
    next = fields.String(allow_none=True)


class FactPageSchema(Schema):
    items = fields.List(fields.Nested(StoredFactSchema))
    next = fields.String(allow_none=True)


class TraceSchema(Schema):
    ref = fields.String()
    kind = fields.String()
    at = fields.String()
    target = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    rule = fields.Nested(RuleRefSchema, allow_none=True)
    data = fields.Dict()
    fact = fields.Dict()
    clock = fields.String()
    reading = fields.Dict()
    cycle = fields.Integer(allow_none=True)
    retracted_by = fields.Nested(RetractedBySchema, metadata={"description": "a decision: present only if it "
                                                                             "was retracted"})
    children = fields.List(fields.Nested(lambda: TraceSchema()))
    waivers = fields.List(fields.Nested(lambda: WaiverSchema()),
                          metadata={"description": "the root decision: the waivers that name it or hold it in their "
                                                   "period, whatever their status"})


class ErrorBudgetSchema(Schema):
    """A budget clock's error budget read now (docs/RULES.md, "Error budgets")."""

    window = fields.String(metadata={"description": "the window as the target writes it", "example": "rolling 28d"})
    window_start = fields.String(metadata={"description": "the first instant of the window judged now (a rolling "
                                                          "window: one length ago)"})
    window_end = fields.String(metadata={"description": "the end of that window (a rolling one: now)"})
    unit = fields.String(metadata={"description": "what `bad` and `budget` count: `seconds` of service time "
                                                  "(availability, threshold) or `events` (ratio)",
                                   "enum": ["seconds", "events"]})
    bad = fields.Float(metadata={"description": "bad time or bad events in the window"})
    budget = fields.Float(metadata={"description": "(1 − goal) × the window's total"})
    remaining = fields.Float(metadata={"description": "the share of the budget left, 1 − bad ÷ budget (negative "
                                                      "once exhausted)"})
    burn_rate = fields.Float(metadata={"description": "the window's bad share over 1 − goal: 1 spends the budget "
                                                      "exactly over the window"})
    burn_rates = fields.Dict(keys=fields.String(), values=fields.Float(), metadata={
        "description": "the burn rate of each window read, by its length: the budget's own, each burn-rate level's "
                       "long and short window, the forecast's look-back", "example": {"28d": 0.2, "1h": 16.7, "5m": 0}})
    forecast_over = fields.String(metadata={"description": "the look-back whose burn rate is projected"})
    projected_exhaustion = fields.String(allow_none=True, metadata={
        "description": "when the budget left runs out at the burn rate of the last `forecast_over` (null: nothing "
                       "burns)"})
    at_risk = fields.Boolean(metadata={"description": "an `at_risk` decision stands: the projection falls inside "
                                                      "the window"})
    exhausted = fields.Boolean(metadata={"description": "the budget is used up (a breach stands)"})
    burning = fields.List(fields.String(), metadata={"description": "the burn-rate levels firing now",
                                                      "example": ["14.4x"]})


class ClockSchema(Schema):
    clock = fields.String()
    target = fields.String()
    subject = fields.String()
    service = fields.String(allow_none=True)
    agreement = fields.String()
    cycle = fields.Integer()
    state = fields.String()
    counted = fields.String()
    budget = fields.String()
    remaining = fields.String()
    next_deadline = fields.String(allow_none=True)
    shadow = fields.Boolean()
    error_budget = fields.Nested(ErrorBudgetSchema, allow_none=True, metadata={
        "description": "a clock that keeps an error budget (ratio targets, rolling windows, burn-rate levels, "
                       "forecasts): its figures and forecast now; null for the others"})
    as_of = fields.String()


class ClockListSchema(Schema):
    items = fields.List(fields.Nested(ClockSchema))
    total = fields.Integer(metadata={"description": "running clocks matching the filters"})


class ExplainReasonSchema(Schema):
    target = fields.String(allow_none=True, metadata={"description": "null: a reason about the fact as a whole"})
    reason = fields.String(metadata={"description": "the first condition that failed, e.g. "
                                                    "`applies_to: where priority: \"p1\" ≠ \"P1\"`"})


class IngestResultSchema(Schema):
    id = fields.String()
    source = fields.String()
    status = fields.String(metadata={"description": "accepted, duplicate, or refused (the owner's engine could "
                                                    "not evaluate a fact an API node stored; `reasons` says why)"})
    seq = fields.Integer(metadata={"description": "on an API node: the fact's place in arrival order"})
    evaluated = fields.Boolean(metadata={"description": "false while the fact waits for its partition's owner "
                                                        "(an API node answered before it was evaluated)"})
    decisions = fields.List(fields.String())
    matched = fields.List(fields.String(), metadata={
        "description": "present, and empty, only for an accepted fact that moved no clock, matched no Rule "
                       "and decided nothing"})
    reasons = fields.List(fields.Nested(ExplainReasonSchema), metadata={
        "description": "with `matched: []`: why, per target of the fact's service, nearest misses first "
                       "(at most 5); `GET /v1/facts/{id}/explain` gives all"})


class FactExplainArgs(QuerySchema):
    source = text("the fact's source; needed when several sources posted a fact with this id")


class ExplainEffectSchema(Schema):
    target = fields.String()
    effect = fields.String(metadata={"description": "e.g. `stops the clock of INC-9`"})


class ClockChangeSchema(Schema):
    clock = fields.String(metadata={"description": "`target/subject`"})
    before = fields.String(allow_none=True, metadata={"description": "idle, running, paused or stopped; "
                                                                     "null: no such clock yet"})
    after = fields.String()


class ExplainedDecisionSchema(Schema):
    id = fields.String()
    kind = fields.String()
    target = fields.String()
    subject = fields.String()
    at = fields.String()
    level = fields.String()
    activity = fields.String()


class FactExplanationSchema(Schema):
    """What a stored fact did and why it did not do more, under the rules in force and with
    the clocks running when it arrived (rebuilt by replaying the stored log up to it)."""

    fact = fields.String()
    source = fields.String()
    seq = fields.Integer(metadata={"description": "its place in the fact log"})
    type = fields.String()
    subject = fields.String(allow_none=True)
    service = fields.String(allow_none=True)
    time = fields.String()
    ruleset = fields.String(metadata={"description": "the rule-set version in force when it was applied"})
    replayed = fields.Integer(metadata={"description": "stored facts replayed to stand where it arrived "
                                                       "(after the snapshot used, if any)"})
    reason = fields.String(metadata={"description": "present when the fact affects nothing as a whole "
                                                    "(its service is not defined)"})
    affected = fields.List(fields.Nested(ExplainEffectSchema))
    not_affected = fields.List(fields.Nested(ExplainReasonSchema))
    clocks = fields.List(fields.Nested(ClockChangeSchema),
                         metadata={"description": "each clock of its subject, before and after it"})
    decisions = fields.List(fields.Nested(ExplainedDecisionSchema),
                            metadata={"description": "the decisions attributed to it (its stored outcome)"})


class IngestResponseSchema(Schema):
    accepted = fields.Integer()
    duplicates = fields.Integer()
    results = fields.List(fields.Nested(IngestResultSchema))
    decisions = fields.List(fields.Nested(DecisionSchema))


class RejectedAlertSchema(Schema):
    alert = fields.Integer(metadata={"description": "its position in the payload's `alerts` (from 0)"})
    fingerprint = fields.String(allow_none=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"description": "alert field (`labels.service`, `startsAt`, …) -> why"})


class AlertIngestResponseSchema(IngestResponseSchema):
    """What a webhook group did: its good alerts stored, the others listed with why."""
    rejected = fields.List(fields.Nested(RejectedAlertSchema),
                           metadata={"description": "the alerts that could not be placed (nothing of them stored)"})


class MappingIngestResponseSchema(IngestResponseSchema):
    """What a tool's webhook became through its mapping."""
    mapping = fields.String(metadata={"description": "the mapping that read the payload"})
    reasons = fields.List(fields.String(), metadata={
        "description": "why each mapped fact that was not made was not (its `when` was false, a path found "
                       "nothing, a value its map does not name); all of them when the payload made no fact"})


REASON = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"       # some text that is not all blanks
MAX_REASON = 2000


def _reason(description: str, **kwargs: Any) -> fields.String:
    return fields.String(validate=[validate.Length(1, MAX_REASON), Matches(REASON, error="give a reason")],
                         metadata={"description": description}, **kwargs)


class SilenceInputSchema(Schema):
    class Meta:
        unknown = RAISE

    matchers = fields.Dict(
        keys=fields.String(validate=validate.OneOf(SILENCE_MATCHERS, error="not a matcher (matchers: {choices})")),
        values=fields.String(validate=[validate.Length(1, 200), Matches(strings.GLOB, error="a glob pattern that "
                                                                        "is not only `*` (it would match all)")]),
        required=True, validate=validate.Length(1, len(SILENCE_MATCHERS), error="at least one of service, target, "
                                                "subject, recipient: a silence of everything would hide every breach"),
        metadata={"description": "what it mutes, each a glob pattern (`*`, `?`, `[…]`) that must match: "
                                 "`service`, `target`, `subject` of the decision, `recipient` of the notification"})
    starts_at = InstantArg(metadata={"description": "when it starts muting (default: now)"})
    ends_at = InstantArg(metadata={"description": "when it stops, after `starts_at` and now; give this or "
                                                  "`duration`, not both"})
    duration = fields.String(validate=Matches(strings.DURATION, error="not a duration such as 2h, 30m, 1d, 1h30m"),
                             metadata={"description": "how long from `starts_at` (`2h`, `30m`, `1d`, `1h30m`); "
                                                      "give this or `ends_at`, not both"})
    reason = fields.String(required=True, validate=[validate.Length(1, 1000),
                                                    Matches(strings.REASON, error="say why: not blank")],
                           metadata={"description": "why, for whoever wonders why nobody was told"})


class SilenceSchema(Schema):
    id = fields.String()
    matchers = fields.Dict(keys=fields.String(), values=fields.String())
    starts_at = fields.String()
    ends_at = fields.String()
    created_by = fields.String(metadata={"description": "the name of the token that made it"})
    reason = fields.String()
    created_at = fields.String()
    expired_at = fields.String(allow_none=True, metadata={"description": "when it was ended early"})
    expired_by = fields.String(allow_none=True)
    state = fields.String(metadata={"description": "pending, active or expired"})


class SilenceListSchema(Schema):
    items = fields.List(fields.Nested(SilenceSchema))


class SilenceArgs(QuerySchema):
    state = fields.String(validate=validate.OneOf(("pending", "active", "expired"),
                                                  error="unknown state {input!r} (known: {choices})"))


class VersionReportSchema(Schema):
    version = fields.String()
    goal = fields.String(allow_none=True, metadata={"description": "the target's goal in that version"})
    met = fields.Integer()
    breached = fields.Integer()


class SpannedVersionSchema(Schema):
    version = fields.String()
    from_ = fields.String(data_key="from", attribute="from", metadata={"description": "in force from (UTC)"})


class MaintenanceSpanSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from",
                          metadata={"description": "start (UTC), clipped to the period"})
    to = fields.String(metadata={"description": "end (UTC), clipped to the period; the report's instant if still open"})
    source = fields.String(metadata={"description": "rules:<Maintenance id> (declared) or fact:<id> (posted)"})


class MaintenanceReportSchema(Schema):
    windows = fields.List(fields.Nested(MaintenanceSpanSchema))
    excluded_minutes = fields.Float(metadata={"description": "service-calendar minutes inside the windows"})


class WaiverNamedSchema(Schema):
    id = fields.String()
    reason = fields.String()
    since = fields.String(metadata={"description": "the waived period's start (UTC)"})
    until = fields.String(metadata={"description": "the waived period's end (UTC), not included"})
    requested_by = fields.String()
    approved_by = fields.String(allow_none=True)


class WaivedTimeSchema(Schema):
    down_minutes = fields.Float(metadata={"description": "down time inside the waived periods, service-calendar "
                                                         "minutes: not counted against the window"})
    service_minutes = fields.Float(metadata={"description": "service-calendar minutes of the waived periods "
                                                            "inside the window: taken out of its service time"})
    availability_unwaived = fields.Float(allow_none=True, metadata={"description": "percent achieved had no "
                                                                                  "period been waived"})
    waivers = fields.List(fields.Nested(WaiverNamedSchema), metadata={"description": "the approved waivers of "
                                                                                     "the target's periods"})


WAIVED_TIME = {"description": "window targets: what approved waivers of the target's periods took out of "
                              "its windows (null: nothing)"}


class RecordedFiguresSchema(Schema):
    subjects = fields.Integer()
    met = fields.Integer()
    breached = fields.Integer()
    waived = fields.Integer()
    compliance = fields.Float(allow_none=True)
    availability = fields.Float(allow_none=True)
    waived_time = fields.Nested(WaivedTimeSchema, allow_none=True, metadata=WAIVED_TIME)


class TrendSchema(Schema):
    period = fields.String(metadata={"description": "the month, YYYY-MM"})
    restated = fields.String(allow_none=True, metadata={"description": "the approved restatement whose figures "
                                                                       "these are (null: as recorded)"})
    original = fields.Nested(RecordedFiguresSchema, allow_none=True,
                             metadata={"description": "a restated month: the figures as recorded"})
    subjects = fields.Integer()
    met = fields.Integer()
    breached = fields.Integer()
    waived = fields.Integer(metadata={"description": "cycles a waiver in effect takes out: neither met nor "
                                                     "breached"})
    compliance = fields.Float(allow_none=True, metadata={"description": "percent met of met + breached"})
    availability = fields.Float(allow_none=True, metadata={"description": "percent achieved (windows)"})
    credit = fields.Float(allow_none=True, metadata={"description": "the credit this target's figure earned "
                                                                    "that month, percent (null: not credited "
                                                                    "or not measured)"})
    waived_time = fields.Nested(WaivedTimeSchema, allow_none=True, metadata=WAIVED_TIME)


class TargetReportSchema(Schema):
    target = fields.String()
    agreement = fields.String()
    customer = fields.String(metadata={"description": "the agreement's customer (empty if it names none)"})
    measure = fields.String()
    shadow = fields.Boolean()
    subjects = fields.Integer()
    met = fields.Integer()
    breached = fields.Integer()
    waived = fields.Integer(metadata={"description": "cycles a waiver in effect takes out: neither met nor "
                                                     "breached"})
    compliance = fields.Float(allow_none=True, metadata={"description": "percent met of met + breached"})
    availability = fields.Float(allow_none=True, metadata={"description": "percent achieved (windows)"})
    goal = fields.String(allow_none=True)
    waived_time = fields.Nested(WaivedTimeSchema, allow_none=True, metadata=WAIVED_TIME)
    by_version = fields.List(fields.Nested(VersionReportSchema),
                             metadata={"description": "met and breached per rule-set version that decided them"})
    maintenance = fields.Nested(MaintenanceReportSchema, allow_none=True,
                                metadata={"description": "targets with exclude: maintenance: the period's "
                                                         "windows and the minutes they took out"})
    trend = fields.List(fields.Nested(TrendSchema), metadata={"description": "the figures month by month, "
                                                                             "oldest first"})


class CreditBasisSchema(Schema):
    target = fields.String()
    figure = fields.Float(metadata={"description": "the target's monthly figure, percent"})
    below = fields.Float(allow_none=True, metadata={"description": "the tier it fell in (percent), if any"})
    credit = fields.Float(metadata={"description": "the credit that tier gives, percent of the month's charge"})


class CreditDueSchema(Schema):
    period = fields.String(metadata={"description": "the month the credit is due for, YYYY-MM"})
    agreement = fields.String()
    customer = fields.String()
    shadow = fields.Boolean(metadata={"description": "an SLR or draft: shown, not owed"})
    of = fields.String(metadata={"description": "the figure the tiers read: availability or compliance"})
    credit = fields.Float(metadata={"description": "percent of the month's charge credited: the largest "
                                                   "of its targets' (tiers do not add up)"})
    decided_by = fields.String(allow_none=True, metadata={"description": "the target whose figure decided it"})
    targets = fields.List(fields.Nested(CreditBasisSchema))
    unmeasured = fields.List(fields.String(), metadata={"description": "credited targets with no figure "
                                                                       "this month (they earn nothing)"})


class ComplianceReportSchema(Schema):
    service = fields.String()
    customer = fields.String(allow_none=True, metadata={"description": "the customer asked for, if any"})
    period = fields.String(metadata={"description": "as asked: a month or a range of months"})
    months = fields.List(fields.String(), metadata={"description": "the period's months, oldest first"})
    ruleset = fields.String()
    versions = fields.List(fields.Nested(SpannedVersionSchema),
                           metadata={"description": "the rule-set versions in force during the period"})
    targets = fields.List(fields.Nested(TargetReportSchema))
    credits = fields.List(fields.Nested(CreditDueSchema),
                          metadata={"description": "per month and agreement with credits: the service "
                                                   "credit due (docs/RULES.md, Service credits)"})
    restatements = fields.List(fields.Nested(lambda: RestatementNoteSchema()),
                               metadata={"description": "the approved restatements whose figures the report "
                                                        "shows, one per month restated, with their note"})


class BrokenLinkSchema(Schema):
    seq = fields.Integer(allow_none=True)
    id = fields.String(allow_none=True)
    reason = fields.String()


class OutsideRowSchema(Schema):
    seq = fields.Integer()
    id = fields.String(allow_none=True)


class ChainAuditSchema(Schema):
    ok = fields.Boolean()
    checked = fields.Integer(metadata={"description": "records verified"})
    count = fields.Integer(allow_none=True, metadata={"description": "records the sealed head counts"})
    first_seq = fields.Integer(allow_none=True)
    last_seq = fields.Integer(allow_none=True)
    keyed_from = fields.Integer(allow_none=True, metadata={"description": "first seq linked with the audit key"})
    macs_checked = fields.Boolean()
    checkpoint_ok = fields.Boolean()
    first_broken = fields.Nested(BrokenLinkSchema, allow_none=True)
    outside = fields.List(fields.Nested(OutsideRowSchema), metadata={
        "description": "rows of the chain's table that are not links of it (at most 100 named)"})
    outside_count = fields.Integer(metadata={"description": "how many rows are not links of the chain"})


class AuditSchema(Schema):
    """The decision chain's result at the top (as before), every chain under ``chains``."""
    ok = fields.Boolean()
    checked = fields.Integer()
    first_broken = fields.Nested(BrokenLinkSchema, allow_none=True)
    chains = fields.Dict(keys=fields.String(), values=fields.Nested(ChainAuditSchema))


class ChainPointSchema(Schema):
    seq = fields.Integer()
    count = fields.Integer()
    hash = fields.String()


class CheckpointSchema(Schema):
    """Where each audit chain stood, signed with the audit key (HMAC-SHA-256 in ``mac``)."""
    format = fields.String()
    at = fields.String()
    chains = fields.Dict(keys=fields.String(), values=fields.Nested(ChainPointSchema))
    mac = fields.String()


class RulesSummarySchema(Schema):
    version = fields.String()
    files = fields.List(fields.String())
    summary = fields.Dict()
    warnings = fields.List(fields.String())


class RuleVersionSchema(Schema):
    """A rule set that was put in force: when (the server's clock) and where in the fact log."""

    version = fields.String()
    at = fields.String(metadata={"description": "when it took effect (RFC 3339, UTC)"})
    after_fact = fields.Integer(metadata={"description": "the seq of the last fact stored before it"})
    by = fields.String(allow_none=True, metadata={"description": "who put it in force: the name of the token "
                                                                 "that reloaded, or `slm serve` at a start"})
    in_force = fields.Boolean(metadata={"description": "the version in force now"})


class RuleVersionListSchema(Schema):
    items = fields.List(fields.Nested(RuleVersionSchema))


class RuleVersionArgs(QuerySchema):
    against = text("another version: answer with a unified diff against it")


class RuleVersionFilesSchema(Schema):
    version = fields.String()
    files = fields.Dict(keys=fields.String(), values=fields.String(),
                        metadata={"description": "path relative to the rules directory -> YAML text"})
    against = fields.String(allow_none=True)
    diff = fields.String(allow_none=True, metadata={"description": "unified diff from `against` to this version"})


class PreviewDecisionSchema(Schema):
    kind = fields.String()
    target = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    level = fields.String(allow_none=True)
    activity = fields.String(allow_none=True)
    at = fields.String()
    from_ = fields.String(data_key="from", attribute="from", metadata={"description": "moved: where it was recorded"})


class PreviewOutcomeSchema(Schema):
    met = fields.Integer()
    breached = fields.Integer()
    compliance = fields.Float(allow_none=True)


class PreviewComplianceSchema(Schema):
    target = fields.String()
    before = fields.Nested(PreviewOutcomeSchema)
    after = fields.Nested(PreviewOutcomeSchema)


class RulePreviewSchema(Schema):
    """What the uploaded rules would have decided over the stored history, against the record."""

    ruleset = fields.String()
    since = fields.String()
    until = fields.String()
    facts = fields.Integer(metadata={"description": "stored facts replayed (with a warm-up before `since`)"})
    changed = fields.Boolean()
    added = fields.List(fields.Nested(PreviewDecisionSchema))
    removed = fields.List(fields.Nested(PreviewDecisionSchema))
    moved = fields.List(fields.Nested(PreviewDecisionSchema))
    compliance = fields.List(fields.Nested(PreviewComplianceSchema))


MAX_RULE_FILES = 500


class RuleFilesSchema(Schema):
    """Rule files to check: ``{"files": {"name.yaml": "<YAML text>"}}``."""

    class Meta:
        unknown = EXCLUDE

    files = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=256)),
                        values=fields.String(), required=True,
                        validate=validate.Length(min=1, max=MAX_RULE_FILES), metadata={
                            "description": "path (1 to 256 characters, relative to the rules directory) -> YAML "
                                           "text"})


class RuleCheckArgs(QuerySchema):
    in_force = fields.Boolean(load_default=False, truthy={"true"}, falsy={"false"}, metadata={
        "description": "check the uploads together with the rules in force; an upload replaces "
                       "the file of the same path (relative to the rules directory)"})


class RulePreviewArgs(QuerySchema):
    since = InstantArg(metadata={"description": "start of the period (default: 90 days ago)"})
    until = InstantArg(metadata={"description": "end of the period (default: now)"})


class RuleProblemSchema(Schema):
    file = fields.String()
    line = fields.Integer()
    column = fields.Integer()
    message = fields.String()
    code = fields.String()
    severity = fields.String()


class ProblemSchema(Schema):
    """RFC 9457 problem details; ``errors`` maps each bad field to what is wrong with it."""

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    problems = fields.List(fields.Nested(RuleProblemSchema))



# ---- waivers ---------------------------------------------------------------------------------

class WaiverRequestSchema(Schema):
    """``{"decision", "reason"}`` or ``{"target", "since", "until", "reason"}``."""

    class Meta:
        unknown = EXCLUDE

    decision = fields.String(validate=validate.Length(1, 200), metadata={
        "description": "the id of a met or breach decision whose cycle to leave out (else 422)"})
    target = known("targets-in-force", "a target of the rules in force: leave out its cycles settled in "
                                       "[since, until)")
    since = InstantArg(metadata={"description": "with target: the period's start (inclusive), RFC 3339"})
    until = InstantArg(metadata={"description": "with target: the period's end (exclusive), after since"})
    reason = _reason("why, for the approver and the audit", required=True)

    @validates_schema
    def _one_form(self, data: dict[str, Any], **kwargs: Any) -> None:
        period = [name for name in ("target", "since", "until") if name in data]
        if "decision" in data and period:
            raise ValidationError("give a decision, or a target with since and until, not both", "decision")
        if "decision" not in data and len(period) != 3:
            missing = [name for name in ("target", "since", "until") if name not in data]
            raise ValidationError(f"give a decision, or a target with since and until (missing: "
                                  f"{', '.join(missing)})", missing[0])


# the two forms, for the API document (OpenAPI 3.0 says it with oneOf)
WAIVER_FORMS = [{"required": ["decision"], "not": {"anyOf": [{"required": ["target"]}, {"required": ["since"]},
                                                              {"required": ["until"]}]}},
                {"required": ["target", "since", "until"], "not": {"required": ["decision"]}}]


class WaiverRevokeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    reason = _reason("why it no longer holds", required=True)


class WaiverSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"description": "requested (not in effect), approved (in effect) or revoked"})
    reason = fields.String()
    decision = fields.String(allow_none=True)
    target = fields.String(allow_none=True)
    since = fields.String(allow_none=True)
    until = fields.String(allow_none=True)
    requested_by = fields.String(metadata={"description": "the requesting token's name"})
    requested_at = fields.String()
    approved_by = fields.String(allow_none=True, metadata={"description": "the approving token's name: never the "
                                                                          "requester's"})
    approved_at = fields.String(allow_none=True)
    revoked_by = fields.String(allow_none=True)
    revoked_at = fields.String(allow_none=True)
    revoke_reason = fields.String(allow_none=True)


class WaiverArgs(QuerySchema):
    status = fields.String(validate=validate.OneOf(["requested", "approved", "revoked"]),
                           metadata={"description": "only waivers in this state"})


class WaiverListSchema(Schema):
    items = fields.List(fields.Nested(WaiverSchema))


# ---- restatements ----------------------------------------------------------------------------

class RestatementRequestSchema(Schema):
    """``{"service", "period", "reason"[, "rules"]}``."""

    class Meta:
        unknown = EXCLUDE

    service = known("services-in-force", "the service whose month to restate", required=True)
    period = fields.String(required=True, validate=Matches(strings.PERIOD, error="expected YYYY-MM, e.g. 2026-11"),
                           metadata={"description": "the month, YYYY-MM, ended at least a day before"})
    reason = _reason("why, for the approver, the audit and the report's note", required=True)
    rules = fields.String(validate=validate.Length(1, 200), metadata={
        "description": "the rule-set version to evaluate by (a version of GET /v1/rules/versions or a prefix only "
                       "it has); default: the rules in force"})


class RestatementNoteSchema(Schema):
    id = fields.String()
    period = fields.String()
    reason = fields.String()
    rules = fields.String(metadata={"description": "the rule-set version it evaluated by"})
    requested_by = fields.String()
    approved_by = fields.String()
    approved_at = fields.String()


class SupersedingDecisionSchema(Schema):
    id = fields.String(metadata={"description": "<restatement id>-<n>"})
    supersedes = fields.List(fields.String(), metadata={"description": "the recorded decision it replaces "
                                                                       "(empty: one recorded nothing for)"})
    kind = fields.String()
    target = fields.String()
    subject = fields.String(allow_none=True)
    service = fields.String(allow_none=True)
    agreement = fields.String(allow_none=True)
    at = fields.String()
    level = fields.String(allow_none=True)
    cycle = fields.Integer(allow_none=True)
    activity = fields.String(allow_none=True)
    repeat = fields.Integer(allow_none=True)
    data = fields.Dict()
    rule = fields.Dict(allow_none=True)
    shadow = fields.Boolean(allow_none=True)


class RestatementSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"description": "requested (not in effect), approved (in effect) or revoked"})
    service = fields.String()
    period = fields.String()
    reason = fields.String()
    rules = fields.String(metadata={"description": "the rule-set version it evaluated by"})
    facts = fields.Integer(metadata={"description": "the stored facts replayed"})
    decisions = fields.List(fields.Nested(SupersedingDecisionSchema),
                            metadata={"description": "the superseding decisions it records"})
    withdraws = fields.List(fields.String(), metadata={"description": "recorded decisions that no longer stand "
                                                                      "and that nothing replaces"})
    windows = fields.Dict(metadata={"description": "window target → [down time, service time] of the month, "
                                                   "in microseconds, as restated"})
    down_spans = fields.Dict(metadata={"description": "window target → the [from, to] spans (UTC) it counted "
                                                      "down time in, as restated (what a waived period takes "
                                                      "out of)"})
    requested_by = fields.String(metadata={"description": "the requesting token's name"})
    requested_at = fields.String()
    approved_by = fields.String(allow_none=True, metadata={"description": "the approving token's name: never "
                                                                          "the requester's"})
    approved_at = fields.String(allow_none=True)
    revoked_by = fields.String(allow_none=True)
    revoked_at = fields.String(allow_none=True)
    revoke_reason = fields.String(allow_none=True)


class RestatementArgs(QuerySchema):
    status = fields.String(validate=validate.OneOf(["requested", "approved", "revoked"]),
                           metadata={"description": "only restatements in this state"})
    service = known("services", "only this service's (a service the rules define or once defined; else 400)")


class RestatementListSchema(Schema):
    items = fields.List(fields.Nested(RestatementSchema))
