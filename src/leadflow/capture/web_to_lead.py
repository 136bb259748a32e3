"""Web-to-Lead: an ordinary HTML form, with the field names of Salesforce Web-to-Lead forms, so
an existing form can be pointed at leadflow unchanged."""

from __future__ import annotations

import re
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
                lead[target] = _head_count(name, value)
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


_GROUPED = re.compile(r"[0-9]{1,3}(?:([,. '])[0-9]{3})(?:\1[0-9]{3})*")


def _head_count(name: str, value: str) -> int:
    """A number of employees as people write it: 250, 1,500, 1.500 or 1 500 (thousands grouped)."""
    if len(value) <= 20 and (re.fullmatch(r"[0-9]+", value) or _GROUPED.fullmatch(value)):
        return int(re.sub(r"[^0-9]", "", value))
    raise InvalidInput("the form is not valid", [Problem(name, f"{value[:40]!r} is not a whole number of employees")])


def form_names(form: Mapping[str, str], problems: list[Problem]) -> list[Problem]:
    """The problems with each field named as the form named it (``description``, not ``notes``)."""
    by_target: dict[str, str] = {}
    for name in form:
        if name in FIELD_NAMES:
            by_target.setdefault(FIELD_NAMES[name], name)
        elif name.startswith("custom_"):
            by_target.setdefault("custom." + name.removeprefix("custom_"), name)
    out = []
    for p in problems:
        parts = p.field.split(".")
        key = ".".join(parts[:2]) if parts[0] == "custom" else parts[0]
        out.append(Problem(by_target.get(key, p.field), p.message, p.line))
    return out


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
