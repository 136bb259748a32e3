"""Web-to-Lead: an ordinary HTML form, with the field names of Salesforce Web-to-Lead forms, so
an existing form can be pointed at leadflow unchanged."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

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
    form: Mapping[str, str],
    *,
    honeypot: str,
    referrer: str | None,
    consent_wording: str | None,
    action: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The lead a submitted form describes. ``custom_*`` fields become custom fields; other
    unknown fields (e.g. Salesforce custom field ids) are ignored. UTM tags the form lacks come
    from the action URL's query (``action``) or the referrer's (see :func:`carried_utm`)."""
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
    for name, value in carried_utm(form, action or {}, referrer).items():
        lead.setdefault(name, value)
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


def return_target(value: str | None, allowed: list[str]) -> tuple[str | None, str | None]:
    """Where to send the person after the form, and, when ``retURL`` is not followed, why.

    Only http(s) URLs at hosts the workspace allows are followed; any other ``retURL`` costs the
    visitor nothing (the lead is kept and thanked on leadflow's own page) and the reason is
    recorded for the operator, who may add the host to ``allowed_return_hosts``."""
    if not value:
        return None, None
    parts = split_url(value)
    host = host_of(value)
    if parts is None or parts.scheme not in ("http", "https") or not host:
        return None, "retURL is not an http(s) URL"
    if host not in {h.lower().removeprefix("www.") for h in allowed}:
        return None, f"host {host[:100]} not in allowed_return_hosts"
    return value, None


UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


def url_utm(url: str | None) -> dict[str, str]:
    """The UTM tags in a URL's query (the first of each, at most 100 characters)."""
    parts = split_url(url) if url else None
    if parts is None or not parts.query:
        return {}
    tags: dict[str, str] = {}
    for name, value in parse_qsl(parts.query):
        if name in UTM_FIELDS and value.strip() and name not in tags:
            tags[name] = value.strip()[:100]
    return tags


def carried_utm(form: Mapping[str, str], action: Mapping[str, str], referrer: str | None) -> dict[str, str]:
    """UTM tags the form itself lacks: each from the form's action URL (``/w2l?utm_source=...``)
    when the form has none of that name; from the page the visitor came from (the ``Referer``'s
    query) only when neither the form nor the action URL has any, so one touch's tags are never
    mixed with another's."""
    own = {n for n in UTM_FIELDS if form.get(n, "").strip()}
    tagged = {n: v.strip()[:100] for n, v in action.items() if n in UTM_FIELDS and v.strip()}
    if not own and not tagged:
        tagged = url_utm(referrer)
    return {n: v for n, v in tagged.items() if n not in own}
