"""Derived fields, computed from the lead alone: pure, fast, and explained in a trace."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any

import phonenumbers
import tldextract

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

SIZE_BANDS = ((10, "1-10"), (50, "11-50"), (200, "51-200"), (1000, "201-1000"), (5000, "1001-5000"))

_SENIORITY = (
    (
        "executive",
        re.compile(
            r"\b(ceo|cfo|cto|coo|cmo|cio|cro|chief|founder|co-?founder|owner|president|managing director|general manager)\b",
            re.I,
        ),
    ),
    ("vp", re.compile(r"\b(vp|svp|evp|vice[ -]president)\b", re.I)),
    ("director", re.compile(r"\b(director|head of|head)\b", re.I)),
    ("student", re.compile(r"\b(student|intern|trainee|apprentice)\b", re.I)),
    ("manager", re.compile(r"\b(manager|lead|supervisor|principal)\b", re.I)),
)


@lru_cache(maxsize=1)
def free_mail_domains() -> frozenset[str]:
    text = resources.files("leadflow.enrich").joinpath("free_mail_domains.txt").read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=1)
def _disposable() -> frozenset[str]:
    from disposable_email_domains import blocklist

    return frozenset(blocklist) - free_mail_domains()


def is_free_mail(domain: str) -> bool:
    return domain in free_mail_domains()


@lru_cache(maxsize=65536)
def registered_domain(host_or_url: str) -> str | None:
    """The domain a company registered (``shop.acme.co.uk`` → ``acme.co.uk``); for a suffix the
    public list does not know (``acme.example``, intranet names) the last two labels."""
    result = _EXTRACT(host_or_url.strip().lower())
    if result.top_domain_under_public_suffix:
        return result.top_domain_under_public_suffix
    labels = [part for part in (*result.subdomain.split("."), result.domain, *result.suffix.split(".")) if part]
    return ".".join(labels[-2:]) if len(labels) >= 2 else None


def company_size(employees: int | None) -> str | None:
    if employees is None:
        return None
    for upper, band in SIZE_BANDS:
        if employees <= upper:
            return band
    return "5000+"


def seniority(title: str | None) -> str | None:
    if not title:
        return None
    for level, pattern in _SENIORITY:
        if pattern.search(title):
            return level
    return "staff"


def derive(lead: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Derived fields for a lead snapshot, and one line per derivation saying why."""
    out: dict[str, Any] = {}
    trace: list[str] = []
    email = lead.get("email")
    if email:
        email_domain = email.rsplit("@", 1)[-1].lower()
        out["email_domain"] = email_domain
        out["is_free_mail"] = is_free_mail(email_domain)
        out["is_disposable_email"] = email_domain in _disposable()
        if out["is_free_mail"]:
            trace.append(f"{email_domain} is a free-mail provider")
        if out["is_disposable_email"]:
            trace.append(f"{email_domain} is a throwaway mail service")
    website = lead.get("website")
    domain = registered_domain(website) if website else None
    if domain:
        out["domain"] = domain
        trace.append(f"company domain {domain} from website")
    elif email and not out.get("is_free_mail"):
        domain = registered_domain(out["email_domain"])
        if domain:
            out["domain"] = domain
            trace.append(f"company domain {domain} from business email")
    band = company_size(lead.get("employees"))
    if band:
        out["company_size"] = band
    level = seniority(lead.get("title"))
    if level:
        out["seniority"] = level
        trace.append(f"seniority {level} from title")
    if not lead.get("country") and lead.get("phone"):
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(lead["phone"], None))
        except phonenumbers.NumberParseException:
            region = None
        if region and region != "ZZ":
            out["country"] = region
            trace.append(f"country {region} from phone number")
    return out, trace
