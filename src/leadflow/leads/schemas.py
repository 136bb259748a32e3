"""How a lead is shown to the outside (API, CLI ``--json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from leadflow.scoring.rules import RuleModel


class Contact(BaseModel):
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None


class Company(BaseModel):
    name: str | None = None
    domain: str | None = None
    website: str | None = None
    industry: str | None = None
    employees: int | None = None
    size: str | None = None
    country: str | None = None
    state: str | None = None
    city: str | None = None


class Attribution(BaseModel):
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    landing_page: str | None = None
    referrer: str | None = None
    capture_context: str | None = None
    visitor_id: str | None = None


class Consent(BaseModel):
    email: bool | None = None
    phone: bool | None = None
    sms: bool | None = None
    do_not_contact: bool = False


class ScoreLine(BaseModel):
    rule: str
    kind: str
    points: int
    why: str


class Score(BaseModel):
    value: int = Field(description="0..max_score; the explanation sums exactly to it")
    grade: str | None = Field(description="fit grade A-D")
    engagement_grade: int | None = Field(default=None, description="engagement level 1 (most engaged) to 4")
    matrix: str | None = Field(default=None, description="fit grade and engagement level, e.g. B2")
    fit: int
    engagement: int
    engagement_as_of: datetime | None = Field(default=None, description="when the engagement points were last decayed")
    explanation: list[ScoreLine]


class Criterion(BaseModel):
    level: str
    reason: str


class Assignment(BaseModel):
    owner: str | None = None
    team: str | None = None
    destination: str | None = Field(default=None, description="team:x, owner:y, queue:z, nurture:s or workflow:w")
    assigned_at: datetime | None = None
    sla_policy: str | None = None
    sla_due_at: datetime | None = None
    first_contact_at: datetime | None = None


class LeadOut(BaseModel):
    id: int
    external_id: str | None = Field(default=None, description="its id in the system it came from, as first known")
    historical: bool = Field(default=False, description="imported as history: nothing sent, scheduled or routed")
    created_at: datetime
    updated_at: datetime
    stage: str
    stage_entered_at: datetime
    stage_reason: str | None = None
    title: str | None = None
    seniority: str | None = None
    contact: Contact
    company: Company
    attribution: Attribution
    consent: Consent
    score: Score
    criteria: dict[str, Criterion] = Field(default_factory=dict, description="qualification criteria: level and reason")
    pql: bool = False
    pqa: bool = False
    account_id: int | None = None
    assignment: Assignment
    last_activity_at: datetime | None = None
    custom: dict[str, Any] | None = None
    merged_into_id: int | None = None
    erased: bool = False
    config_version: str


class EventOut(BaseModel):
    id: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    stage: str | None = None
    data: dict[str, Any]
    personal: dict[str, Any] | None = None
    config_version: str


class LeadWithEvents(LeadOut):
    events: list[EventOut]


class CaptureOut(BaseModel):
    """The answer to a capture: the lead as the pipeline left it."""

    created: bool = Field(description="false when the submission matched an existing lead")
    lead: LeadOut


def lead_out(row: dict[str, Any], model: RuleModel) -> LeadOut:
    score = model.stored_score(row)
    return LeadOut(
        id=row["id"],
        external_id=row.get("external_id"),
        historical=bool(row.get("historical")),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        stage=row["stage"],
        stage_entered_at=row["stage_entered_at"],
        stage_reason=row["stage_reason"],
        title=row["title"],
        seniority=row["seniority"],
        contact=Contact(
            email=row["email"], first_name=row["first_name"], last_name=row["last_name"], phone=row["phone"]
        ),
        company=Company(
            name=row["company"],
            domain=row["domain"],
            website=row["website"],
            industry=row["industry"],
            employees=row["employees"],
            size=row["company_size"],
            country=row["country"],
            state=row["state"],
            city=row["city"],
        ),
        attribution=Attribution(
            source=row["source"],
            medium=row["medium"],
            campaign=row["campaign"],
            landing_page=row["landing_page"],
            referrer=row["referrer"],
            capture_context=row["capture_context"],
            visitor_id=row["visitor_id"],
        ),
        consent=Consent(
            email=row["consent_email"],
            phone=row["consent_phone"],
            sms=row["consent_sms"],
            do_not_contact=bool(row["do_not_contact"]),
        ),
        score=Score(
            value=row["score"],
            grade=row["grade"],
            engagement_grade=row["engagement_grade"],
            matrix=row["matrix"],
            fit=row["fit_score"],
            engagement=row["engagement_score"],
            engagement_as_of=row["engagement_as_of"],
            explanation=[ScoreLine(**line) for line in score.explanation(model)],
        ),
        criteria={k: Criterion(**v) for k, v in (row["criteria"] or {}).items()},
        pql=bool(row["pql"]),
        pqa=bool(row["pqa"]),
        account_id=row["account_id"],
        assignment=Assignment(
            owner=row["owner_id"],
            team=row["team_id"],
            destination=row["destination"],
            assigned_at=row["assigned_at"],
            sla_policy=row["sla_policy"],
            sla_due_at=row["sla_due_at"],
            first_contact_at=row["first_contact_at"],
        ),
        last_activity_at=row["last_activity_at"],
        custom=row["custom"],
        merged_into_id=row["merged_into_id"],
        erased=row["erased_at"] is not None,
        config_version=row["config_version"],
    )


def event_out(row: dict[str, Any]) -> EventOut:
    return EventOut(
        id=row["id"],
        type=row["type"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        actor=row["actor"],
        stage=row["stage"],
        data=row["data"] or {},
        personal=row["personal"],
        config_version=row["config_version"],
    )
