"""Clean a submitted lead on the way in: a pure function, so every entry point cleans alike.

Emails are syntax-checked and their domain lower-cased, phones become E.164 (workspace default
region), names are tidied, countries become ISO 3166 alpha-2, UTM tags fill source, medium and
campaign. Every problem is collected and reported at once, each naming its field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import phonenumbers
import pycountry
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from leadflow.capture.rules import CaptureRules, host_of, referrer_channel
from leadflow.capture.schemas import LeadIn
from leadflow.clock import ensure_utc
from leadflow.errors import InvalidInput, Problem

FACT_FIELDS = (
    "external_id",
    "company",
    "title",
    "website",
    "industry",
    "employees",
    "country",
    "state",
    "city",
    "language",
    "segment",
    "source",
    "medium",
    "campaign",
    "landing_page",
    "referrer",
    "capture_context",
    "visitor_id",
)

_COUNTRY_ALIASES = {
    "uk": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "great britain": "GB",
    "usa": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "america": "US",
    "uae": "AE",
    "russia": "RU",
    "south korea": "KR",
    "korea": "KR",
    "vietnam": "VN",
    "czech republic": "CZ",
    "holland": "NL",
    "the netherlands": "NL",
    "iran": "IR",
}
_SPACES = re.compile(r"\s+")
_SLUG = re.compile(r"[^a-z0-9_\-]+")


@dataclass
class Capture:
    """A cleaned submission: facts, personal data and consent, kept apart."""

    fields: dict[str, Any]
    personal: dict[str, Any]
    consent: dict[str, Any] | None
    custom: dict[str, Any] | None
    occurred_at: datetime
    utm: dict[str, str] = field(default_factory=dict)
    # Imported history: recorded as of occurred_at, with nothing sent, scheduled or routed.
    history: bool = False
    owner_id: str | None = None  # the owner it had in the system it came from (imports)
    team_id: str | None = None
    stage_given: bool = False  # its stages come from the import, not from the stage rules
    # Checked against the erasure suppression list (privacy.suppression.screen), and taken as a
    # brand-new lead although its email or phone was an erased person's (with fresh consent).
    screened: bool = False
    after_erasure: bool = False
    # Facts about how it arrived, kept on its capture event (e.g. why a form's retURL was not followed).
    event_data: dict[str, Any] = field(default_factory=dict)

    @property
    def email_key(self) -> str | None:
        return self.personal.get("email_key")


# An ASCII dot-atom local part (RFC 5322): what nearly every address has. email_validator accepts
# every such local part as it is, so for these only the domain needs its checks, and a domain's
# verdict is the same for every address at it.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
MAX_LOCAL, MAX_DOMAIN, MAX_ADDRESS = 64, 253, 254


# A plain ASCII host name of two or more LDH labels (checked lower-cased), ending in a letter.
_PLAIN_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z0-9][a-z0-9-]{0,61})?[a-z]\Z")
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)


@lru_cache(maxsize=8192)
def _checked_domain(domain: str) -> str | None:
    """The domain as email_validator normalises it, or None when it refuses it."""
    plain = domain.lower()
    if (
        domain.isascii()
        and len(plain) <= MAX_DOMAIN
        and "--" not in plain  # Punycode and reserved labels: email_validator decides
        and _PLAIN_DOMAIN.match(plain)
        and not any(plain == d or plain.endswith("." + d) for d in _SPECIAL_USE)
    ):
        return plain
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def checked_email(address: str) -> str:
    """The address normalised as email_validator normalises it (domain lower-cased, IDNA), or
    ``EmailNotValidError``. Plain addresses take a fast path with the domain check cached; any
    other address, and every invalid one, goes through email_validator whole."""
    local, at, domain = address.rpartition("@")
    if at and len(local) <= MAX_LOCAL and _PLAIN_LOCAL.match(local):
        host = _checked_domain(domain)
        if host is not None and len(local) + 1 + len(host) <= MAX_ADDRESS:
            return f"{local}@{host}"
    # anything else, and every refusal (its message comes from email_validator)
    return validate_email(address, check_deliverability=False).normalized


def normalise(lead: LeadIn, *, default_region: str, now: datetime, rules: CaptureRules | None = None) -> Capture:
    problems: list[Problem] = []
    personal: dict[str, Any] = {}

    if lead.email:
        try:
            normalized = checked_email(lead.email)
            personal["email"] = normalized
            personal["email_key"] = normalized.lower()
        except EmailNotValidError as exc:
            problems.append(Problem("email", f"not a valid email address: {exc}"))

    for name in ("first_name", "last_name"):
        value = getattr(lead, name)
        if value:
            personal[name] = tidy_name(value)

    country = None
    if lead.country:
        country = country_code(lead.country)
        if country is None:
            problems.append(Problem("country", f"unknown country {lead.country!r}; use a name or ISO code, e.g. DE"))

    if lead.phone:
        phone = e164(lead.phone, country or default_region)
        if phone is None:
            problems.append(
                Problem("phone", f"{lead.phone!r} is not a phone number (region {country or default_region})")
            )
        else:
            personal["phone"] = phone

    if lead.notes and lead.notes.strip():
        personal["notes"] = lead.notes

    if rules is not None:
        if rules.block_disposable and "email" in personal and is_disposable(personal["email"]):
            problems.append(Problem("email", "addresses of throwaway mail services are not accepted"))
        given = {name for name in FACT_FIELDS if getattr(lead, name) not in (None, "")}
        given |= set(personal) | {f"custom.{k}" for k, v in (lead.custom or {}).items() if v not in (None, "")}
        given |= {p.field for p in problems}  # reported as invalid already: not missing as well
        try:
            rules.check_form(slug(lead.capture_context) if lead.capture_context else None, given)
        except InvalidInput as missing:
            problems.extend(missing.problems)

    if problems:
        raise InvalidInput("the lead has invalid fields", problems)

    facts: dict[str, Any] = {}
    for name in FACT_FIELDS:
        value = getattr(lead, name)
        if value is not None and value != "":
            facts[name] = value
    if country is not None:
        facts["country"] = country
    if "company" in facts:
        facts["company"] = _SPACES.sub(" ", facts["company"])
    utm = {
        k: v for k in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content") if (v := getattr(lead, k))
    }
    if "capture_context" in facts:
        facts["capture_context"] = slug(facts["capture_context"])
    _attribute(facts, utm, rules)
    if "language" in facts:
        facts["language"] = facts["language"].lower()

    consent = lead.consent.model_dump(exclude_none=True) if lead.consent is not None else None
    occurred_at = ensure_utc(lead.occurred_at) if lead.occurred_at is not None else now
    return Capture(
        fields=facts,
        personal=personal,
        consent=consent,
        custom=dict(lead.custom) if lead.custom else None,
        occurred_at=occurred_at,
        utm=utm,
    )


def _attribute(facts: dict[str, Any], utm: dict[str, str], rules: CaptureRules | None) -> None:
    """Source, medium and campaign: as given; else by the workspace's source rules over UTM tags
    and referrer; else the UTM tags themselves; else what the referrer implies."""
    given = {name: slug(facts[name]) for name in ("source", "medium", "campaign") if facts.get(name)}
    if "source" not in given:
        touch = {
            **utm,
            "referrer": facts.get("referrer"),
            "referrer_host": host_of(facts.get("referrer")),
            "landing_page": facts.get("landing_page"),
            "capture_context": facts.get("capture_context"),
        }
        attributed = rules.attribute(touch) if rules is not None else None
        if attributed is not None:
            given["source"] = attributed[0]
            for name, value in zip(("medium", "campaign"), attributed[1:], strict=True):
                if value and name not in given:
                    given[name] = value
        elif utm.get("utm_source"):
            given["source"] = slug(utm["utm_source"])
        elif (implied := referrer_channel(facts.get("referrer"), facts.get("landing_page"))) is not None:
            given["source"] = implied[0]
            given.setdefault("medium", implied[1])
    for name, tag in (("medium", "utm_medium"), ("campaign", "utm_campaign")):
        if name not in given and utm.get(tag):
            given[name] = slug(utm[tag])
    facts.update(given)


def is_disposable(email: str) -> bool:
    from disposable_email_domains import blocklist

    return email.rsplit("@", 1)[-1].lower() in blocklist


def tidy_name(value: str) -> str:
    value = _SPACES.sub(" ", value).strip()
    if value.islower() or value.isupper():
        value = value.title()
    return value


def slug(value: str) -> str:
    return _SLUG.sub("_", value.strip().lower()).strip("_")[:64] or "unknown"


@lru_cache(maxsize=4096)
def country_code(value: str) -> str | None:
    key = value.strip().lower()
    if key in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[key]
    try:
        return str(pycountry.countries.lookup(key).alpha_2)
    except LookupError:
        return None


def e164(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
