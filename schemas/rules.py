"""Schemas of the rule documents process owners write (docs/RULES.md).

One schema per ``kind``; unknown fields are errors. Loaded documents are plain dicts with
parsed values (timedelta, Fraction, Level, date); the engine builds its model from them.
"""
from __future__ import annotations

import collections.abc
from datetime import timedelta
from fractions import Fraction
from typing import Any, cast

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from .facts import TYPE_PATTERN
from .fields import AnyField, Date, Duration, Instant, Level, Mapping, Name, OneOrMany, Percent, Text, Week, Where
from .holders import holder_problem
from .values import DeadlineGoal, format_duration, parse_duration

RACI_LETTERS = "RACI"
CYCLES = ("once", "reply", "update")     # a clock's cycles (docs/RULES.md, "Reply and update targets")
ONE_OF = "{input!r} is not one of: {choices}"


class Strict(Schema):
    """Unknown fields are errors (marshmallow's default, stated for the reader)."""

    class Meta:
        unknown = "raise"


class DocumentSchema(Strict):
    kind = fields.String(required=True)
    id = Name(required=True)
    description = Text()


class PatternSchema(Strict):
    """``{type: incident.opened, where: {priority: P1}}``; ``as`` names it in a join."""

    type = Text(required=True)
    where = Where(load_default=dict)


class JoinPatternSchema(PatternSchema):
    as_ = Name(data_key="as", attribute="as")


class HolidaysSchema(Strict):
    country = Text()
    subdivision = Text()
    dates = fields.List(Date(), load_default=list)

    @validates_schema
    def _subdivision_needs_country(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "subdivision" in data and "country" not in data:
            raise ValidationError("a subdivision needs a country", "subdivision")


class CalendarSchema(DocumentSchema):
    timezone = Text(required=True)
    hours = Week(required=True)
    holidays = fields.Nested(HolidaysSchema, load_default=dict)


class Holder(Text):
    """Where a role's notifications go: an e-mail address, an http(s) or an Apprise URL."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = holder_problem(text.strip())
        if problem:
            raise ValidationError(problem)
        return text


class OnCallSchema(Strict):
    """A holder written ``{oncall: FILE.ics}``: whoever the schedule puts on call at the
    decision's instant (docs/RULES.md, "On-call schedules")."""

    oncall = Text(required=True)
    fallback = OneOrMany(Holder(), load_default=list)
    timezone = Text(load_default="UTC")

    @validates_schema
    def _an_ics_file(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data["oncall"].strip().lower().endswith(".ics"):
            raise ValidationError(f"{data['oncall']!r} is no iCalendar file: expected a path ending in .ics "
                                  "(relative to this rule file)", "oncall")


class HolderField(AnyField):
    """A role's holder: an address (Holder), or an on-call schedule ``{oncall: FILE.ics}``
    (loaded as its dict)."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> str | dict[str, Any]:
        if isinstance(value, dict):
            return cast(dict[str, Any], OnCallSchema().load(value))
        return Holder().deserialize(value)


_HOLDERS = OneOrMany(HolderField())


class RolesSchema(DocumentSchema):
    holders = Mapping(_HOLDERS, required=True)


class ServiceSchema(DocumentSchema):
    name = Text()
    roles = Mapping(_HOLDERS, load_default=dict)
    calendar = Name(metadata={"description": "the default calendar of this service's targets "
                                            "(a target's own calendar wins; default 24x7)"})


class ConditionField(AnyField):
    """A clock condition: a fact type (``incident.resolved``) or a pattern ``{type, where}``
    (``{type: incident.updated, where: {priority: P1}}``); loaded as the string or the dict."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> str | dict[str, Any]:
        if isinstance(value, dict):
            return cast(dict[str, Any], PatternSchema().load(value))
        return Text().deserialize(value)


def _conditions() -> OneOrMany:
    """A fresh field per condition: a field object bound to two names answers to the last."""
    return OneOrMany(ConditionField())


class StartAtField(AnyField):
    """``first incident.opened``, or ``{first: incident.opened, where: {priority: P2}}``:
    the earlier fact of the same subject whose time a clock's first cycle counts from.
    Loaded as a pattern ``{type, where}``."""

    FORM = "expected 'first TYPE' or {first: TYPE, where: {...}}"

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, str):
            word, _, kind = value.strip().partition(" ")
            if word != "first" or not kind.strip() or " " in kind.strip():
                raise ValidationError(f"{value!r}: {self.FORM}")
            return {"type": kind.strip(), "where": {}}
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"first", "where"})
            if unknown or "first" not in value:
                raise ValidationError(f"{self.FORM}" + (f" (unknown: {', '.join(map(str, unknown))})"
                                                        if unknown else " (missing 'first')"))
            return cast(dict[str, Any], PatternSchema().load({"type": value["first"], "where": value.get("where", {})}))
        raise ValidationError(self.FORM)


class CalendarByFieldSchema(Strict):
    """``{by: region, map: {emea: london-office}, default: london-office}``: the calendar of
    each ticket, chosen by a field of its facts."""

    by = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", error="{input!r} is not a data field name"))
    map = fields.Dict(keys=Text(), values=Name(), required=True, validate=validate.Length(min=1))
    default = Name(required=True)


class CalendarField(AnyField):
    """A calendar's name, or ``{any_of: [london-office, sydney-office]}``: time counts
    whenever any of them is open (follow the sun)."""

    FORM = ("expected a calendar's name, {any_of: [calendar, calendar, …]} or "
            "{by: FIELD, map: {value: calendar, …}, default: calendar}")

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> str | dict[str, Any]:
        if isinstance(value, str):
            return Name().deserialize(value)
        if isinstance(value, dict) and "by" in value:
            return cast(dict[str, Any], CalendarByFieldSchema().load(value))
        if isinstance(value, dict):
            if set(value) != {"any_of"}:
                unknown = sorted(map(str, set(value) - {"any_of"}))
                raise ValidationError(f"{self.FORM}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
            names = value["any_of"]
            if not isinstance(names, list) or len(names) < 2:
                raise ValidationError({"any_of": ["a list of two calendars or more"]})
            loaded = [cast(str, Name().deserialize(name)) for name in names]
            if len(set(loaded)) != len(loaded):
                raise ValidationError({"any_of": ["a calendar is named twice"]})
            return {"any_of": loaded}
        raise ValidationError(self.FORM)


class ClockSchema(Strict):
    applies_to = fields.Nested(PatternSchema, required=True)
    start = _conditions()
    pause = _conditions()
    resume = _conditions()
    stop = _conditions()
    restart = _conditions()
    cancel = _conditions()
    reset = _conditions()
    start_at = StartAtField()
    calendar = CalendarField()
    # once: one cycle per start (restarts and resets aside); reply: each start after a
    # stop begins the next cycle; update: likewise, and restarts only while one runs
    cycles = fields.String(load_default="once", validate=validate.OneOf(list(CYCLES), error=ONE_OF))

    @validates_schema
    def _needs_start(self, data: dict[str, Any], **kwargs: Any) -> None:
        needed = {"reply": "stop", "update": "restart"}.get(data.get("cycles", "once"))
        if needed and needed not in data:
            what = "the reply that ends each cycle" if needed == "stop" else "the update that restarts the clock"
            raise ValidationError(f"cycles: {data['cycles']} needs '{needed}', {what}", "cycles")
        if "stop" not in data and "restart" not in data and "reset" not in data:
            raise ValidationError("a clock needs 'stop', 'restart' or 'reset' (else it never ends a cycle)",
                                  "stop")
        if ("pause" in data) != ("resume" in data):
            raise ValidationError("'pause' and 'resume' come together", "resume" if "pause" in data else "pause")


WINDOW_HELP = "month, week, day, a number of days such as 30d, or rolling and a duration such as rolling 28d"


def _check_window(value: object) -> bool:
    if value in ("month", "week", "day"):
        return True
    if isinstance(value, str) and value.endswith("d") and value[:-1].isdigit() and int(value[:-1]) > 0:
        return True
    if isinstance(value, str) and rolling_length(value) is not None:
        return True
    raise ValidationError(f"{value!r} is not a window ({WINDOW_HELP})")


def rolling_length(window: object) -> timedelta | None:
    """``rolling 28d`` -> 28 days: the length of a rolling window (None: not one, or not a
    positive duration of whole minutes)."""
    if not isinstance(window, str) or not window.startswith("rolling "):
        return None
    try:
        length = parse_duration(window[len("rolling "):].strip())
    except ValueError:
        return None
    return length if length >= timedelta(minutes=1) and not length % timedelta(minutes=1) else None


class BurnRateSchema(Strict):
    """``{factor: 14.4, long: 1h, short: 5m}``: a multiwindow burn-rate alert level
    (docs/RULES.md, "Burn-rate alerts")."""

    factor = fields.Decimal(required=True, places=None, allow_nan=False, as_string=False,
                            validate=validate.Range(min=0, min_inclusive=False,
                                                    error="a burn-rate factor is above 0"))
    long = Duration(required=True)
    short = Duration(required=True)

    @validates_schema
    def _windows(self, data: dict[str, Any], **kwargs: Any) -> None:
        for name in ("long", "short"):
            if name in data and (data[name] < timedelta(minutes=1) or data[name] % timedelta(minutes=1)):
                raise ValidationError("a burn-rate window is whole minutes, at least 1m", name)
        if "long" in data and "short" in data and data["short"] >= data["long"]:
            raise ValidationError(f"the short window ({format_duration(data['short'])}) is shorter than the long "
                                  f"one ({format_duration(data['long'])})", "short")
        if "factor" in data:
            data["factor"] = Fraction(data["factor"])


class ForecastSchema(Strict):
    """``{over: 6h}``: the burn rate a budget's forecast projects is the one of the last ``over``."""

    over = Duration(load_default=lambda: timedelta(hours=6))

    @validates_schema
    def _over(self, data: dict[str, Any], **kwargs: Any) -> None:
        over = data.get("over")
        if over is not None and (over < timedelta(minutes=1) or over % timedelta(minutes=1)):
            raise ValidationError("a forecast looks back whole minutes, at least 1m", "over")


WINDOW_PLACEHOLDER = "{{.window}}"
PROMQL_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class PrometheusSchema(Strict):
    """``{errors, total, alert, labels}``: the PromQL queries ``slm export prometheus-rules``
    writes a target's recording rules with, as Sloth's ``error_query`` and ``total_query``
    (docs/RULES.md, "Prometheus rules")."""

    errors = Text(required=True, validate=validate.Length(min=1))
    total = Text(required=True, validate=validate.Length(min=1))
    alert = fields.String(validate=validate.Regexp(PROMQL_NAME, error="{input!r} is not a Prometheus alert name"))
    labels = fields.Dict(keys=fields.String(validate=validate.Regexp(
        LABEL_NAME, error="{input!r} is not a Prometheus label name")), values=Text(), load_default=dict)

    @validates_schema
    def _windowed(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "errors" in data and "total" in data and WINDOW_PLACEHOLDER not in data["errors"] + data["total"]:
            raise ValidationError(f"neither query has {WINDOW_PLACEHOLDER}, where each window's range goes (as in "
                                  f"rate(x[{WINDOW_PLACEHOLDER}])): every window would read the same", "errors")


def _exclude() -> OneOrMany:
    return OneOrMany(fields.String(validate=validate.OneOf(["maintenance"], error=ONE_OF)), load_default=list)


class AvailabilitySchema(Strict):
    down = fields.Nested(PatternSchema, required=True)
    up = fields.Nested(PatternSchema, required=True)
    window = fields.Raw(load_default="month", validate=_check_window)
    calendar = CalendarField()
    # a field named as Schema's own 'exclude' option: marshmallow collects fields when the class
    # is made, so the instance's set of excluded names does not touch it
    exclude = _exclude()  # type: ignore[assignment]


class MetricSchema(Strict):
    name = Text(required=True)
    above = fields.Float(allow_nan=False)
    below = fields.Float(allow_nan=False)
    where = Where(load_default=dict)
    window = fields.Raw(load_default="month", validate=_check_window)
    calendar = CalendarField()
    # a field named as Schema's own 'exclude' option: marshmallow collects fields when the class
    # is made, so the instance's set of excluded names does not touch it
    exclude = _exclude()  # type: ignore[assignment]

    @validates_schema
    def _one_bound(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("above" in data) == ("below" in data):
            raise ValidationError("give exactly one of 'above' or 'below'", "above")


class RatioSchema(Strict):
    """Good and total events, posted as ``sli.counts`` facts: ``{name, where, window,
    calendar, exclude}`` (docs/RULES.md, "Ratio targets")."""

    name = Text(required=True)
    where = Where(load_default=dict)
    window = fields.Raw(load_default="month", validate=_check_window)
    calendar = CalendarField()
    exclude = _exclude()  # type: ignore[assignment]


class DeadlineGoalSchema(Strict):
    """``goal: {end_of: business_day, days: 1}``, the end of the next business day, or
    ``goal: {due: FIELD}``, the deadline the start fact posts in a data field."""

    end_of = fields.String(validate=validate.OneOf(["business_day"], error=ONE_OF))
    days = fields.Integer(strict=True, validate=validate.Range(1, 366))
    due = fields.String(validate=validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
                                                 error="{input!r} is not a data field name (e.g. due_at)"))

    @validates_schema
    def _one_deadline(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("end_of" in data) == ("due" in data):
            raise ValidationError("give end_of (with days) or due, one of them", "end_of" if data else "due")
        if "days" in data and "due" in data:
            raise ValidationError("days counts business days of end_of; a due deadline is posted whole", "days")


class TargetSchema(Strict):
    id = Name(required=True)
    name = Text()
    description = Text()
    clock = fields.Nested(ClockSchema)
    availability = fields.Nested(AvailabilitySchema)
    metric = fields.Nested(MetricSchema)
    ratio = fields.Nested(RatioSchema)
    goal = fields.Raw(required=True)
    warn_at = fields.List(Level(), load_default=list)
    underpinned_by = fields.List(Name(), load_default=list)
    burn_rate = fields.List(fields.Nested(BurnRateSchema), validate=validate.Length(min=1))
    forecast = fields.Nested(ForecastSchema)
    prometheus = fields.Nested(PrometheusSchema)
    on_change = fields.String(load_default="keep", validate=validate.OneOf(["keep", "reprice", "cancel"]),
                              metadata={"description": "what a rule change does to this target's running "
                                                       "clocks: keep (finish under the version they started "
                                                       "with), reprice (take the new definition from the "
                                                       "change on), cancel (end them, if the change removes "
                                                       "the target)"})

    @pre_load
    def _threshold_form(self, data: object, **kwargs: Any) -> object:
        """``threshold: {metric: {name, above}, window, calendar}`` is the same as ``metric:``."""
        if isinstance(data, dict) and isinstance(data.get("threshold"), dict) and "metric" not in data:
            data = dict(data)
            outer = dict(data.pop("threshold"))
            inner = outer.pop("metric", {})
            data["metric"] = {**(inner if isinstance(inner, dict) else {}), **outer}
        return data

    @validates_schema
    def _one_measure(self, data: dict[str, Any], **kwargs: Any) -> None:
        measures = [name for name in ("clock", "availability", "metric", "ratio") if name in data]
        if len(measures) != 1:
            raise ValidationError("a target has exactly one of 'clock', 'availability', 'metric' or 'ratio'",
                                  measures[1] if len(measures) > 1 else "id")
        for name in ("burn_rate", "forecast", "prometheus"):
            if "clock" in data and name in data:
                raise ValidationError(f"'{name}' belongs to a target with an error budget (availability, metric "
                                      f"or ratio), not to a duration clock", name)
        goal = data.get("goal")
        if "clock" in data and isinstance(goal, dict):
            try:
                deadline = DeadlineGoalSchema().load(goal)
            except ValidationError as err:
                raise ValidationError(err.messages, "goal") from None
            if "due" in deadline:
                data["goal"] = DeadlineGoal(0, f"due as posted in {deadline['due']}", deadline["due"])
                return
            days = deadline.get("days", 1)
            data["goal"] = DeadlineGoal(days, "end of the next business day" if days == 1
                                        else f"end of business day {days} after the start")
            return
        try:
            data["goal"] = Duration().deserialize(goal) if "clock" in data else Percent().deserialize(goal)
        except ValidationError as err:
            raise ValidationError(err.messages, "goal") from None
        if "clock" not in data and not 0 < data["goal"] < 1:
            raise ValidationError(f"{goal!r}: a percentage goal lies strictly between 0% and 100%", "goal")
        if "clock" in data and not data["goal"]:
            raise ValidationError("a duration goal must be longer than 0s", "goal")


class ValidSchema(Strict):
    from_ = Date(data_key="from", attribute="from")
    to = Date()

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "from" in data and "to" in data and data["to"] < data["from"]:
            raise ValidationError("'to' comes before 'from'", "to")


class CreditTierSchema(Strict):
    """``{below: 99.9%, credit: 10%}``: a month whose figure falls below ``below`` earns ``credit``."""

    below = Percent(required=True, metadata={"description": "the monthly figure this tier starts under "
                                                           "(strictly below it)"})
    credit = Percent(required=True, metadata={"description": "the share of the month's charge credited"})

    @validates_schema
    def _shares(self, data: dict[str, Any], **kwargs: Any) -> None:
        for name in ("below", "credit"):
            if name in data and not 0 < data[name] <= 1:
                raise ValidationError(f"{_pct(data[name])}: a share above 0% and at most 100% is expected", name)


class CreditsSchema(Strict):
    """Service credits: tiers of the monthly compliance or availability (docs/RULES.md)."""

    of = fields.String(required=True, validate=validate.OneOf(["compliance", "availability"], error=ONE_OF))
    targets = fields.List(Name(), validate=validate.Length(min=1))
    tiers = fields.List(fields.Nested(CreditTierSchema), required=True, validate=validate.Length(min=1))

    @validates_schema
    def _tiers_ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        """Each tier below another gives at least its credit, and no two share a ``below``:
        otherwise which tier applies would depend on the order they are written in."""
        tiers = data.get("tiers") or []
        for index, tier in enumerate(tiers):
            for other in tiers[:index]:
                if tier["below"] == other["below"]:
                    raise ValidationError({"tiers": {index: {"below": [
                        f"a tier below {_pct(tier['below'])} is written twice"]}}})
                lower, higher = (tier, other) if tier["below"] < other["below"] else (other, tier)
                if lower["credit"] < higher["credit"]:
                    raise ValidationError({"tiers": {index: {"credit": [
                        f"the tier below {_pct(lower['below'])} credits {_pct(lower['credit'])}, less than "
                        f"the tier below {_pct(higher['below'])} ({_pct(higher['credit'])}): a worse month "
                        f"earns at least as much"]}}})


def _pct(value: Fraction) -> str:
    return f"{float(value) * 100:g}%"


class ReviewPackSchema(Strict):
    """The monthly review pack (docs/RULES.md "Monthly review pack"): the RACI activity whose
    Accountable receives it on the first business day of each month."""

    activity = Name(required=True)


class AgreementSchema(DocumentSchema):
    name = Text()
    type = fields.String(required=True, validate=validate.OneOf(["SLA", "OLA", "UC", "SLR"], error=ONE_OF))
    status = fields.String(load_default="agreed", validate=validate.OneOf(["draft", "agreed", "retired"], error=ONE_OF))
    service = Name(required=True)
    customer = Text()
    provider = Text()
    valid = fields.Nested(ValidSchema, load_default=dict)
    targets = fields.List(fields.Nested(TargetSchema), required=True, validate=validate.Length(min=1))
    credits = fields.Nested(CreditsSchema)
    review_pack = fields.Nested(ReviewPackSchema)


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
NOT_ENV = "{input!r} is not an environment variable name"
PD_SEVERITIES = ("critical", "error", "warning", "info")


def _web_url(**kwargs: Any) -> fields.Url:
    return fields.Url(schemes={"http", "https"}, require_tld=False, **kwargs)


class CredentialsSchema(Strict):
    """Which environment variables of ``slm serve`` hold a write-back's secrets: never the
    secrets themselves (docs/RULES.md, "Write-back")."""

    user_env = fields.String(validate=validate.Regexp(ENV_NAME, error=NOT_ENV))
    token_env = fields.String(required=True, validate=validate.Regexp(ENV_NAME, error=NOT_ENV))


class JiraCallSchema(Strict):
    url = _web_url(required=True)
    issue = Text(load_default="{{ subject }}")
    comment = Text()
    fields_ = fields.Dict(keys=fields.String(), data_key="fields", attribute="fields")
    credentials = fields.Nested(CredentialsSchema, required=True)

    @validates_schema
    def _something_to_write(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "comment" not in data and not data.get("fields"):
            raise ValidationError("give a comment, fields to update, or both", "comment")


class ServiceNowCallSchema(Strict):
    url = _web_url(required=True)
    table = Name(load_default="incident")
    number = Text(load_default="{{ subject }}")
    sys_id = Text()
    fields_ = fields.Dict(keys=fields.String(), data_key="fields", attribute="fields", required=True,
                          validate=validate.Length(min=1))
    credentials = fields.Nested(CredentialsSchema, required=True)


class PagerDutyCallSchema(Strict):
    url = _web_url(load_default="https://events.pagerduty.com/v2/enqueue")
    dedup_key = Text(load_default="{{ target }}/{{ subject }}")
    summary = Text(load_default="{{ message }}")
    source = Text(load_default="slm")
    severity = Text(load_default="critical")
    component = Text()
    group = Text()
    class_ = Text(data_key="class", attribute="class")
    custom_details = fields.Dict(keys=fields.String())
    credentials = fields.Nested(CredentialsSchema, required=True)

    @validates_schema
    def _routing_key_only(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "user_env" in data["credentials"]:
            raise ValidationError("the Events API of PagerDuty takes a routing key alone: give token_env only",
                                  "credentials")
        if "{" not in data["severity"] and data["severity"] not in PD_SEVERITIES:
            raise ValidationError(f"{data['severity']!r} is not one of: {', '.join(PD_SEVERITIES)}", "severity")


class WriteBackSchema(Strict):
    """``call: {jira | servicenow | pagerduty: {...}}``: the ticket or page itself updated."""

    jira = fields.Nested(JiraCallSchema)
    servicenow = fields.Nested(ServiceNowCallSchema)
    pagerduty = fields.Nested(PagerDutyCallSchema)

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len(data) != 1:
            raise ValidationError("give exactly one of: jira, servicenow, pagerduty")


class CallField(AnyField):
    """An escalation level's ``call``: a URL the decision is POSTed to, or a write-back
    (loaded as ``{kind: spec}``)."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> str | dict[str, Any]:
        if isinstance(value, dict):
            return cast(dict[str, Any], WriteBackSchema().load(value))
        return _web_url().deserialize(value)


class EscalationLevelSchema(Strict):
    at = Level(required=True)
    activity = Name(required=True)
    repeat = Duration()
    call = CallField()


class EscalationScopeSchema(Strict):
    targets = fields.List(Name())
    metric = Text()
    service = Name()

    @validates_schema
    def _scope(self, data: dict[str, Any], **kwargs: Any) -> None:
        if bool(data.get("targets")) == ("metric" in data):
            raise ValidationError("give either 'targets' or 'metric' (with an optional 'service')", "targets")


class EscalationSchema(DocumentSchema):
    applies_to = fields.Nested(EscalationScopeSchema, required=True)
    levels = fields.List(fields.Nested(EscalationLevelSchema), required=True, validate=validate.Length(min=1))


def _check_letters(value: object) -> bool:
    letters = [part.strip() for part in str(value).replace(",", "/").split("/")]
    if not letters or any(letter not in RACI_LETTERS or not letter for letter in letters):
        raise ValidationError(f"{value!r} is not a RACI assignment (examples: R, A, C, I, A/R, A/C)")
    if len(set(letters)) != len(letters):
        raise ValidationError(f"{value!r} repeats a letter")
    return True


class RaciSchema(DocumentSchema):
    activities = Mapping(Mapping(fields.Raw(validate=_check_letters), keys_field=Name()),
                         keys_field=Name(), required=True)
    manual = fields.List(Name(), load_default=list)


class CountSchema(Strict):
    count = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    of = fields.Nested(PatternSchema, required=True)
    same = fields.List(Text(), load_default=list)
    within = Duration()


class DecideSchema(Strict):
    kind = Name(required=True)
    severity = Text()
    message = Text()
    target = Text()
    data = fields.Dict(load_default=dict)


class NotifySchema(Strict):
    activity = Name(required=True)
    message = Text()


class ActionSchema(Strict):
    decide = fields.Nested(DecideSchema)
    notify = fields.Nested(NotifySchema)

    @validates_schema
    def _one_action(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len(data) != 1:
            raise ValidationError("each step of 'then' is one of: decide, notify", "decide")


class WhenField(AnyField):
    """``when`` is a list of patterns (all must match) or the counting form."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, list):
            if not value:
                raise ValidationError("'when' needs at least one pattern")
            return {"patterns": fields.List(fields.Nested(JoinPatternSchema)).deserialize(value)}
        if isinstance(value, dict) and "count" in value:
            return {"count": CountSchema().load(value)}
        if isinstance(value, dict):
            return {"patterns": [JoinPatternSchema().load(value)]}
        raise ValidationError("expected a list of patterns or the counting form {count, of, same, within}")


class RuleSchema(DocumentSchema):
    when = WhenField(required=True)
    then = fields.List(fields.Nested(ActionSchema), required=True, validate=validate.Length(min=1))


class OnceSchema(Strict):
    from_ = Instant(data_key="from", attribute="from", required=True)
    to = Instant(required=True)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "from" in data and "to" in data and data["to"] <= data["from"]:
            raise ValidationError("'to' must come after 'from'", "to")


class MaintenanceSchema(DocumentSchema):
    service = Name(required=True)
    timezone = Text(load_default="UTC")
    weekly = Week()
    once = fields.List(fields.Nested(OnceSchema), load_default=list)

    @validates_schema
    def _some_window(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "weekly" not in data and not data.get("once"):
            raise ValidationError("give 'weekly' hours, 'once' windows, or both", "weekly")


FACT_FIELD_TYPES = ("string", "number", "integer", "boolean", "time", "enum", "object", "list")
UNDECLARED = ("reject", "accept")


class FactFieldSchema(Strict):
    """One field of a fact's ``data``: ``{type: enum, values: [P1, P2], required: true}``.
    Written short, ``priority: string`` is ``{type: string}`` and ``priority: [P1, P2]`` is
    ``{type: enum, values: [P1, P2]}``."""

    type = fields.String(required=True, validate=validate.OneOf(FACT_FIELD_TYPES, error=ONE_OF))
    values = fields.List(fields.Raw(), validate=validate.Length(min=1))
    required = fields.Boolean(load_default=False)
    description = Text()

    @pre_load
    def _short_forms(self, data: object, **kwargs: Any) -> object:
        if isinstance(data, str):
            return {"type": data}
        if isinstance(data, list):
            return {"type": "enum", "values": data}
        return data

    @validates_schema
    def _values_with_enum(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("type") == "enum" and "values" not in data:
            raise ValidationError("an enum field lists its 'values'", "values")
        if data.get("type") != "enum" and "values" in data:
            raise ValidationError(f"'values' belongs to an enum field, not a {data.get('type')} one", "values")
        bad = [v for v in data.get("values", []) if isinstance(v, (dict, list)) or v is None]
        if bad:
            raise ValidationError(f"enum values are strings, numbers or booleans, not {bad[0]!r}", "values")


class FactTypeSchema(Strict):
    description = Text()
    data = Mapping(fields.Nested(FactFieldSchema), keys_field=Text(), load_default=dict)


class FactTypeName(Text):
    """A fact type as facts carry it: dotted names, not the engine's own decision.*/clock.*."""

    def _deserialize(self, value: object, attr: str | None, data: collections.abc.Mapping[str, Any] | None,
                     **kwargs: Any) -> str:
        value = super()._deserialize(value, attr, data, **kwargs)
        if not TYPE_PATTERN.fullmatch(value):
            raise ValidationError("not a dotted type name (example: incident.opened)")
        if value.startswith(("decision.", "clock.")):
            raise ValidationError("types decision.* and clock.* are derived by the engine and need no "
                                  "declaration")
        return value


class FactsSchema(DocumentSchema):
    types = Mapping(fields.Nested(FactTypeSchema), keys_field=FactTypeName(), required=True)
    undeclared = fields.String(validate=validate.OneOf(UNDECLARED, error=ONE_OF))


SIGNATURE_SCHEMES = ("github", "pagerduty", "zendesk", "shared")


class MappedValueSchema(Strict):
    """How one field of a mapped fact is found in a payload: ``path`` (a JMESPath
    expression) or a constant ``value``; ``map`` turns what was found into another value
    (a status into a fact type, a priority into P1), ``default`` stands in when the path
    finds nothing or the map has no entry. Written short, ``issue.key`` is ``{path: issue.key}``."""

    path = Text()
    value = AnyField()
    map = Mapping(AnyField())
    default = AnyField()
    format = Text()
    timezone = Text()

    @pre_load
    def _short_form(self, data: object, **kwargs: Any) -> object:
        return {"path": data} if isinstance(data, str) else data

    @validates_schema
    def _path_or_value(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("path" in data) == ("value" in data):
            raise ValidationError("give either 'path' (a JMESPath expression) or a constant 'value'", "path")


def _mapped() -> fields.Nested:
    return fields.Nested(MappedValueSchema)


class MappedFactSchema(Strict):
    """One fact a payload may become: where each of its fields is found."""

    when = Text()
    each = Text()
    id = fields.Nested(MappedValueSchema, required=True)
    type = fields.Nested(MappedValueSchema, required=True)
    time = fields.Nested(MappedValueSchema, required=True)
    subject = fields.Nested(MappedValueSchema)
    service = fields.Nested(MappedValueSchema, required=True)
    data = Mapping(_mapped(), keys_field=Text(), load_default=dict)


class SignatureSchema(Strict):
    """How the tool signs its webhooks; the secret is read from the environment."""

    scheme = fields.String(required=True, validate=validate.OneOf(SIGNATURE_SCHEMES, error=ONE_OF))
    secret_env = fields.String(required=True, validate=validate.Regexp(
        ENV_NAME, error="{input!r} is not an environment variable name"))
    header = Text()
    tolerance = Duration()

    @validates_schema
    def _shared_header(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("scheme") == "shared" and "header" not in data:
            raise ValidationError("a shared secret names the 'header' that carries it", "header")


class MappingSchema(DocumentSchema):
    """``kind: Mapping``: a tool's JSON webhook turned into facts, served at
    ``POST /v1/ingest/{id}`` (docs/RULES.md, "Webhook mappings")."""

    source = Text(required=True)
    signature = fields.Nested(SignatureSchema)
    facts = fields.List(fields.Nested(MappedFactSchema), required=True, validate=validate.Length(min=1))


INHIBIT_EQUAL = ("service", "subject")
INHIBIT_MATCHERS = ("service", "target", "subject", "recipient", "kind", "activity")


class InhibitSourceSchema(Strict):
    """What holds an inhibition: an availability target's ``breach`` (until its subject is
    up again), or a posted ``fact`` (until a fact of ``until`` of the same subject)."""

    breach = Name()
    fact = fields.Nested(PatternSchema)
    until = OneOrMany(Text())
    service = Name()

    @validates_schema
    def _one_source(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("breach" in data) == ("fact" in data):
            raise ValidationError("give either 'breach' (an availability target) or 'fact' (a pattern, with "
                                  "'until')", "breach")
        if "fact" in data and not data.get("until"):
            raise ValidationError("a fact source names the fact types that end it, of the same subject "
                                  "(example: until: [incident.resolved])", "until")
        if "breach" in data and ("until" in data or "service" in data):
            raise ValidationError("a breach holds until its subject is up again: 'until' and 'service' belong "
                                  "to a fact source", "until" if "until" in data else "service")


class InhibitSchema(DocumentSchema):
    """``kind: Inhibit``: while its source holds, the notifications its target matchers
    match are stored ``muted`` (docs/RULES.md, "Inhibition")."""

    source = fields.Nested(InhibitSourceSchema, required=True)
    target = Mapping(Text(), keys_field=fields.String(validate=validate.OneOf(INHIBIT_MATCHERS, error=ONE_OF)),
                     required=True, validate=validate.Length(min=1, error="name at least one matcher: an "
                                                              "inhibition of everything would hide every breach"))
    equal = fields.List(fields.String(validate=validate.OneOf(INHIBIT_EQUAL, error=ONE_OF)), load_default=list)


KIND_SCHEMAS = {
    "Calendar": CalendarSchema,
    "Roles": RolesSchema,
    "Service": ServiceSchema,
    "Agreement": AgreementSchema,
    "Maintenance": MaintenanceSchema,
    "Escalation": EscalationSchema,
    "Raci": RaciSchema,
    "Rule": RuleSchema,
    "Facts": FactsSchema,
    "Mapping": MappingSchema,
    "Inhibit": InhibitSchema,
}
