"""What a lead looks like when it arrives, from any entry point.

Unknown fields are refused (``extra="forbid"``) so that a typo in an integration is an error the
integrator sees, not data silently dropped.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from leadflow.capture.text import clean_fields


def _moment(value: datetime) -> datetime:
    """An aware time between 1970 and 2200, as UTC (naive or far-off times are mistakes)."""
    if value.tzinfo is None:
        raise ValueError("give a time zone (e.g. 2026-03-01T09:30:00Z)")
    if not 1970 <= value.year <= 2200:  # before the conversion: 0001-01-01+01:00 has no UTC
        raise ValueError("must be between 1970 and 2200")
    value = value.astimezone(UTC)
    if not 1970 <= value.year <= 2200:
        raise ValueError("must be between 1970 and 2200 (UTC)")
    return value


def _scalar(value: str | int | float | bool | None) -> str | int | float | bool | None:
    """A custom value that JSON can carry and every database can store: a whole number in 64
    bits, a finite number (not NaN, not an overflowing 1e400), a bool, a text or nothing."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ValueError("must be a whole number between -2^63 and 2^63-1")
    return value


Moment = Annotated[datetime, AfterValidator(_moment)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
CustomValue = Annotated[
    Annotated[str, StringConstraints(max_length=5000)] | int | float | bool | None, AfterValidator(_scalar)
]


class ConsentIn(BaseModel):
    """Consent per channel as the person gave it, with the wording they saw."""

    model_config = ConfigDict(extra="forbid")

    email: bool | None = None
    phone: bool | None = None
    sms: bool | None = None
    do_not_contact: bool = False
    lawful_basis: Literal["consent", "legitimate_interest", "contract", "legal_obligation"] | None = None
    wording: Annotated[str, StringConstraints(max_length=2000)] | None = None


class LeadIn(BaseModel):
    """A lead as submitted by a form, an API client, an import or the simulator."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = Field(
        default=None,
        description="the lead's id in the system it comes from (CRM record id): a later capture with it updates this lead",
    )
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)] | None = None
    first_name: Short | None = None
    last_name: Short | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = None
    company: Text | None = None
    title: Text | None = None
    website: Url | None = None
    industry: Short | None = None
    employees: int | None = Field(default=None, ge=0, le=10_000_000)
    country: Short | None = None
    state: Short | None = None
    city: Short | None = None
    language: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] | None = None
    segment: Short | None = None
    source: Short | None = None
    medium: Short | None = None
    campaign: Short | None = None
    landing_page: Url | None = None
    referrer: Url | None = None
    capture_context: Short | None = None
    visitor_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    utm_source: Short | None = None
    utm_medium: Short | None = None
    utm_campaign: Short | None = None
    utm_term: Short | None = None
    utm_content: Short | None = None
    notes: Annotated[str, StringConstraints(max_length=5000)] | None = None
    consent: ConsentIn | None = None
    custom: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")], CustomValue] | None = Field(
        default=None, max_length=100
    )
    occurred_at: Moment | None = Field(default=None, description="when the lead was captured; default now")

    # Blank strings (strings are stripped) count as missing: see capture.normalize.

    @model_validator(mode="before")
    @classmethod
    def _plain_text(cls, data: Any) -> Any:
        """Every entry point (API, form, import, simulator) validates here: control characters go."""
        return clean_fields(data)

    @model_validator(mode="after")
    def _identifiable(self) -> LeadIn:
        if not (
            self.email
            or self.phone
            or self.first_name
            or self.last_name
            or self.company
            or self.visitor_id
            or self.external_id
        ):
            raise ValueError(
                "a lead needs at least one of email, phone, first_name, last_name, company, visitor_id or external_id"
            )
        return self


class EventIn(BaseModel):
    """Activity of a lead or an anonymous visitor, from any system (web, email, phone, product)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: str = Field(description="one of the activity types: page_view, email_opened, call, product_usage, ...")
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None, description="the activity's id in the system it comes from: recorded once, however often sent"
    )
    lead_id: int | None = Field(
        default=None, ge=1, le=2**62, description="the lead, or give lead_external_id, email or visitor_id"
    )
    lead_external_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None, description="the lead's id in the system it comes from"
    )
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    visitor_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    occurred_at: Moment | None = Field(default=None, description="when it happened; default now")
    url: Url | None = Field(default=None, description="page_view, email_clicked: the page")
    referrer: Url | None = None
    utm_source: Short | None = None
    utm_medium: Short | None = None
    utm_campaign: Short | None = None
    utm_term: Short | None = None
    utm_content: Short | None = None
    direction: Literal["inbound", "outbound"] | None = Field(
        default=None, description="call, chat, email_sent: who reached whom"
    )
    referred_lead_id: int | None = Field(
        default=None, ge=1, le=2**62, description="referral: the lead this one brought in"
    )
    text: Annotated[str, StringConstraints(max_length=10000)] | None = Field(
        default=None, description="free text (note, chat or email body): personal data, erased on request"
    )
    data: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")], CustomValue] | None = Field(
        default=None, max_length=50, description="other details: feature, campaign, content, channel, seconds, ..."
    )

    @model_validator(mode="before")
    @classmethod
    def _plain_text(cls, data: Any) -> Any:
        return clean_fields(data)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        from leadflow.events import ACTIVITY_TYPES

        if value not in ACTIVITY_TYPES:
            raise ValueError(f"unknown activity type {value!r}; one of: {', '.join(ACTIVITY_TYPES)}")
        return value

    @model_validator(mode="after")
    def _who(self) -> EventIn:
        if self.lead_id is None and not self.lead_external_id and not self.email and not self.visitor_id:
            raise ValueError("say whose activity it is: lead_id, lead_external_id, email or visitor_id")
        if self.type == "page_view" and not self.url:
            raise ValueError("a page_view needs its url")
        if self.type == "referral" and self.referred_lead_id is None:
            raise ValueError("a referral needs referred_lead_id (the lead brought in)")
        return self
