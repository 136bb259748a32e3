"""Web-to-Lead: an ordinary HTML form, with the field names of Salesforce Web-to-Lead forms, so
an existing form can be pointed at leadflow unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leadflow.capture.rules import host_of, split_url
from leadflow.errors import InvalidInput, Problem

# Salesforce Web-to-Lead names (and a few common variants) -> leadflow lead fields.
FIELD_NAMES = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "company": "company",
    "title": "title",
    "phone": "phone",
    "mobile": "phone",
    "city": "city",
    "state": "state",
    "country": "country",
    "industry": "industry",
    "employees": "employees",
    "url": "website",
    "URL": "website",
    "website": "website",
    "description": "notes",
    "lead_source": "source",
    "source": "source",
    "medium": "medium",
    "campaign": "campaign",
    "Campaign_ID": "campaign",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_term": "utm_term",
    "utm_content": "utm_content",
    "capture_context": "capture_context",
    "lf_context": "capture_context",
    "visitor_id": "visitor_id",
    "lf_visitor": "visitor_id",
    "language": "language",
    "landing_page": "landing_page",
}
CONSENT_FIELDS = {"consent_email": "email", "emailOptIn": "email", "consent_phone": "phone", "consent_sms": "sms"}
IGNORED = {"oid", "retURL", "debug", "debugEmail", "encoding", "_lf_ts", "recordType", "submit", "zip", "street"}
TRUE = {"1", "on", "yes", "true", "y"}


def form_to_lead(
    form: Mapping[str, str], *, honeypot: str, referrer: str | None, consent_wording: str | None
) -> dict[str, Any]:
    """The lead a submitted form describes. ``custom_*`` fields become custom fields; other
    unknown fields (e.g. Salesforce custom field ids) are ignored."""
    lead: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    consent: dict[str, Any] = {}
    for name, value in form.items():
        value = value.strip()
        if not value or name in IGNORED or name == honeypot:
            continue
        if name in FIELD_NAMES:
            target = FIELD_NAMES[name]
            if target == "employees":
                try:
                    lead[target] = int(value.replace(",", "").replace(".", ""))
                except ValueError:
                    raise InvalidInput(
                        "the form is not valid", [Problem("employees", f"{value!r} is not a number")]
                    ) from None
            else:
                lead.setdefault(target, value)
        elif name in CONSENT_FIELDS:
            consent[CONSENT_FIELDS[name]] = value.lower() in TRUE
        elif name.startswith("custom_"):
            custom[name.removeprefix("custom_")] = value
    if consent:
        consent["lawful_basis"] = "consent"
        if consent_wording:
            consent["wording"] = consent_wording
        lead["consent"] = consent
    if custom:
        lead["custom"] = custom
    if referrer and "referrer" not in lead:
        lead["referrer"] = referrer[:500]
    return lead


def return_url(value: str | None, allowed: list[str]) -> str | None:
    """Where to send the person after the form; only to hosts the workspace allows."""
    if not value:
        return None
    parts = split_url(value)
    host = host_of(value)
    if parts is None:
        raise InvalidInput("retURL is not a URL", [Problem("retURL", "not a URL")])
    allowed_hosts = {h.lower().removeprefix("www.") for h in allowed}
    if parts.scheme not in ("http", "https") or host not in allowed_hosts:
        raise InvalidInput(
            "retURL is not allowed",
            [
                Problem(
                    "retURL",
                    f"{host or value!r} is not an allowed return host; add it to capture.web_to_lead.allowed_return_hosts",
                )
            ],
        )
    return value
