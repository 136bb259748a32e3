"""The workspace file, ``leadflow.yaml``, as validated data.

Every section forbids unknown keys, so a typo is an error that names the key and its line (see
:mod:`leadflow.config.loader`) instead of a setting that silently does nothing.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from leadflow.config.conditions import Condition
from leadflow.config.identity import IdentitySection
from leadflow.config.nurture import NurtureSection
from leadflow.config.privacy import FieldsSection, PrivacySection
from leadflow.config.types import Duration, Id, Strict


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York)") from None
    return value


def _check_region(value: str) -> str:
    value = value.upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region phonenumbers knows (ISO 3166 alpha-2, e.g. DE, US)")
    return value


def _check_currency(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (three capitals, e.g. EUR)")
    return value


TimeZone = Annotated[str, AfterValidator(_check_timezone)]
Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]


class WorkspaceSection(Strict):
    name: str = Field(min_length=1)
    currency: Annotated[str, AfterValidator(_check_currency)] = "EUR"
    timezone: TimeZone = "UTC"
    default_region: Annotated[str, AfterValidator(_check_region)] = "US"


DEFAULT_ORDER = ("lead", "prospect", "mql", "sql", "opportunity", "customer")
DEFAULT_SIDE = ("nurture", "disqualified", "lost", "recycled")
ANCHOR_STAGES = ("lead", "mql", "sql", "opportunity", "customer")


class StagesSection(Strict):
    """Lifecycle stages. ``order`` is the funnel; ``side`` are states off the funnel."""

    order: list[Id] = Field(default_factory=lambda: list(DEFAULT_ORDER))
    side: list[Id] = Field(default_factory=lambda: list(DEFAULT_SIDE))
    target: Id = "customer"

    @model_validator(mode="after")
    def _anchors(self) -> StagesSection:
        missing = [s for s in ANCHOR_STAGES if s not in self.order]
        if missing:
            raise ValueError(
                f"stages.order must contain {', '.join(ANCHOR_STAGES)} (metrics are defined on them); "
                f"missing: {', '.join(missing)}"
            )
        if self.order[0] != "lead":
            raise ValueError("stages.order must start with 'lead'")
        for side in ("disqualified", "lost"):
            if side not in self.side:
                raise ValueError(f"stages.side must contain '{side}'")
        both = set(self.order) & set(self.side)
        if both:
            raise ValueError(f"a stage cannot be both in order and side: {', '.join(sorted(both))}")
        if len(set(self.order)) != len(self.order) or len(set(self.side)) != len(self.side):
            raise ValueError("stage ids must be unique")
        if self.target not in self.order:
            raise ValueError(f"stages.target {self.target!r} is not in stages.order")
        return self

    def index(self, stage: str) -> int:
        """Position in the funnel; side states rank below every funnel stage."""
        try:
            return self.order.index(stage)
        except ValueError:
            return -1


class StageRule(Strict):
    """Move a lead forward to ``to`` when the condition holds (automatic transitions only go forward)."""

    to: Id
    when: Condition
    description: str | None = None


def _level_name(value: object) -> object:
    """YAML 1.1 reads yes/no as booleans; as a level name they mean the words."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    return value


LevelName = Annotated[str, BeforeValidator(_level_name), Field(min_length=1, max_length=40)]


class CriterionLevel(Strict):
    """One level of a criterion: the first level whose condition holds is the lead's level."""

    level: LevelName
    when: Condition | None = None
    reason: str | None = None


class Criterion(Strict):
    """A qualification criterion (fit, intent, need, timing, authority, budget, value, ...)."""

    description: str | None = None
    levels: list[CriterionLevel] = Field(min_length=1)
    default: LevelName = "unknown"
    default_reason: str = "no rule matched"


class ReviewRule(Strict):
    """Send a lead to the quality review queue when the condition holds (one open item per lead)."""

    id: Id
    when: Condition
    reason: str = Field(min_length=1)


class ProductQualification(Strict):
    """Product-qualified: enough product usage in a rolling window (PQL per person, PQA per account)."""

    event: str = "product_usage"
    within: Duration = Field(default_factory=lambda: timedelta(days=14))
    min_events: int = Field(default=5, ge=1)
    distinct_field: str | None = Field(default=None, description="event data field counted distinct, e.g. feature")
    min_distinct: int = Field(default=1, ge=1)
    min_users: int = Field(default=1, ge=1, description="PQA only: distinct people of the account")


class QualificationSection(Strict):
    criteria: dict[Id, Criterion] = Field(default_factory=dict)
    stage_rules: list[StageRule] = Field(default_factory=list)
    review: list[ReviewRule] = Field(default_factory=list)
    competitor_domains: list[Annotated[str, Field(min_length=3)]] = Field(default_factory=list)
    pql: ProductQualification | None = None
    pqa: ProductQualification | None = None


class ScoringRule(Strict):
    """Points for a lead. Fit rules read the lead; engagement rules fire on each matching event."""

    id: Id
    points: int = Field(ge=-1000, le=1000)
    when: Condition | None = None
    on_event: list[str] | None = None
    cap: int | None = Field(default=None, ge=1)
    kind_: Literal["fit", "engagement"] | None = Field(
        default=None,
        alias="kind",
        description="default: engagement with on_event, else fit; say engagement for a rule on engagement "
        "figures kept on the lead (e.g. imported visit counts)",
    )
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _event_list(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("on_event"), str):
            return {**data, "on_event": [data["on_event"]]}
        return data

    @model_validator(mode="after")
    def _needs_trigger(self) -> ScoringRule:
        if self.when is None and not self.on_event:
            raise ValueError("a scoring rule needs `when` (fit) or `on_event` (engagement), or both")
        return self

    @model_validator(mode="after")
    def _fit_has_no_events(self) -> ScoringRule:
        if self.kind_ == "fit" and self.on_event:
            raise ValueError("a rule with `on_event` is an engagement rule; remove `kind: fit`")
        return self

    @property
    def kind(self) -> Literal["fit", "engagement"]:
        if self.kind_ is not None:
            return self.kind_
        return "engagement" if self.on_event else "fit"


class Grades(Strict):
    """Fit grade from fit points: at least A points is A, and so on; below C is D."""

    A: int = 40
    B: int = 25
    C: int = 10

    @model_validator(mode="after")
    def _ordered(self) -> Grades:
        if not self.A > self.B > self.C:
            raise ValueError("grade thresholds must satisfy A > B > C")
        return self


class EngagementGrades(Strict):
    """Engagement level from engagement points: 1 (most engaged) to 4."""

    level_1: int = Field(default=30, alias="1")
    level_2: int = Field(default=15, alias="2")
    level_3: int = Field(default=5, alias="3")

    @model_validator(mode="before")
    @classmethod
    def _numeric_keys(cls, data: object) -> object:
        return {str(k): v for k, v in data.items()} if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _ordered(self) -> EngagementGrades:
        if not self.level_1 > self.level_2 > self.level_3:
            raise ValueError("engagement thresholds must satisfy 1 > 2 > 3")
        return self


class ScoringSection(Strict):
    mql_threshold: int = Field(default=50, ge=0, le=100)
    max_score: int = Field(default=100, ge=1)
    grades: Grades = Field(default_factory=Grades)
    engagement_grades: EngagementGrades = Field(default_factory=EngagementGrades)
    engagement_half_life: Duration | None = Field(
        default=None, description="engagement points halve over this time; none: they do not decay"
    )
    rules: list[ScoringRule] = Field(default_factory=list)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def _working_hours(value: object) -> object:
    """``{mon-fri: "09:00-17:30", sat: "10:00-14:00"}`` into one window per weekday (0=Monday)."""
    if not isinstance(value, dict):
        raise ValueError('write working hours per day, e.g. {mon-fri: "09:00-17:00"}')
    out: dict[int, tuple[int, int]] = {}
    for key, window in value.items():
        days = str(key).lower().split("-")
        if not all(d in _DAYS for d in days) or len(days) > 2:
            raise ValueError(f"{key!r} is not a day or a day range (mon ... sun, e.g. mon-fri)")
        first, last = _DAYS.index(days[0]), _DAYS.index(days[-1])
        match = _HOURS.match(str(window).strip())
        if not match:
            raise ValueError(f"{window!r} is not a time window; write HH:MM-HH:MM, e.g. 09:00-17:00")
        h1, m1, h2, m2 = map(int, match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if not (0 <= start < end <= 24 * 60):
            raise ValueError(f"{window!r}: the end must be after the start, within the day")
        for day in range(first, last + 1):
            out[day] = (start, end)
    return out


WorkingHours = Annotated[dict[int, tuple[int, int]], BeforeValidator(_working_hours)]


class Absence(Strict):
    start: date = Field(alias="from")
    end: date = Field(alias="to", description="inclusive")

    @model_validator(mode="after")
    def _ordered(self) -> Absence:
        if self.end < self.start:
            raise ValueError("`to` must not be before `from`")
        return self


class Capacity(Strict):
    per_day: int | None = Field(default=None, ge=0)
    per_week: int | None = Field(default=None, ge=0)


class Owner(Strict):
    id: Id
    name: str = Field(min_length=1)
    email: str | None = None
    team: Id | None = None
    manager: Id | None = None
    timezone: TimeZone | None = None
    active: bool = True
    weight: int = Field(default=1, ge=1, le=100, description="weighted round robin: a weight of 2 gets twice the leads")
    capacity: Capacity = Field(default_factory=Capacity)
    languages: list[Annotated[str, Field(min_length=2, max_length=16)]] = Field(default_factory=list)
    skills: list[Id] = Field(default_factory=list)
    working_hours: WorkingHours | None = Field(default=None, description="default: the workspace's business hours")
    out_of_office: list[Absence] = Field(default_factory=list)


class Team(Strict):
    id: Id
    name: str = Field(min_length=1)
    strategy: Literal["round_robin", "weighted_round_robin", "least_load"] = "round_robin"


WORKFLOWS = ("support", "partnerships", "recruitment", "review")


class Destination(Strict):
    """Where a routing rule sends a lead: exactly one of these."""

    team: Id | None = None
    owner: Id | None = None
    queue: Id | None = Field(default=None, description="a team's queue: no owner yet, reps take leads from it")
    nurture: Id | None = Field(default=None, description="a nurture sequence, no owner")
    workflow: Literal["support", "partnerships", "recruitment", "review"] | None = Field(
        default=None, description="a non-sales workflow, no sales owner"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Destination:
        given = [f for f in ("team", "owner", "queue", "nurture", "workflow") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("a destination names exactly one of team, owner, queue, nurture or workflow")
        return self

    @property
    def kind(self) -> str:
        return next(f for f in ("team", "owner", "queue", "nurture", "workflow") if getattr(self, f) is not None)

    @property
    def target(self) -> str:
        return str(getattr(self, self.kind))


class RoutingRule(Destination):
    id: Id
    when: Condition | None = None
    description: str | None = None
    require_language: bool = Field(default=False, description="only owners who speak the lead's language")
    require_skills: list[Id] = Field(default_factory=list, description="only owners with all these skills")


class RoutingSection(Strict):
    rules: list[RoutingRule] = Field(default_factory=list)
    fallback: Destination | None = None
    account_owner_first: bool = Field(default=True, description="a lead whose account has an owner goes to that owner")
    notify_owner: bool = Field(default=True, description="email the owner on assignment and escalation")


class BusinessHours(Strict):
    timezone: TimeZone | None = Field(default=None, description="default: the workspace time zone")
    hours: WorkingHours = Field(default_factory=lambda: _working_hours({"mon-fri": "09:00-17:00"}))  # type: ignore[arg-type]
    holidays: list[date] = Field(default_factory=list)


class EscalationStep(Strict):
    after: Duration = Field(description="time after the deadline")
    action: Literal["notify_manager", "reassign", "return_to_pool"]


class SlaPolicy(Strict):
    id: Id
    first_touch: Duration
    when: Condition | None = None
    description: str | None = None
    business_hours: bool = Field(default=False, description="count only business hours towards the deadline")
    remind_before: Duration | None = Field(default=None, description="remind the owner this long before the deadline")
    escalate: list[EscalationStep] = Field(default_factory=list)


class SlaSection(Strict):
    """The first policy whose condition holds sets the deadline for the first outbound touch."""

    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    policies: list[SlaPolicy] = Field(default_factory=list)


REJECT_REASONS = (
    "not_a_fit",
    "no_budget",
    "bad_timing",
    "no_authority",
    "no_response",
    "bad_contact_info",
    "duplicate",
    "competitor",
    "existing_customer",
    "other",
)


class RejectRule(Strict):
    """Where a lead sales rejected goes: the first rule whose reasons (and condition) hold."""

    to: Id
    reasons: list[Id] | None = Field(default=None, description="any of these rejection reasons; omitted: any reason")
    when: Condition | None = None
    description: str | None = None


class Handoff(Strict):
    """Marketing hands a lead to sales when it enters ``stage``; sales accepts it (it moves to
    ``accepted_stage``) or rejects it with one of ``reasons``, and ``on_reject`` says where a
    rejected lead goes (default: nurture)."""

    stage: Id = "mql"
    accepted_stage: Id = "sql"
    reasons: list[Id] = Field(default_factory=lambda: list(REJECT_REASONS), min_length=1)
    on_reject: list[RejectRule] = Field(
        default_factory=lambda: [
            RejectRule(
                to="disqualified",
                reasons=["not_a_fit", "bad_contact_info", "duplicate", "competitor", "existing_customer"],
            )
        ]
    )
    otherwise: Id = Field(default="nurture", description="where a rejected lead goes when no on_reject rule holds")


class Source(Strict):
    id: Id
    name: str = Field(min_length=1)
    kind: Literal["inbound", "outbound", "partner", "referral", "other"] = "inbound"
    medium: str | None = None
    marketing: bool | None = Field(
        default=None, description="marketing-sourced for win rate; default: inbound and referral"
    )

    @property
    def is_marketing(self) -> bool:
        return self.marketing if self.marketing is not None else self.kind in ("inbound", "referral")


def _month(value: object) -> object:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}", value):
        return value
    raise ValueError(f"{value!r} is not a month; write YYYY-MM, e.g. 2026-03")


class SpendEntry(Strict):
    month: Annotated[str, BeforeValidator(_month)]
    amount: Money

    @property
    def period_start(self) -> date:
        year, month = map(int, self.month.split("-"))
        return date(year, month, 1)


class Campaign(Strict):
    id: Id
    name: str = Field(min_length=1)
    source: Id
    spend: list[SpendEntry] = Field(default_factory=list)


class SourceRule(Strict):
    """Name the source (and medium, campaign) of a submission that did not say it, from its UTM
    tags and referrer. Fields: utm_source, utm_medium, utm_campaign, utm_term, utm_content,
    referrer, referrer_host, landing_page, capture_context."""

    when: Condition
    source: Id
    medium: str | None = None
    campaign: str | None = None


FORM_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "title",
    "website",
    "industry",
    "employees",
    "country",
    "state",
    "city",
    "language",
    "notes",
)


class FormSpec(Strict):
    """The fields a capture context asks for: ``required`` ones must be given (422 names every
    missing one); ``optional`` ones may be. Names are lead fields or ``custom.<name>``."""

    title: str | None = None
    required: list[str] = Field(default_factory=list)
    optional: list[str] = Field(default_factory=list)
    consent: str | None = Field(default=None, description="the consent wording shown on the form")

    @property
    def fields(self) -> list[str]:
        return [*self.required, *(f for f in self.optional if f not in self.required)]


class RateLimit(Strict):
    per_minute: int = Field(default=30, ge=1)
    burst: int = Field(default=10, ge=1)


class WebToLead(Strict):
    """Public web forms (``POST /w2l``): where they may send people back to, and the spam guards."""

    allowed_return_hosts: list[str] = Field(default_factory=list, description="hosts retURL may point to")
    thank_you: str = "Thank you! We will be in touch shortly."
    honeypot: str = Field(default="website_url", description="a hidden field people leave empty and bots fill in")
    min_seconds: float = Field(default=2.0, ge=0, description="faster than this from form load to submit is a bot")
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    max_bytes: int = Field(default=20_000, ge=1_000, le=1_000_000)


class CaptureSection(Strict):
    source_rules: list[SourceRule] = Field(default_factory=list)
    forms: dict[Id, FormSpec] = Field(default_factory=dict)
    web_to_lead: WebToLead = Field(default_factory=WebToLead)
    block_disposable_email: bool = Field(default=False, description="refuse addresses of throwaway mail services")


WEBHOOK_EVENTS = (
    "lead.created",
    "lead.updated",
    "lead.stage_changed",
    "lead.assigned",
    "lead.sla_reminded",
    "lead.sla_escalated",
    "lead.handoff",
)


class Webhook(Strict):
    """Outgoing webhook: events POSTed as JSON, signed with HMAC-SHA256 over timestamp and body."""

    id: Id
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=500)]
    events: list[
        Literal[
            "lead.created",
            "lead.updated",
            "lead.stage_changed",
            "lead.assigned",
            "lead.sla_reminded",
            "lead.sla_escalated",
            "lead.handoff",
        ]
    ] = Field(default_factory=lambda: list(WEBHOOK_EVENTS), min_length=1)
    secret_env: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,99}$")] = Field(
        description="the environment variable holding the signing secret (secrets stay out of this file)"
    )
    active: bool = True


class MetricsSection(Strict):
    maturity_days: int = Field(default=90, ge=1)
    inactive_after_days: int = Field(default=90, ge=1)
    engagement_window_days: int = Field(default=14, ge=1)
    gross_margin: float = Field(default=1.0, gt=0, le=1, description="share of revenue kept, for ltv and payback")
    attribution_half_life_days: float = Field(default=7.0, gt=0, description="time-decay attribution half-life")
    market_size_per_year: Decimal | None = Field(default=None, gt=0, description="total market, for market_share")


class WorkspaceConfig(Strict):
    version: Literal[1] = 1
    workspace: WorkspaceSection
    stages: StagesSection = Field(default_factory=StagesSection)
    qualification: QualificationSection = Field(default_factory=QualificationSection)
    scoring: ScoringSection = Field(default_factory=ScoringSection)
    teams: list[Team] = Field(default_factory=list)
    owners: list[Owner] = Field(default_factory=list)
    routing: RoutingSection = Field(default_factory=RoutingSection)
    sla: SlaSection = Field(default_factory=SlaSection)
    handoff: Handoff = Field(default_factory=Handoff)
    capture: CaptureSection = Field(default_factory=CaptureSection)
    webhooks: list[Webhook] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    campaigns: list[Campaign] = Field(default_factory=list)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    nurture: NurtureSection = Field(default_factory=NurtureSection)
    identity: IdentitySection = Field(default_factory=IdentitySection)
    privacy: PrivacySection = Field(default_factory=PrivacySection)
    fields: FieldsSection = Field(default_factory=dict, description="custom fields: {custom.x: {personal: false}}")

    def team_members(self, team_id: str) -> list[Owner]:
        return [o for o in self.owners if o.team == team_id and o.active]
