"""What a lead is made of.

One list of lead fields, so that conditions in the workspace file can be checked against it, the
capture schema and the table agree, and erasure knows exactly which fields are personal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LeadField:
    name: str
    kind: str  # str | int | float | bool | datetime | json
    personal: bool = False
    description: str = ""


LEAD_FIELDS: tuple[LeadField, ...] = (
    # Personal data: blanked by erasure, never logged, never in event data outside `personal`.
    LeadField("email", "str", personal=True, description="email address as given"),
    LeadField("email_key", "str", personal=True, description="normalised email used for matching"),
    LeadField("first_name", "str", personal=True),
    LeadField("last_name", "str", personal=True),
    LeadField("phone", "str", personal=True, description="phone number in E.164"),
    LeadField("notes", "str", personal=True, description="free text from the person"),
    LeadField("external_id", "str", personal=True, description="the person's id in the system they came from"),
    # Facts about the person's company and role.
    LeadField("company", "str"),
    LeadField("title", "str", description="job title"),
    LeadField("seniority", "str", description="derived from title: executive, director, manager, staff, student"),
    LeadField("website", "str"),
    LeadField("domain", "str", description="company domain from website or business email"),
    LeadField("email_domain", "str"),
    LeadField("is_free_mail", "bool"),
    LeadField("is_disposable_email", "bool", description="a throwaway mail service"),
    LeadField("industry", "str"),
    LeadField("employees", "int"),
    LeadField("company_size", "str", description="band: 1-10, 11-50, 51-200, 201-1000, 1001-5000, 5000+"),
    LeadField("country", "str", description="ISO 3166-1 alpha-2"),
    LeadField("state", "str"),
    LeadField("city", "str"),
    LeadField("language", "str"),
    LeadField("segment", "str"),
    # Where it came from.
    LeadField("source", "str"),
    LeadField("medium", "str"),
    LeadField("campaign", "str"),
    LeadField("landing_page", "str"),
    LeadField("referrer", "str"),
    LeadField("capture_context", "str", description="newsletter, demo, trial, quote, contact, ..."),
    LeadField("visitor_id", "str"),
    # Consent.
    LeadField("consent_email", "bool"),
    LeadField("consent_phone", "bool"),
    LeadField("consent_sms", "bool"),
    LeadField("do_not_contact", "bool"),
    # State kept by the pipeline.
    LeadField("stage", "str"),
    LeadField("score", "int"),
    LeadField("fit_score", "int"),
    LeadField("engagement_score", "int"),
    LeadField("grade", "str", description="fit grade A-D"),
    LeadField("engagement_grade", "int", description="engagement level 1 (most engaged) to 4"),
    LeadField("matrix", "str", description="fit grade and engagement level together, e.g. A1, C3"),
    LeadField("criteria", "json", description="qualification criteria: criteria.<name> reads the level"),
    LeadField("is_competitor", "bool", description="the company domain is a declared competitor"),
    LeadField("pql", "bool", description="the person met the product-qualified rule"),
    LeadField("pqa", "bool", description="the person's account met the product-qualified rule"),
    LeadField("owner_id", "str"),
    LeadField("team_id", "str"),
    LeadField("sla_policy", "str"),
    LeadField(
        "destination", "str", description="where routing sent it: team:x, owner:y, queue:z, nurture:reason, workflow:w"
    ),
    LeadField("stage_entered_at", "datetime"),
    LeadField("account_id", "int"),
    LeadField("created_at", "datetime"),
    LeadField("first_contact_at", "datetime"),
    LeadField("last_activity_at", "datetime"),
    LeadField("custom", "json", description="custom fields declared by the workspace"),
)

FIELD_BY_NAME = {f.name: f for f in LEAD_FIELDS}
PERSONAL_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.personal)


BUILTIN_CRITERIA = ("completeness",)


def is_known_field(name: str, criteria: tuple[str, ...] = (), engagement_rules: tuple[str, ...] = ()) -> bool:
    """Whether a condition may refer to ``name`` (``custom.x`` and ``event.x`` are open-ended;
    ``criteria.x`` must name a declared or built-in criterion, ``engagement.r`` a scoring rule)."""
    if name.startswith(("custom.", "event.")):
        return len(name.split(".", 1)[1]) > 0
    if name.startswith("criteria."):
        return name.split(".", 1)[1] in (*criteria, *BUILTIN_CRITERIA)
    if name.startswith("engagement."):
        return name.split(".", 1)[1] in engagement_rules
    return name in FIELD_BY_NAME and FIELD_BY_NAME[name].kind != "json"
