"""The field tables of docs/RULES.md, generated from the schemas of schemas/rules.py.

The reference is written by hand except these tables: every field of every kind with its
type, whether it is required or its default, what it means and an example. They are made
here from the schema classes themselves, so a field added, renamed or made required
changes the tables; tests/lang/test_reference.py fails when the committed tables drift.

    python -m schemas.reference            # print the tables
    python -m schemas.reference --write    # rewrite them in docs/RULES.md
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, missing, validate

from . import fields as own
from . import rules

BEGIN = "<!-- BEGIN GENERATED FIELD TABLES (python -m schemas.reference --write) -->"
END = "<!-- END GENERATED FIELD TABLES -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "RULES.md"

# What each field means and an example of it. Kept beside the generator rather than in
# the schemas so the schemas stay readable; a field without an entry here fails the test.
FIELDS: dict[str, tuple[str, str]] = {
    "DocumentSchema.kind": ("the kind of the document", "`Agreement`"),
    "DocumentSchema.id": ("unique across the whole rule set, every kind", "`sla-email`"),
    "DocumentSchema.description": ("free text for people", "`Corporate email`"),
    "CalendarSchema.timezone": ("IANA time zone of the service hours", "`Europe/London`"),
    "CalendarSchema.hours": ("service hours per weekday; days not given are closed", '`{mon-fri: "08:00-18:00"}`'),
    "CalendarSchema.holidays": ("days without service hours", "`{country: GB, subdivision: ENG}`"),
    "HolidaysSchema.country": ("country whose public holidays are closed: ISO 3166-1 alpha-2, "
                               "as the `holidays` package names them", "`GB`, `DE`"),
    "HolidaysSchema.subdivision": ("region of the country (needs `country`), in the `holidays` package's codes "
                                   "for that country, without the country prefix", "`ENG` (England), `BE` (Berlin)"),
    "HolidaysSchema.dates": ("extra closed days", "`[2026-12-24]`"),
    "RolesSchema.holders": ("role → who holds it, for every service that does not name its own: an address, "
                            "or an on-call schedule",
                            "`{slm_process_owner: owner@example.org}`"),
    "OnCallSchema.oncall": ("an iCalendar file (RFC 5545), relative to the rule file and inside the rules "
                            "directory: whoever its event covering the decision's instant names is told (see "
                            "On-call schedules)", "`oncall/mail-slm.ics`"),
    "OnCallSchema.fallback": ("who is told when nobody is on call (else the gap is recorded `undeliverable`)",
                              "`mail-desk@example.org`"),
    "OnCallSchema.timezone": ("the zone of the file's floating times and all-day dates (a TZID or X-WR-TIMEZONE "
                              "in the file wins)", "`Europe/London`"),
    "ServiceSchema.name": ("the service's name in documents (default: its id)", "`Corporate email`"),
    "ServiceSchema.roles": ("role → holders for this service; wins over Roles", "`{service_owner: a@example.org}`"),
    "ServiceSchema.calendar": ("", "`uk-office`"),
    "AgreementSchema.name": ("the agreement's title", "`Email SLA 2026`"),
    "AgreementSchema.type": ("SLA with a customer, OLA with an internal team, UC with a supplier, SLR a "
                             "proposed requirement (evaluated, notifies nobody)", "`SLA`"),
    "AgreementSchema.status": ("`draft` is evaluated but notifies nobody; `retired` is not evaluated", "`agreed`"),
    "AgreementSchema.service": ("the Service whose facts it judges", "`email`"),
    "AgreementSchema.customer": ("who the promise is made to; compliance reports select by it "
                                 "(`customer=`, `slm report --customer`)", "`University staff`"),
    "AgreementSchema.provider": ("who makes the promise", "`IT Services`"),
    "AgreementSchema.valid": ("whole days, in the target calendar's zone, `to` inclusive; outside it a "
                              "fact starts no clock", "`{from: 2026-01-01, to: 2026-12-31}`"),
    "AgreementSchema.targets": ("the promises, at least one", "see Target"),
    "AgreementSchema.credits": ("service credits: what the customer is credited when a month's compliance or "
                                "availability falls below a tier (see Service credits)", "see Credits"),
    "AgreementSchema.review_pack": ("a review pack of the month before (compliance per target, trend, credits "
                                    "due, waivers, restatements) sent on the first business day of each month of "
                                    "the service's calendar (see Monthly review pack)", "see Review pack"),
    "ReviewPackSchema.activity": ("the RACI activity whose Accountable (A) receives the pack; it must be in a "
                                  "Raci", "`monthly-service-review`"),
    "CreditsSchema.of": ("the monthly figure the tiers read: each target's `availability` (windows) or "
                         "`compliance` (met of met + breached cycles)", "`availability`"),
    "CreditsSchema.targets": ("the agreement's targets whose figure counts (default: its window targets for "
                              "`availability`, its duration targets for `compliance`); the worst one decides",
                              "`[email-availability]`"),
    "CreditsSchema.tiers": ("the credit for each level, at least one; the lowest tier the figure falls under "
                            "applies", "see Credit tier"),
    "CreditTierSchema.below": ("the tier applies to a month whose figure is strictly below this", "`99.9%`"),
    "CreditTierSchema.credit": ("the share of the month's charge credited; a lower tier credits at least as "
                                "much", "`10%`"),
    "ValidSchema.from": ("first day in force", "`2026-01-01`"),
    "ValidSchema.to": ("last day in force (inclusive)", "`2026-12-31`"),
    "TargetSchema.id": ("unique in the rule set; decisions name it", "`email-p1-response`"),
    "TargetSchema.name": ("the promise in words", "`P1 acknowledged within 15 minutes`"),
    "TargetSchema.description": ("free text", ""),
    "TargetSchema.clock": ("a duration target: time from start to stop", "see Clock"),
    "TargetSchema.availability": ("an availability target: share of service time not down", "see Availability"),
    "TargetSchema.ratio": ("a ratio target: good ÷ total events posted as `sli.counts` (see Ratio targets)",
                           "see Ratio"),
    "TargetSchema.burn_rate": ("multiwindow burn-rate alert levels of a window target: each fires when both "
                               "windows burn the budget at `factor` times the even rate, clears when the short "
                               "one stops (see Burn-rate alerts)", "`[{factor: 14.4, long: 1h, short: 5m}]`"),
    "TargetSchema.forecast": ("project the budget left at the burn rate of the last `over` and decide "
                              "`at_risk` while it runs out before the window ends (see Forecasts)", "`{over: 6h}`"),
    "TargetSchema.prometheus": ("the PromQL queries of the target's error ratio, for `slm export prometheus-rules` "
                                "(see Prometheus rules)", "see Prometheus"),
    "PrometheusSchema.errors": ("bad events (or bad time) per window: `{{.window}}` stands for each window's "
                                "range, as in Sloth's `error_query`", '`sum(rate(http_requests_total{code=~"5.."}'
                                '[{{.window}}]))`'),
    "PrometheusSchema.total": ("all events (or time) per window, as Sloth's `total_query`",
                               "`sum(rate(http_requests_total[{{.window}}]))`"),
    "PrometheusSchema.alert": ("the alerts' name (default: the target id in CamelCase and `ErrorBudgetBurn`)",
                               "`CheckoutErrorBudgetBurn`"),
    "PrometheusSchema.labels": ("labels of every rule written, beside `sloth_id`, `sloth_service` and "
                                "`sloth_slo`", "`{team: shop}`"),
    "BurnRateSchema.factor": ("times the even burn rate (bad share of the window ÷ (1 − goal)); above 0",
                              "`14.4`"),
    "BurnRateSchema.long": ("the long window, whole minutes", "`1h`"),
    "BurnRateSchema.short": ("the short window that confirms it and clears it, shorter than `long`", "`5m`"),
    "ForecastSchema.over": ("the look-back whose burn rate is projected (default 6h), whole minutes", "`1h`"),
    "RatioSchema.name": ("`data.name` of the `sli.counts` facts", "`checkout`"),
    "RatioSchema.where": ("further conditions on the counts", "`{region: eu}`"),
    "RatioSchema.window": ("the period judged: a calendar window or `rolling` and a length", "`rolling 28d`"),
    "RatioSchema.calendar": ("the calendar whose hours count; an interval counts in proportion to its "
                             "service time", "`24x7`"),
    "RatioSchema.exclude": ("`maintenance`: the share of an interval inside the service's maintenance windows "
                            "(declared or posted) is not counted", "`maintenance`"),
    "TargetSchema.metric": ("a threshold target (also written `threshold: {metric: …}`)", "see Metric"),
    "TargetSchema.goal": ("a duration for `clock` (or a deadline, see Deadline goal), a percentage strictly "
                          "between 0% and 100% otherwise", "`15m`, `99.9%`, `{end_of: business_day}`"),
    "DeadlineGoalSchema.end_of": ("what the deadline is the end of: `business_day`, a day of the target "
                                  "calendar with service hours; it falls at that day's close (give this or "
                                  "`due`)", "`business_day`"),
    "DeadlineGoalSchema.days": ("with `end_of`: which business day after the day a cycle starts, from 1 (the "
                                "next one, the default) to 366", "`1`"),
    "DeadlineGoalSchema.due": ("the data field in which the fact that starts a cycle posts its deadline (an RFC "
                               "3339 time; a catalogue must declare it `time`); none, or one not after the start, "
                               "is due at once", "`due_at`"),
    "TargetSchema.warn_at": ("levels at which a `warning` is decided; each strictly between 0% and 100%",
                             "`[50%, 75%]`"),
    "TargetSchema.underpinned_by": ("OLA/UC targets this one relies on; checked to be no weaker",
                                    "`[ola-mx-p1-response]`"),
    "TargetSchema.on_change": ("", "`reprice`"),
    "ClockSchema.applies_to": ("the fact that puts a subject in scope (one clock per subject)",
                               "`{type: incident.opened, where: {priority: P1}}`"),
    "ClockSchema.start": ("starts the clock (default: the applies_to type)", "`incident.opened`"),
    "ClockSchema.pause": ("stops counting (needs `resume`)", "`incident.pending`"),
    "ClockSchema.resume": ("counts again after a pause", "`incident.resumed`"),
    "ClockSchema.stop": ("ends the cycle: `met` if within the goal", "`incident.resolved`"),
    "ClockSchema.restart": ("ends the cycle (`met` if within the goal) and starts a new one", "`incident.reopened`"),
    "ClockSchema.cancel": ("ends the cycle with a `cancelled` decision, neither met nor breached",
                           "`incident.cancelled`"),
    "ClockSchema.reset": ("cancels the running cycle (`cancelled`) and starts a new one at the fact's time",
                          "`{type: incident.updated, where: {priority: P1}}`"),
    "ClockSchema.start_at": ("the first cycle counts from the earliest fact of this type (and `where`) of the "
                             "same subject and service, when it is earlier than the start fact; levels already "
                             "passed then are decided at once, at their instants",
                             "`first incident.opened`"),
    "ClockSchema.calendar": ("the calendar whose hours count (default: the Service's, else 24x7)", "`uk-office`"),
    "ClockSchema.cycles": ("`reply`: each start after a stop begins the next cycle, a start while one runs "
                           "belongs to it (needs `stop`, the reply); `update`: the same, and `restart` (the "
                           "update, needed) restarts the clock only while a cycle runs, paused if it was "
                           "(see Reply and update targets)", "`reply`"),
    "AvailabilitySchema.down": ("the fact that takes a subject down", "`{type: alert.firing, where: {alertname: X}}`"),
    "AvailabilitySchema.up": ("the fact that brings it back", "`{type: alert.resolved, where: {alertname: X}}`"),
    "AvailabilitySchema.window": ("the period judged: month, week (ISO), day, `Nd`, or `rolling` and a length "
                                  "(the window ending at each instant)", "`month`, `rolling 28d`"),
    "AvailabilitySchema.calendar": ("the calendar whose hours count", "`24x7`"),
    "MetricSchema.name": ("`data.name` of the `metric.sample` facts", "`latency_p95_ms`"),
    "MetricSchema.above": ("a sample above this is a violation (give one of above/below)", "`800`"),
    "MetricSchema.below": ("a sample below this is a violation", "`0.99`"),
    "MetricSchema.where": ("further conditions on the samples", "`{region: eu}`"),
    "MetricSchema.window": ("the period judged, as an availability's", "`month`, `rolling 30d`"),
    "MetricSchema.calendar": ("the calendar whose hours count", "`24x7`"),
    "AvailabilitySchema.exclude": ("`maintenance`: time inside the service's maintenance windows is not counted "
                                   "(see Maintenance windows)", "`maintenance`"),
    "MetricSchema.exclude": ("`maintenance`: samples inside the service's maintenance windows are not counted",
                             "`maintenance`"),
    "MaintenanceSchema.service": ("the Service whose planned downtime this is", "`email`"),
    "MaintenanceSchema.timezone": ("IANA time zone of the `weekly` hours", "`Europe/London`"),
    "MaintenanceSchema.weekly": ("recurring windows: local hours per weekday", '`{sun: "02:00-04:00"}`'),
    "MaintenanceSchema.once": ("one-off windows", "`[{from: 2026-11-14T22:00:00Z, to: 2026-11-15T02:00:00Z}]`"),
    "OnceSchema.from": ("the window's first instant (RFC 3339 with an offset)", "`2026-11-14T22:00:00Z`"),
    "OnceSchema.to": ("the instant it ends (exclusive)", "`2026-11-15T02:00:00Z`"),
    "PatternSchema.type": ("the fact type", "`incident.opened`"),
    "PatternSchema.where": ("conditions on the fact (see Where)", "`{priority: {in: [P1, P2]}}`"),
    "JoinPatternSchema.as": ("names the pattern so a later one can refer to `$name.field`", "`b`"),
    "EscalationSchema.applies_to": ("which targets it covers", "`{targets: [email-p1-response]}`"),
    "EscalationSchema.levels": ("the steps, each naming a RACI activity", "see Level"),
    "EscalationScopeSchema.targets": ("target ids", "`[email-p1-response]`"),
    "EscalationScopeSchema.metric": ("every threshold target measuring this metric", "`latency_p95_ms`"),
    "EscalationScopeSchema.service": ("with `metric`: only that service's", "`hosting`"),
    "EscalationLevelSchema.at": ("a share of the budget, plus or minus counted calendar time; or a burn-rate "
                                 "factor: escalates when the target's `burn_rate` level of it fires",
                                 "`75%`, `100% + 2h`, `14.4x`"),
    "EscalationLevelSchema.activity": ("the RACI activity notified", "`breach-handling`"),
    "EscalationLevelSchema.repeat": ("fire again at this interval of counted time while the clock runs", "`4h`"),
    "EscalationLevelSchema.call": ("an http(s) URL the escalation decision is POSTed to, signed, through the outbox "
                                   "(README: the webhook format); or a Write-back that updates the ticket or page "
                                   "itself", "`https://itsm.example.org/api/slm/reassign`"),
    "WriteBackSchema.jira": ("a comment on the issue and/or an update of its fields", "see Jira call"),
    "WriteBackSchema.servicenow": ("a Table API PATCH of the record", "see ServiceNow call"),
    "WriteBackSchema.pagerduty": ("an Events API v2 trigger", "see PagerDuty call"),
    "JiraCallSchema.url": ("the Jira site (REST API v2 under it)", "`https://example.atlassian.net`"),
    "JiraCallSchema.issue": ("template: the issue key", "`{{ subject }}` (the default)"),
    "JiraCallSchema.comment": ("template: the comment added", "`SLA breached: {{ target }} at {{ level }}`"),
    "JiraCallSchema.fields": ("the fields set (`PUT …/issue/{issue}`), every text a template",
                              "`{priority: {name: Highest}}`"),
    "JiraCallSchema.credentials": ("Basic with `user_env` (the account's e-mail) and `token_env` (its API token), "
                                   "or a Bearer personal access token in `token_env` alone", "see Credentials"),
    "ServiceNowCallSchema.url": ("the instance", "`https://example.service-now.com`"),
    "ServiceNowCallSchema.table": ("the table", "`incident` (the default)"),
    "ServiceNowCallSchema.number": ("template: the record's number, looked up for its sys_id (unless `sys_id` is "
                                    "given)", "`{{ subject }}` (the default)"),
    "ServiceNowCallSchema.sys_id": ("template: the record's sys_id, when the subject carries it", ""),
    "ServiceNowCallSchema.fields": ("the fields PATCHed, every text a template", "`{urgency: '1', work_notes: "
                                    "'{{ message }}'}`"),
    "ServiceNowCallSchema.credentials": ("Basic with `user_env` and `token_env` (the password), or an OAuth "
                                         "Bearer token in `token_env` alone", "see Credentials"),
    "PagerDutyCallSchema.url": ("the Events API v2 endpoint (an EU account: `https://events.eu.pagerduty.com/v2/"
                                "enqueue`)", "`https://events.pagerduty.com/v2/enqueue` (the default)"),
    "PagerDutyCallSchema.dedup_key": ("template: the alert's key, so that repeats update one alert",
                                      "`{{ target }}/{{ subject }}` (the default)"),
    "PagerDutyCallSchema.summary": ("template: the alert's summary (up to 1,024 characters)",
                                    "`{{ message }}` (the default)"),
    "PagerDutyCallSchema.source": ("template: payload.source", "`slm` (the default)"),
    "PagerDutyCallSchema.severity": ("template: critical, error, warning or info", "`critical` (the default)"),
    "PagerDutyCallSchema.component": ("template: payload.component", "`{{ service }}`"),
    "PagerDutyCallSchema.group": ("template: payload.group", ""),
    "PagerDutyCallSchema.class": ("template: payload.class", "`sla-breach`"),
    "PagerDutyCallSchema.custom_details": ("payload.custom_details, every text a template",
                                           "`{target: '{{ target }}'}`"),
    "PagerDutyCallSchema.credentials": ("the integration's routing key in `token_env`", "`{token_env: PD_KEY}`"),
    "CredentialsSchema.user_env": ("the environment variable of `slm serve` holding the user name", "`JIRA_USER`"),
    "CredentialsSchema.token_env": ("the environment variable holding the token, password or routing key",
                                    "`JIRA_TOKEN`"),
    "RaciSchema.activities": ("activity → role → letters (R, A, C, I; two as `A/R`)",
                              "`{breach-handling: {service_owner: A, service_level_manager: R}}`"),
    "RaciSchema.manual": ("activities of this matrix that people carry out and nothing notifies (no "
                          "escalation level or Rule names them): `slm check` does not warn of them",
                          "`[update-process-policies]`"),
    "RuleSchema.when": ("patterns that must all match (joins with `as`), or the counting form",
                        "`[{type: decision.breach, where: {agreement_type: OLA}}]`"),
    "RuleSchema.then": ("the actions, in order", "`[{decide: {kind: improvement}}]`"),
    "CountSchema.count": ("how many matches", "`3`"),
    "CountSchema.of": ("the pattern counted", "`{type: decision.breach}`"),
    "CountSchema.same": ("fields that must be equal across the counted facts", "`[target]`"),
    "CountSchema.within": ("all matches within this event time", "`30d`"),
    "ActionSchema.decide": ("record a decision", "`{kind: improvement, severity: minor}`"),
    "ActionSchema.notify": ("notify the roles of a RACI activity", "`{activity: propose-improvement}`"),
    "DecideSchema.kind": ("the decision's kind (a Rule may match it as `decision.<kind>`)", "`improvement`"),
    "DecideSchema.severity": ("free text carried by the decision", "`major`"),
    "DecideSchema.message": ("a template (see Templates)", "`{{ facts.b.target }} breached`"),
    "DecideSchema.target": ("the decision's target (default: from `same: [target]` or the first fact)", ""),
    "DecideSchema.data": ("extra fields of the decision", "`{reason: repeated}`"),
    "NotifySchema.activity": ("the RACI activity whose roles are notified", "`propose-improvement`"),
    "NotifySchema.message": ("a template", "`{{ rule.id }} fired`"),
    "FactsSchema.types": ("fact type → what its `data` holds; `decision.*` and `clock.*` are the engine's and "
                          "are not declared", "`{incident.opened: {data: {priority: [P1, P2]}}}`"),
    "FactsSchema.undeclared": ("what ingest does with a fact of a type no Facts document declares (`reject`: "
                               "422; `accept`: taken as posted); documents that give it must agree; "
                               "unset means `reject`", "`accept`"),
    "FactTypeSchema.description": ("what the fact means, for people",
                                   "`A person took the incident on.`"),
    "FactTypeSchema.data": ("field → its declaration (or just its type, or a list of enum values); a field "
                            "may be a dotted path; fields not declared are accepted at ingest but no rule "
                            "may read them", "`{priority: [P1, P2], impact: integer}`"),
    "FactFieldSchema.type": ("the kind of value (`time`: RFC 3339 with an offset; `object`: any mapping, "
                             "whose inside rules may read freely)", "`enum`"),
    "FactFieldSchema.values": ("an enum's values, compared exactly", "`[P1, P2, P3, P4]`"),
    "FactFieldSchema.required": ("a fact of the type without it is refused", "`true`"),
    "FactFieldSchema.description": ("what the field holds", "`the ticket's priority`"),
    "MappingSchema.source": ("the `source` of every fact it makes (a token limited to sources must allow it)",
                             "`jira/prod`"),
    "MappingSchema.signature": ("how the tool signs its requests; without it any monitor token may post",
                                "`{scheme: github, secret_env: SLM_GITHUB_SECRET}`"),
    "MappingSchema.facts": ("the facts a payload may become, each made when its `when` holds",
                            "`[{when: \"action == 'opened'\", id: …}]`"),
    "MappedFactSchema.when": ("a JMESPath condition: the fact is made only when it is true (not null, false, "
                              "empty text, list or object)", "`\"webhookEvent == 'jira:issue_created'\"`"),
    "MappedFactSchema.each": ("a JMESPath expression giving a list: one fact per element; the fact's "
                              "expressions then read `{item: ELEMENT, payload: PAYLOAD}`",
                              "`\"changelog.items[?field == 'status']\"`"),
    "MappedFactSchema.id": ("the fact's id: with the mapping's `source`, what makes a repeat a duplicate",
                            "`\"join('-', [issue.key, to_string(timestamp)])\"`"),
    "MappedFactSchema.type": ("the fact type, usually a constant or a status through a `map`",
                              "`{value: incident.opened}`"),
    "MappedFactSchema.time": ("the event time (see `format`)", "`{path: timestamp, format: epoch_ms}`"),
    "MappedFactSchema.subject": ("the subject (the ticket); a number is taken as its text", "`issue.key`"),
    "MappedFactSchema.service": ("the service, usually through a `map` with a `default`",
                                 "`{path: issue.fields.project.key, map: {MAIL: email}, default: service-desk}`"),
    "MappedFactSchema.data": ("field of `data` → where it is found; a field found nowhere is left out",
                              "`{priority: {path: priority, map: {Highest: P1}}}`"),
    "MappedValueSchema.path": ("a JMESPath expression over the payload (jmespath.org); written alone, a "
                               "field is just its path", "`issue.fields.priority.name`"),
    "MappedValueSchema.value": ("a constant instead of a path", "`incident.opened`"),
    "MappedValueSchema.map": ("what was found (as text; a number or boolean as JSON) → the value to use",
                              "`{Highest: P1, High: P2}`"),
    "MappedValueSchema.default": ("used when the path finds nothing (null or empty text) or the map has no "
                                  "entry; without one, the fact is not made and the answer says why",
                                  "`service-desk`"),
    "MappedValueSchema.format": ("time only: `rfc3339` (passed on as written), `iso8601` (`+0100` offsets "
                                 "too), `epoch_s`, `epoch_ms`, `epoch_ns`, or a strptime pattern; default `rfc3339`",
                                 "`'%Y-%m-%d %H:%M:%S'`"),
    "MappedValueSchema.timezone": ("time only: the zone of a time read without an offset; default UTC",
                                   "`Europe/Berlin`"),
    "SignatureSchema.scheme": ("how the tool signs (see Webhook mappings)", "`pagerduty`"),
    "SignatureSchema.secret_env": ("the environment variable of `slm serve` that holds the secret",
                                   "`SLM_PAGERDUTY_SECRET`"),
    "SignatureSchema.header": ("`github`: the signature's header (default `X-Hub-Signature-256`; Jira Cloud "
                               "signs the same way in `X-Hub-Signature`); `shared`: the header that carries "
                               "the secret (required)", "`X-Slm-Secret`"),
    "SignatureSchema.tolerance": ("`zendesk`: how far the signed timestamp may be from the server clock; "
                                  "default 5m", "`2m`"),
    "InhibitSchema.source": ("what must hold for it to mute: an availability target's `breach`, or a posted "
                             "`fact` until another ends it", "`{breach: email-availability}`"),
    "InhibitSchema.target": ("matchers (glob patterns) on what it mutes: a decision's `service`, `target`, "
                             "`subject`, `kind` and a notification's `activity`, `recipient`; at least one",
                             "`{service: email, kind: escalation}`"),
    "InhibitSchema.equal": ("what the source and the muted decision must share: `service`, `subject` (a fact "
                            "source only)", "`[service]`"),
    "InhibitSourceSchema.breach": ("an availability target: holds from its newest breach while its service stays "
                                   "down (some subject of its `down` not yet `up`)", "`email-availability`"),
    "InhibitSourceSchema.fact": ("a pattern of posted facts: each holds from its time until a fact of `until` "
                                 "of its subject", "`{type: incident.opened, where: {major: true}}`"),
    "InhibitSourceSchema.until": ("with `fact`: the fact types of the same subject that end it",
                                  "`[incident.resolved]`"),
    "InhibitSourceSchema.service": ("with `fact`: only the facts of this service", "`email`"),
}

TABLES: list[tuple[str, type[Schema], str]] = [  # (heading, schema, where it is written)
    ("Every document", rules.DocumentSchema, "every kind has these"),
    ("Calendar", rules.CalendarSchema, "`kind: Calendar`"),
    ("Holidays", rules.HolidaysSchema, "a Calendar's `holidays`"),
    ("Roles", rules.RolesSchema, "`kind: Roles`"),
    ("Service", rules.ServiceSchema, "`kind: Service`"),
    ("On call", rules.OnCallSchema, "a holder of a Roles' `holders` or a Service's `roles` written as a mapping"),
    ("Agreement", rules.AgreementSchema, "`kind: Agreement`"),
    ("Valid", rules.ValidSchema, "an Agreement's `valid`"),
    ("Credits", rules.CreditsSchema, "an Agreement's `credits`"),
    ("Credit tier", rules.CreditTierSchema, "each of a Credits' `tiers`"),
    ("Review pack", rules.ReviewPackSchema, "an Agreement's `review_pack`"),
    ("Target", rules.TargetSchema, "each of an Agreement's `targets`"),
    ("Deadline goal", rules.DeadlineGoalSchema, "a duration Target's `goal` written as a deadline"),
    ("Clock", rules.ClockSchema, "a Target's `clock`"),
    ("Availability", rules.AvailabilitySchema, "a Target's `availability`"),
    ("Metric", rules.MetricSchema, "a Target's `metric`"),
    ("Ratio", rules.RatioSchema, "a Target's `ratio`"),
    ("Burn rate", rules.BurnRateSchema, "each of a Target's `burn_rate`"),
    ("Forecast", rules.ForecastSchema, "a Target's `forecast`"),
    ("Prometheus", rules.PrometheusSchema, "a Target's `prometheus`"),
    ("Pattern", rules.JoinPatternSchema, "`applies_to`, `down`, `up`, a Rule's `when`; `as` only in `when`"),
    ("Maintenance", rules.MaintenanceSchema, "`kind: Maintenance`"),
    ("Once", rules.OnceSchema, "each of a Maintenance's `once`"),
    ("Escalation", rules.EscalationSchema, "`kind: Escalation`"),
    ("Scope", rules.EscalationScopeSchema, "an Escalation's `applies_to`"),
    ("Level", rules.EscalationLevelSchema, "each of an Escalation's `levels`"),
    ("Write-back", rules.WriteBackSchema, "a Level's `call` written as a mapping (one of its fields)"),
    ("Jira call", rules.JiraCallSchema, "a Write-back's `jira`"),
    ("ServiceNow call", rules.ServiceNowCallSchema, "a Write-back's `servicenow`"),
    ("PagerDuty call", rules.PagerDutyCallSchema, "a Write-back's `pagerduty`"),
    ("Credentials", rules.CredentialsSchema, "a write-back's `credentials`"),
    ("Raci", rules.RaciSchema, "`kind: Raci`"),
    ("Rule", rules.RuleSchema, "`kind: Rule`"),
    ("Count", rules.CountSchema, "a Rule's `when` in the counting form"),
    ("Action", rules.ActionSchema, "each step of a Rule's `then`"),
    ("Decide", rules.DecideSchema, "`decide:`"),
    ("Notify", rules.NotifySchema, "`notify:`"),
    ("Facts", rules.FactsSchema, "`kind: Facts`"),
    ("Fact type", rules.FactTypeSchema, "each of a Facts document's `types`"),
    ("Fact field", rules.FactFieldSchema, "each field of a fact type's `data`"),
    ("Mapping", rules.MappingSchema, "`kind: Mapping`"),
    ("Mapped fact", rules.MappedFactSchema, "each of a Mapping's `facts`"),
    ("Mapped value", rules.MappedValueSchema, "each field of a mapped fact, and each of its `data`"),
    ("Signature", rules.SignatureSchema, "a Mapping's `signature`"),
    ("Inhibit", rules.InhibitSchema, "`kind: Inhibit`"),
    ("Inhibit source", rules.InhibitSourceSchema, "an Inhibit's `source`"),
]

_SIMPLE = [  # most specific first
    (own.Duration, "duration"), (own.Percent, "percentage"), (own.Level, "level"), (own.Date, "date"),
    (own.Instant, "instant"), (own.Name, "name"), (own.Text, "text"), (own.Week, "weekly hours"),
    (own.Where, "where"), (fields.Integer, "integer"), (fields.Float, "number"), (fields.Boolean, "boolean"),
    (fields.Dict, "mapping"),
]
_OVERRIDES = {"window": "window", "goal": "duration, percentage or Deadline goal"}   # Raw fields, parsed by a validator
_NESTED = {schema: heading for heading, schema, _ in TABLES}
_NESTED[rules.PatternSchema] = "Pattern"


def type_of(field: fields.Field[Any]) -> str:
    """A field's type in the reference's words."""
    if isinstance(field, fields.Nested):
        return _NESTED.get(type(field.schema), type(field.schema).__name__)
    if isinstance(field, fields.List):
        return f"list of {type_of(field.inner)}"
    if isinstance(field, own.OneOrMany):
        return f"{type_of(field.inner)} or list"
    if isinstance(field, own.Mapping) and isinstance(field.values_field, own.Mapping):
        return "mapping of activity → role → letters"
    if isinstance(field, own.Mapping):
        return f"mapping of name → {type_of(field.values_field)}"
    if isinstance(field, rules.CallField):
        return "URL or Write-back"
    if isinstance(field, rules.HolderField):
        return "address or On call"
    if isinstance(field, rules.CalendarField):
        return "name, {any_of: [name, …]} or {by, map, default}"
    if isinstance(field, rules.StartAtField):
        return "`first TYPE` or {first, where}"
    if isinstance(field, rules.ConditionField):
        return "fact type or Pattern"
    if isinstance(field, rules.WhenField):
        return "list of Pattern, or Count"
    for cls, name in _SIMPLE:
        if isinstance(field, cls):
            return name
    if isinstance(field.validate, validate.OneOf) or any(isinstance(v, validate.OneOf) for v in field.validators):
        choices = next(v for v in field.validators if isinstance(v, validate.OneOf)).choices
        return " \\| ".join(choices)
    if field.name == "window" or (field.data_key or field.name) == "window":
        return "window"
    if (field.data_key or field.name) == "goal":
        return "duration or percentage"
    return "text" if isinstance(field, fields.String) else "any"


def _default(field: fields.Field[Any]) -> str:
    if field.required:
        return "**required**"
    value = field.load_default
    if value is missing:
        return "—"
    value = value() if callable(value) else value
    if value in ({}, []):
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _key(schema_class: type[Schema], name: str) -> str:
    for cls in schema_class.__mro__:
        if name in getattr(cls, "_declared_fields", {}) and f"{cls.__name__}.{name}" in FIELDS:
            return f"{cls.__name__}.{name}"
        data_key = {f.data_key: n for n, f in getattr(cls, "_declared_fields", {}).items() if f.data_key}
        for key, attr in data_key.items():
            if attr == name and f"{cls.__name__}.{key}" in FIELDS:
                return f"{cls.__name__}.{key}"
    return f"{schema_class.__name__}.{name}"


def undocumented() -> list[str]:
    """Fields of the schemas with no entry in FIELDS (the test requires none)."""
    out = []
    for _, schema_class, _ in TABLES:
        for name, field in schema_class._declared_fields.items():
            shown = field.data_key or name
            if _key(schema_class, shown) not in FIELDS and _key(schema_class, name) not in FIELDS:
                out.append(f"{schema_class.__name__}.{shown}")
    return out


def tables() -> str:
    """Every table, in Markdown."""
    out = []
    for heading, schema_class, where in TABLES:
        out += [f"#### {heading}", "", f"Written: {where}.", "",
                "| field | type | default | meaning | example |", "|---|---|---|---|---|"]
        own_fields = schema_class._declared_fields
        inherited = set(rules.DocumentSchema._declared_fields) if (
            schema_class is not rules.DocumentSchema and issubclass(schema_class, rules.DocumentSchema)) else set()
        for name, field in own_fields.items():
            if name in inherited:
                continue
            shown = field.data_key or name
            key = _key(schema_class, shown)
            if key not in FIELDS:
                key = _key(schema_class, name)
            meaning, example = FIELDS.get(key, ("", ""))
            meaning = meaning or field.metadata.get("description", "")
            kind = _OVERRIDES.get(shown) if isinstance(field, fields.Raw) and type(field) is fields.Raw else None
            out.append(f"| `{shown}` | {kind or type_of(field)} | {_default(field)} | {meaning} | {example} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def splice(document: str) -> str:
    """``document`` with the text between the markers replaced by :func:`tables`."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{tables()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    if "--write" in argv:
        DOC.write_text(splice(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.stdout.write(tables())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
