"""Match-ready forms of what identifies a person: pure functions, shared by capture and batch.

Emails follow their provider's rules (Gmail ignores dots and ``+tags``), names fold accents, case
and nicknames, company names drop legal suffixes. Two values that normalise alike name the same
thing; how alike two different values are is the comparators' business (:mod:`.matching`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Providers whose mailboxes ignore dots in the local part and/or anything after a '+'.
_DOTLESS = {"gmail.com", "googlemail.com"}
_PLUS_TAGS = {
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "icloud.com",
    "me.com",
    "protonmail.com",
    "proton.me",
    "fastmail.com",
    "yahoo.com",  # yahoo uses '-' for disposable addresses; '+' is harmless to strip
    "gmx.de",
    "web.de",
}
_DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}

LEGAL_SUFFIXES = frozenset(
    [
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "llc",
        "llp",
        "lp",
        "ltd",
        "limited",
        "plc",
        "pllc",
        "pc",
        "gmbh",
        "mbh",
        "ag",
        "kg",
        "ohg",
        "ug",
        "eg",
        "ev",
        "gbr",
        "se",
        "kgaa",
        "sa",
        "sas",
        "sarl",
        "sasu",
        "sca",
        "snc",
        "spa",
        "srl",
        "sl",
        "slu",
        "sau",
        "bv",
        "nv",
        "vof",
        "cv",
        "ab",
        "asa",
        "as",
        "oy",
        "oyj",
        "aps",
        "a/s",
        "pty",
        "pvt",
        "pte",
        "bhd",
        "sdn",
        "kk",
        "ltda",
        "eireli",
        "me",
        "epp",
        "group",
        "holding",
        "holdings",
        "international",
        "intl",
    ]
)
_NON_WORD = re.compile(r"[^a-z0-9]+")
_CO_KG = re.compile(r"\b(co\.?\s*kg|& co\.?)\b", re.IGNORECASE)


def fold(value: str) -> str:
    """Lower case, accents off, anything but letters and digits to single spaces."""
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return _NON_WORD.sub(" ", value.lower()).strip()


def email_key(email: str | None, *, provider_rules: bool = True) -> str | None:
    """The mailbox an address reaches: lower case; with provider rules, Gmail dots and +tags off."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.strip().lower().rpartition("@")
    if provider_rules:
        domain = _DOMAIN_ALIASES.get(domain, domain)
        if domain in _PLUS_TAGS:
            local = local.split("+", 1)[0]
        if domain in _DOTLESS:
            local = local.replace(".", "")
    if not local or not domain:
        return None
    return f"{local}@{domain}"


def email_local(key: str | None) -> str | None:
    """The local part with separators and digits off (``john.smith42`` → ``johnsmith``)."""
    if not key:
        return None
    local = re.sub(r"[^a-z]", "", key.split("@", 1)[0])
    return local or None


def company_key(name: str | None) -> str | None:
    """A company name without case, punctuation and legal suffixes: 'ACME, Inc.' → 'acme'."""
    if not name:
        return None
    words = fold(_CO_KG.sub(" ", name).replace(".", "")).split()  # "B.V." is "BV"
    if len(words) > 1 and words[0] == "the":
        words.pop(0)
    while len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words) or None


def name_part(value: str | None) -> str | None:
    if not value:
        return None
    return fold(value).replace(" ", "") or None


@lru_cache(maxsize=65536)
def canonical_first(value: str | None) -> str | None:
    """A first name's canonical form: nicknames to the formal name ('bob' → 'robert')."""
    if not value:
        return None
    from leadflow.identity.nicknames import NICKNAMES

    return NICKNAMES.get(value, value)


def phone_key(phone: str | None) -> str | None:
    """E.164 digits (the pipeline already stores phones as E.164)."""
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    return digits if len(digits) >= 7 else None
