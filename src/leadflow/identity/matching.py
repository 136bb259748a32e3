"""Probabilistic matching: blocking keys, comparisons and Fellegi-Sunter weights.

Pure functions over plain lead dicts, compiled once per configuration version into a
:class:`MatchModel`. Capture (one lead against its candidates), the batch dedupe over the whole
database and the CSV dedupe all use the same model, so a pair gets the same probability and the
same evidence wherever it is compared.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from leadflow.config.identity import LEVELS, Comparison, MatchSettings
from leadflow.enrich.service import is_free_mail
from leadflow.identity.normalize import (
    canonical_first,
    company_key,
    email_key,
    email_local,
    name_part,
    phone_key,
)

_jw = JaroWinkler.similarity
_dl = DamerauLevenshtein.distance


def close(x: str, y: str, threshold: float) -> bool:
    """Alike enough to be one value mistyped: Jaro-Winkler at the threshold, or one edit (a
    letter dropped, swapped or replaced; two in long values). Jaro-Winkler alone misses a typo
    in the middle of a long value."""
    if _jw(x, y) >= threshold:
        return True
    shortest = min(len(x), len(y))
    if shortest < 4:
        return False
    return _dl(x, y, score_cutoff=2 if shortest >= 8 else 1) <= (2 if shortest >= 8 else 1)


@lru_cache(maxsize=1 << 16)
def key_hash(key: str) -> int:
    """A blocking key as a signed 64-bit integer: small to index, and no personal data in clear."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


# -- preparing a lead ---------------------------------------------------------------------------


def _value(lead: Mapping[str, Any], field: str) -> Any:
    if field.startswith("custom."):
        return (lead.get("custom") or {}).get(field[7:])
    return lead.get(field)


def _prep_email(lead: Mapping[str, Any], rules: bool) -> tuple[str, str | None] | None:
    key = email_key(lead.get("email") or lead.get("email_key"), provider_rules=rules)
    return (key, email_local(key)) if key else None


def _prep_name(lead: Mapping[str, Any]) -> tuple[str, str, str] | None:
    first, last = name_part(lead.get("first_name")), name_part(lead.get("last_name"))
    if not first or not last:
        return None
    return first, last, canonical_first(first) or first


def _prep_domain(lead: Mapping[str, Any]) -> str | None:
    domain = lead.get("domain")
    if domain:
        return str(domain).lower()
    email = lead.get("email")
    if email and "@" in email:
        host = email.rsplit("@", 1)[1].lower()
        if not is_free_mail(host):
            return host
    return None


def _prep_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    from leadflow.identity.normalize import fold

    return fold(str(value)) or None


def _prep_number(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _prep_date(value: Any) -> int | None:
    if isinstance(value, datetime):
        return value.date().toordinal()
    if isinstance(value, date):
        return value.toordinal()
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10]).toordinal()
        except ValueError:
            return None
    return None


# -- comparing two prepared values ---------------------------------------------------------------


def _cmp_email(a: tuple[str, str | None], b: tuple[str, str | None], c: Comparison) -> int:
    """exact: one mailbox; fuzzy: a typo at the same domain; local: the same name-like local part
    at another domain (the person's other mailbox, or a namesake); else."""
    if a[0] == b[0]:
        return 0
    la, lb = a[1], b[1]
    if not (la and lb and len(la) >= 5 and len(lb) >= 5):
        return 3
    if a[0].rpartition("@")[2] == b[0].rpartition("@")[2]:
        return 1 if close(la, lb, c.threshold) else 3
    return 2 if la == lb else 3


def _cmp_phone(a: str, b: str, c: Comparison) -> int:
    return 0 if a[-9:] == b[-9:] else 1


def _cmp_name(a: tuple[str, str, str], b: tuple[str, str, str], c: Comparison) -> int:
    t = c.threshold
    if a[0] == b[0] and a[1] == b[1]:
        return 0  # exact
    last = a[1] == b[1] or close(a[1], b[1], t)
    if a[2] == b[2] and last:
        return 1  # nickname (or the same canonical first name with a typo in the last)
    if (a[0] == b[1] and a[1] == b[0]) or (close(a[0], b[1], t) and close(a[1], b[0], t)):
        return 2  # swapped first and last
    if last and (close(a[0], b[0], t) or close(a[2], b[2], t)):
        return 3  # fuzzy
    if last and a[0][0] == b[0][0]:
        return 4  # same last name and initial
    return 5


def _cmp_similar(a: str, b: str, c: Comparison) -> int:
    if a == b:
        return 0
    return 1 if close(a, b, c.threshold) else 2


def _cmp_exact(a: Any, b: Any, c: Comparison) -> int:
    return 0 if a == b else 1


def _cmp_number(a: float, b: float, c: Comparison) -> int:
    if a == b:
        return 0
    return 1 if abs(a - b) <= c.tolerance else 2


_COMPARE: dict[str, Callable[[Any, Any, Comparison], int]] = {
    "email": _cmp_email,
    "phone": _cmp_phone,
    "name": _cmp_name,
    "company": _cmp_similar,
    "domain": _cmp_exact,
    "exact": _cmp_exact,
    "similarity": _cmp_similar,
    "numeric": _cmp_number,
    "date": _cmp_number,
}


@dataclass(frozen=True)
class Match:
    """How likely two leads are one person, and why."""

    probability: float
    weight: float
    evidence: dict[str, dict[str, Any]]

    def agreed(self) -> list[str]:
        return [f for f, e in self.evidence.items() if e["weight"] > 0]


Prepared = tuple[Any, ...]


class MatchModel:
    """A compiled ``identity.match`` section: prepare, block, compare, decide."""

    def __init__(self, settings: MatchSettings) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self.comparisons = list(settings.comparisons)
        self.prior_weight = math.log2(settings.prior / (1 - settings.prior))
        self.upper = settings.auto_merge_above
        self.lower = settings.review_above
        self._levels = [LEVELS[c.kind] for c in self.comparisons]
        self._weights = [
            [math.log2(m / u) for m, u in (c.weights()[level] for level in LEVELS[c.kind])] for c in self.comparisons
        ]
        self._compare = [_COMPARE[c.kind] for c in self.comparisons]
        rules = settings.email_provider_rules
        preps: list[Callable[[Mapping[str, Any]], Any]] = []
        for c in self.comparisons:
            if c.kind == "email":
                preps.append(lambda lead, rules=rules: _prep_email(lead, rules))
            elif c.kind == "phone":
                preps.append(lambda lead: phone_key(lead.get("phone")))
            elif c.kind == "name":
                preps.append(_prep_name)
            elif c.kind == "company":
                preps.append(lambda lead: company_key(lead.get("company")))
            elif c.kind == "domain":
                preps.append(_prep_domain)
            elif c.kind in ("numeric",):
                preps.append(lambda lead, f=c.field: _prep_number(_value(lead, f)))
            elif c.kind == "date":
                preps.append(lambda lead, f=c.field: _prep_date(_value(lead, f)))
            else:
                preps.append(lambda lead, f=c.field: _prep_text(_value(lead, f)))
        self._preps = preps
        self._index = {c.kind: i for i, c in enumerate(self.comparisons)}
        self._email_rules = rules

    # -- preparing and blocking --------------------------------------------------------------

    def prepare(self, lead: Mapping[str, Any]) -> Prepared:
        return tuple(prep(lead) for prep in self._preps)

    def blocking_keys(self, lead: Mapping[str, Any]) -> list[str]:
        """The keys a lead is filed under; two leads become candidates when they share one.

        Each key is selective on its own (an email, a phone, a name pair, a name at a company),
        so a lead meets a handful of candidates, not the database.
        """
        keys = []
        email = email_key(lead.get("email") or lead.get("email_key"), provider_rules=self._email_rules)
        if email:
            keys.append(f"e:{email}")
            local = email_local(email)
            if local and len(local) >= 6:
                keys.append(f"l:{local}")
            mailbox, _, host = email.partition("@")
            if len(mailbox) >= 4 and not is_free_mail(host):  # a typo later in the address
                keys.append(f"d:{host}|{mailbox[:4]}")
        phone = phone_key(lead.get("phone"))
        if phone:
            keys.append(f"p:{phone[-9:]}")
        name = _prep_name(lead)
        company = company_key(lead.get("company"))
        if name:
            first, last, canon = name
            keys.append("n:" + "|".join(sorted((canon, last))))
            if company:  # a name at a company: survives a typo in the other name, and swapped names
                keys.extend({f"c:{company}|{part[:3]}" for part in (first, canon, last)})
        if company and email:
            local = email.split("@", 1)[0]
            if len(local) >= 4:
                keys.append(f"c:{company}|@{local[:4]}")
        return keys

    def key_hashes(self, lead: Mapping[str, Any]) -> list[int]:
        return list(
            self._hashes(
                lead.get("email") or lead.get("email_key"),
                lead.get("phone"),
                lead.get("first_name"),
                lead.get("last_name"),
                lead.get("company"),
            )
        )

    @lru_cache(maxsize=4096)  # noqa: B019 - one model per configuration version, kept for the process
    def _hashes(self, email: Any, phone: Any, first: Any, last: Any, company: Any) -> tuple[int, ...]:
        keys = self.blocking_keys(
            {"email": email, "phone": phone, "first_name": first, "last_name": last, "company": company}
        )
        return tuple(dict.fromkeys(key_hash(k) for k in keys))

    @staticmethod
    def usable(lead: Mapping[str, Any]) -> bool:
        """Enough to identify a person: an email, a phone, or a name with a company."""
        if lead.get("email") or lead.get("email_key") or lead.get("phone"):
            return True
        return bool((lead.get("first_name") or lead.get("last_name")) and lead.get("company"))

    # -- comparing ---------------------------------------------------------------------------

    def levels(self, a: Prepared, b: Prepared) -> list[int | None]:
        out: list[int | None] = []
        for i, compare in enumerate(self._compare):
            x, y = a[i], b[i]
            out.append(None if x is None or y is None else compare(x, y, self.comparisons[i]))
        return out

    def weight(self, a: Prepared, b: Prepared) -> float:
        total = self.prior_weight
        weights = self._weights
        for i, compare in enumerate(self._compare):
            x, y = a[i], b[i]
            if x is not None and y is not None:
                total += weights[i][compare(x, y, self.comparisons[i])]
        return total

    def compare(self, a: Prepared, b: Prepared) -> Match:
        total = self.prior_weight
        evidence: dict[str, dict[str, Any]] = {}
        for i, level in enumerate(self.levels(a, b)):
            if level is None:
                continue
            w = self._weights[i][level]
            total += w
            evidence[self.comparisons[i].field] = {"level": self._levels[i][level], "weight": round(w, 2)}
        return Match(probability=probability(total), weight=round(total, 3), evidence=evidence)

    def decide(self, probability: float, usable: bool = True) -> str:
        """merge | review | new. A lead with nothing to identify it is never merged unseen."""
        if probability >= self.upper and usable:
            return "merge"
        if probability >= self.lower:
            return "review"
        return "new"


def probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    if weight < -60:
        return 0.0
    return 1.0 / (1.0 + 2.0 ** (-weight))
