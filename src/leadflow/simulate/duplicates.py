"""A labelled dedupe set: the simulator's people, some of them submitted again, corrupted the way
real resubmissions are (typos, nicknames, swapped names, email and phone variants, legal
suffixes, missing fields).

Each record carries the id of the person it describes (``entity``), so any matcher can be scored
on it: two records are one person exactly when their entities are equal. Companies repeat (many
people work at one company), which gives the hard non-matches.
"""

from __future__ import annotations

import random
import re
from typing import Any

from leadflow.identity.nicknames import VARIANTS
from leadflow.identity.normalize import fold

_SUFFIXES = ("Inc.", "GmbH", "Ltd", "LLC", "AG", "S.A.", "B.V.", "Corp.")
_FREE = ("gmail.com", "yahoo.com", "outlook.com", "gmx.de", "hotmail.com")


def _typo(rng: random.Random, value: str) -> str:
    if len(value) < 4:
        return value
    i = rng.randrange(1, len(value) - 1)
    kind = rng.random()
    if kind < 0.33:
        return value[:i] + value[i + 1 :]  # deletion
    if kind < 0.66:
        return value[:i] + value[i + 1] + value[i] + value[i + 2 :]  # transposition
    return value[:i] + rng.choice("aeiourstnl") + value[i + 1 :]  # substitution


def _email_variant(rng: random.Random, email: str, first: str, last: str) -> str:
    local, _, domain = email.partition("@")
    kind = rng.random()
    if domain == "gmail.com" and kind < 0.4:
        if rng.random() < 0.5:
            return f"{local.replace('.', '')}+{rng.choice(['news', 'work', 'leads'])}@{domain}"
        return f"{'.'.join(local)}@{domain}" if len(local) < 12 else f"{local}+x@{domain}"
    if kind < 0.45:
        return email.upper() if rng.random() < 0.5 else f"{local.capitalize()}@{domain}"
    if kind < 0.75 and fold(f"{first}{last}"):  # the same person's other mailbox
        name = re.sub(r"[^a-z.]", "", fold(f"{first}.{last}").replace(" ", "."))
        return f"{name}@{rng.choice(_FREE)}" if domain not in _FREE else f"{name}@{domain.split('.')[0]}-mail.com"
    return f"{_typo(rng, local)}@{domain}"


def _phone_variant(rng: random.Random, phone: str, country: str | None) -> str:
    """The same number written another way: national format, or international with spaces."""
    import phonenumbers

    try:
        number = phonenumbers.parse(phone, country or "US")
    except phonenumbers.NumberParseException:
        return phone
    if rng.random() < 0.5 and country:
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))


def _company_variant(rng: random.Random, company: str) -> str:
    words = company.split()
    if len(words) > 1 and any(
        w.strip(".,").lower()
        in ("gmbh", "inc", "ltd", "llc", "ag", "sa", "bv", "corp", "sarl", "ltda", "se", "kg", "plc", "s.a.", "b.v.")
        for w in words[-1:]
    ):
        base = " ".join(words[:-1])
        return base if rng.random() < 0.5 else f"{base} {rng.choice(_SUFFIXES)}"
    return f"{company} {rng.choice(_SUFFIXES)}" if rng.random() < 0.6 else company.upper()


def corrupt(rng: random.Random, record: dict[str, Any], corruptions: int) -> tuple[dict[str, Any], list[str]]:
    """A resubmission of ``record`` with ``corruptions`` realistic changes; returns what changed."""
    out = dict(record)
    done: list[str] = []
    kinds = [
        "name_typo",
        "nickname",
        "swapped",
        "email_variant",
        "email_missing",
        "phone_variant",
        "phone_missing",
        "company_variant",
        "company_missing",
        "name_missing",
    ]
    rng.shuffle(kinds)
    for kind in kinds:
        if len(done) >= corruptions:
            break
        first, last = out.get("first_name"), out.get("last_name")
        if kind == "name_typo" and first and last:
            field = rng.choice(["first_name", "last_name"])
            out[field] = _typo(rng, out[field])
        elif kind == "nickname" and first and fold(first) in VARIANTS:
            nick = rng.choice(VARIANTS[fold(first)])
            out["first_name"] = nick.capitalize()
        elif kind == "swapped" and first and last:
            out["first_name"], out["last_name"] = last, first
        elif kind == "email_variant" and out.get("email"):
            out["email"] = _email_variant(rng, out["email"], first or "", last or "")
        elif kind == "email_missing" and out.get("email") and (out.get("phone") or (first and out.get("company"))):
            out.pop("email")
        elif kind == "phone_variant" and out.get("phone"):
            out["phone"] = _phone_variant(rng, out["phone"], out.get("country"))
        elif kind == "phone_missing" and out.get("phone"):
            out.pop("phone")
        elif kind == "company_variant" and out.get("company"):
            out["company"] = _company_variant(rng, out["company"])
        elif kind == "company_missing" and out.get("company") and out.get("email"):
            out.pop("company")
        elif kind == "name_missing" and first and out.get("email"):
            out.pop("first_name")
            out.pop("last_name", None)
        else:
            continue
        done.append(kind)
    return out, done


def labelled_set(
    people: list[dict[str, Any]], *, seed: int = 0, duplicate_share: float = 0.3, max_corruptions: int = 3
) -> list[dict[str, Any]]:
    """The people's submissions plus corrupted resubmissions, shuffled; each with ``entity``.

    People are the simulator's payloads (:func:`leadflow.simulate.engine.sample_leads`); two
    payloads with the same email are taken to be one person.
    """
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    entity_of: dict[str, int] = {}
    for person in people:
        key = (person.get("email") or "").lower()
        if key in entity_of:
            continue
        entity = entity_of[key] = len(entity_of)
        base = {
            k: person.get(k)
            for k in ("email", "first_name", "last_name", "phone", "company", "website", "country", "title")
            if person.get(k)
        }
        records.append({**base, "entity": entity, "corruptions": []})
        if rng.random() < duplicate_share:
            for _ in range(1 if rng.random() < 0.8 else 2):
                copy, done = corrupt(rng, base, rng.randint(1, max_corruptions))
                copy.pop("website", None) if rng.random() < 0.5 else None
                records.append({**copy, "entity": entity, "corruptions": done})
    rng.shuffle(records)
    return records
