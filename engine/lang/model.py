"""The loaded rule set: what the compiler and the runtime work from.

Built by engine.loader from validated documents; every element remembers the file and
line it came from so decisions can name their rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from engine.lang.calendar import ServiceCalendar
from engine.lang.errors import Problem
from engine.lang.excerpt import definition_text
from engine.lang.followsun import AnyOfCalendar
from engine.lang.maintenance import ExcludingCalendar, MaintenanceWindows
from engine.lang.oncall import OnCall
from engine.lang.writeback import WriteBack
from schemas.values import DeadlineGoal, Level

if TYPE_CHECKING:
    from engine.lang.catalogue import Catalogue  # which imports this module
    from engine.lang.inhibit import Inhibit  # likewise
    from engine.lang.mapping import Mapping  # likewise


@dataclass(frozen=True)
class Origin:
    """Where a rule element is written down."""

    file: str
    line: int
    column: int = 1


@dataclass
class Service:
    id: str
    name: str
    roles: dict[str, list[str | OnCall]]      # an address, or whoever a schedule puts on call
    calendar: str | None          # the default calendar of its targets
    origin: Origin


@dataclass(frozen=True)
class CreditTier:
    below: Fraction        # a month whose figure is strictly below this ...
    credit: Fraction       # ... earns this share of its charge


@dataclass
class Credits:
    """An agreement's service credits (docs/RULES.md "Service credits"): the monthly
    ``of`` figure (availability or compliance) of each of ``targets`` against the tiers."""

    of: str
    targets: list[str]
    tiers: list[CreditTier]      # highest ``below`` first
    origin: Origin

    def due(self, figure: Fraction) -> CreditTier | None:
        """The tier a month with ``figure`` falls in: the lowest whose ``below`` it is under
        (whose credit is the largest, as the rule language requires), or None."""
        under = [tier for tier in self.tiers if figure < tier.below]
        return under[-1] if under else None


@dataclass
class ReviewPack:
    """An agreement's monthly review pack (docs/RULES.md "Monthly review pack"): sent to the
    Accountable of ``activity`` on the first business day of each month of ``calendar`` (the
    service's), for the month before."""

    activity: str
    calendar: ServiceCalendar
    origin: Origin


@dataclass
class Agreement:
    id: str
    type: str          # SLA | OLA | UC | SLR
    status: str        # draft | agreed | retired
    service: str
    valid_from: date | None
    valid_to: date | None
    origin: Origin
    name: str = ""           # the agreement's title, customer and provider, for documents (slm docs)
    customer: str = ""
    provider: str = ""
    credits: Credits | None = None
    review_pack: ReviewPack | None = None

    @property
    def shadow(self) -> bool:
        """SLRs and drafts are evaluated on live data but decide nothing that notifies."""
        return self.type == "SLR" or self.status == "draft"


@dataclass(frozen=True, eq=False)
class BurnLevel:
    """A multiwindow burn-rate alert level: fires when the error budget burns at ``factor``
    times the even rate over both the ``long`` and the ``short`` window, clears when the
    short one falls below it (docs/RULES.md, "Burn-rate alerts")."""

    factor: Fraction
    long: timedelta
    short: timedelta
    origin: Origin

    @property
    def text(self) -> str:
        """The level as decisions name it: ``14.4x``."""
        return f"{float(self.factor):g}x"


DEFAULT_FORECAST = timedelta(hours=6)


@dataclass
class Target:
    """One measurable promise. ``measure`` is duration, availability, threshold or ratio."""

    id: str
    name: str
    measure: str
    agreement: Agreement
    goal: timedelta | Fraction | DeadlineGoal      # a deadline: docs/RULES.md, Deadline goals
    warn_at: list[Level]
    underpinned_by: list[str]
    spec: dict[str, Any]       # the clock / availability / metric section as loaded
    calendar: ServiceCalendar | AnyOfCalendar | ExcludingCalendar     # the last with exclude: maintenance
    origin: Origin
    on_change: str = "keep"    # keep | reprice | cancel: what a rule change does to its running clocks
    # The levels of every Escalation that covers this target, in escalation id order:
    # bound when the rules load, so a clock carries its escalation marks from its start.
    escalations: list[EscalationLevel] = field(default_factory=list)
    description: str = ""      # free text of the target, for documents (slm docs)
    # ``calendar: {by: FIELD, map, default}``: the field, and value -> calendar (``calendar`` is the default)
    calendar_by: str | None = None
    calendars: dict[str, ServiceCalendar] = field(default_factory=dict)
    burn_rate: list[BurnLevel] = field(default_factory=list)
    forecast_over: timedelta | None = None     # ``forecast: {over}``: the look-back of the burn rate projected
    prometheus: dict[str, Any] | None = None   # ``prometheus: {errors, total, alert, labels}`` (slm export)
    _span: tuple[datetime | None, datetime | None] | None = field(default=None, repr=False, compare=False)
    _rolling: tuple[timedelta | None] | None = field(default=None, repr=False, compare=False)

    @property
    def service(self) -> str:
        return self.agreement.service

    @property
    def rolling(self) -> timedelta | None:
        """The length of a rolling window (``window: rolling 28d``); None for calendar windows.
        (Worked out once: every sample of a window clock asks.)"""
        if self._rolling is None:
            from schemas.rules import rolling_length
            self._rolling = (rolling_length(self.spec.get("window")) if self.measure != "duration" else None,)
        return self._rolling[0]

    @property
    def budget_clock(self) -> bool:
        """Whether the target's error budget is kept by a budget clock (engine.eval.budget): a
        ratio, a rolling window, burn-rate levels or a forecast. Other window targets keep theirs on a
        window clock."""
        return self.measure == "ratio" or (self.measure != "duration" and (
            self.rolling is not None or bool(self.burn_rate) or self.forecast_over is not None))

    @property
    def excludes_maintenance(self) -> bool:
        return "maintenance" in self.spec.get("exclude", ())

    def valid_span(self) -> tuple[datetime | None, datetime | None]:
        """The agreement's validity as instants: from local midnight to the end of the last day
        (computed once: every clock of the target asks)."""
        if self._span is None:
            self._span = self._compute_span()
        return self._span

    def _compute_span(self) -> tuple[datetime | None, datetime | None]:
        zone = ZoneInfo(self.calendar.timezone)
        start = end = None
        if self.agreement.valid_from:
            start = datetime.combine(self.agreement.valid_from, time(0), zone)
        if self.agreement.valid_to:
            end = datetime.combine(self.agreement.valid_to + timedelta(days=1), time(0), zone)
        return (start and start.astimezone(UTC)), (end and end.astimezone(UTC))


@dataclass(frozen=True, eq=False)
class EscalationLevel:
    """One level of an Escalation. Known by identity: each is made once per rule set load,
    and clocks' marks (cached per budget and levels) hash them on every clock started."""

    escalation: str
    index: int
    at: Level
    activity: str
    repeat: timedelta | None
    origin: Origin
    call: str | None = None     # a URL the escalation decision is POSTed to (engine.notify.route)
    writeback: WriteBack | None = None     # or the ticket or page itself updated (engine/lang/writeback.py)


@dataclass
class Escalation:
    id: str
    targets: list[str]
    metric: str | None
    service: str | None
    levels: list[EscalationLevel]
    origin: Origin


@dataclass
class Rule:
    id: str
    description: str
    when: dict[str, Any]          # {"patterns": [...]} or {"count": {...}}
    then: list[dict[str, Any]]
    origin: Origin


@dataclass
class RuleSet:
    """Everything one load of a rules directory produced, with its content hash."""

    root: str
    version: str
    files: dict[str, str]                   # path relative to the rules directory -> text
    file_names: dict[str, str]              # a file as errors and decisions name it -> its relative path
    calendars: dict[str, ServiceCalendar]
    default_holders: dict[str, list[str | OnCall]]
    services: dict[str, Service]
    agreements: dict[str, Agreement]
    targets: dict[str, Target]
    escalations: dict[str, Escalation]
    raci: dict[str, dict[str, list[str]]]   # activity -> role -> letters
    raci_origin: dict[str, Origin]
    rules: dict[str, Rule]
    warnings: list[Problem] = field(default_factory=list)
    # service -> its declared maintenance windows (engine.lang.maintenance)
    maintenance: dict[str, MaintenanceWindows] = field(default_factory=dict)
    # Ids whose definition failed with an error already reported (a calendar with a bad
    # time zone, a target on that calendar): references to them are not reported again,
    # so one root mistake gives one error.
    broken: set[str] = field(default_factory=set)
    # The fact catalogue (engine/lang/catalogue.py), None when no ``kind: Facts`` is written.
    catalogue: Catalogue | None = None
    raci_manual: set[str] = field(default_factory=set)   # activities no level or Rule is expected to notify
    # Webhook mappings by id (engine/lang/mapping.py), served at POST /v1/ingest/{id}.
    mappings: dict[str, Mapping] = field(default_factory=dict)
    # Inhibitions by id (engine/lang/inhibit.py): what mutes notifications while a source holds.
    inhibits: dict[str, Inhibit] = field(default_factory=dict)
    # the agreements whose review packs this engine decides (engine.eval.packs); None: all of them
    # (a partition's share names those of its services: engine.lang.rulescope)
    pack_agreements: frozenset[str] | None = None

    def holders(self, service: str | None, role: str) -> list[str | OnCall]:
        """Who holds a role for a service: the Service's own holders, else the org-wide ones
        (an on-call schedule among them is resolved per decision: engine/notify/route.py)."""
        own = self.services.get(service) if service is not None else None
        if own and role in own.roles:
            return own.roles[role]
        return self.default_holders.get(role, [])

    def accountable(self, activity: str) -> list[str]:
        """The roles Accountable (A) for an activity; with none, its only R, as ``slm check``
        takes it (engine.lang.checks): what a review pack goes to and the document names."""
        roles = self.raci.get(activity, {})
        found = [role for role, letters in roles.items() if "A" in letters]
        responsible = [role for role, letters in roles.items() if "R" in letters]
        return found or (responsible if len(responsible) == 1 else [])

    def source(self, file: str, line: int, column: int | None = None) -> str | None:
        """The YAML text of the definition written at ``file:line`` (a file as errors and
        decisions name it), as this version has it."""
        name = self.file_names.get(file) or next(
            # a version read back from the store
            (n for n in self.files if file == n or file.endswith("/" + n)), file)
        return definition_text(self.files, name, line, column)

    def escalation_level(self, rule: dict[str, Any], activity: str | None) -> EscalationLevel | None:
        """The level an escalation decision came from, by its rule reference (escalation id
        and the level's line) and activity: how routing finds a level's ``call``."""
        escalation_id = (rule or {}).get("id")
        escalation = self.escalations.get(escalation_id) if escalation_id is not None else None
        for level in escalation.levels if escalation else ():
            if level.origin.line == rule.get("line") and level.activity == activity:
                return level
        return None

    def summary(self) -> dict[str, str | int]:
        return {
            "version": self.version,
            "files": len(self.files),
            "services": len(self.services),
            "agreements": len(self.agreements),
            "targets": len(self.targets),
            "escalations": len(self.escalations),
            "activities": len(self.raci),
            "rules": len(self.rules),
            "calendars": len(self.calendars),
            "mappings": len(self.mappings),
        }
