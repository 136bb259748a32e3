"""Lead-to-account matching: a lead belongs to the company of its (business) domain.

An account is found by the company domain (from the website, or a business email); when none
exists one is created from what the lead says about its company. A free-mail address says nothing
about a company: such a lead joins an existing account only by its company name (normalised, or
a close spelling), and no account is created from a name alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rapidfuzz.distance import JaroWinkler
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import accounts
from leadflow.identity.normalize import company_key

_BY_DOMAIN = Prepared(
    select(accounts.c.id, accounts.c.domain, accounts.c.owner_id, accounts.c.pqa).where(
        accounts.c.domain == bindparam("domain")
    )
)
_BY_DOMAINS = Prepared(
    select(accounts.c.id, accounts.c.domain, accounts.c.owner_id, accounts.c.pqa).where(
        accounts.c.domain.in_(bindparam("domains", expanding=True))
    )
)
_ACCOUNT_COLUMNS = ("name", "domain", "industry", "employees", "country", "created_at", "updated_at", "name_key")
_CREATE = {
    "sqlite": Prepared(
        sqlite.insert(accounts).on_conflict_do_nothing(index_elements=["domain"]).returning(accounts.c.id),
        _ACCOUNT_COLUMNS,
    ),
    "postgresql": Prepared(
        postgresql.insert(accounts).on_conflict_do_nothing(index_elements=["domain"]).returning(accounts.c.id),
        _ACCOUNT_COLUMNS,
    ),
}


def _find(conn: Connection, domains: set[str]) -> dict[str, dict[str, Any]]:
    if len(domains) == 1:
        return {row["domain"]: row for row in _BY_DOMAIN.execute(conn, {"domain": next(iter(domains))})}
    return {row["domain"]: row for row in _BY_DOMAINS.execute(conn, {"domains": sorted(domains)})}


def link_accounts(
    conn: Connection, leads: Sequence[dict[str, Any]], now: datetime, *, company_names: bool = True
) -> dict[int, str | None]:
    """Set ``account_id`` (and ``pqa``) on leads that have a company domain and no account yet:
    one lookup for all their domains, one insert for the accounts that do not exist yet.
    With ``company_names``, a lead without a company domain (free mail, no website) that names
    its company joins the existing account of that name (legal suffixes, case and punctuation
    aside, or a close spelling); no account is made from a name alone.
    Returns the owners of the accounts it linked (account id → owner id), for routing."""
    wanting = [
        lead for lead in leads if lead.get("account_id") is None and lead.get("domain") and not lead.get("is_free_mail")
    ]
    owners: dict[int, str | None] = {}
    if company_names:
        by_name = [
            lead
            for lead in leads
            if lead.get("account_id") is None
            and lead.get("company")
            and not (lead.get("domain") and not lead.get("is_free_mail"))
        ]
        if by_name:
            owners.update(_link_by_name(conn, by_name))
    if not wanting:
        return owners
    domains = {lead["domain"] for lead in wanting}
    found = _find(conn, domains)
    new: dict[str, dict[str, Any]] = {}
    for lead in wanting:
        domain = lead["domain"]
        if domain not in found and domain not in new:
            new[domain] = {
                "name": lead.get("company") or domain,
                "domain": domain,
                "industry": lead.get("industry"),
                "employees": lead.get("employees"),
                "country": lead.get("country"),
                "created_at": now,
                "updated_at": now,
                "name_key": company_key(lead.get("company")) or domain,
            }
    if new:
        create = _CREATE[conn.dialect.name]
        if len(new) == 1:
            created = create.execute(conn, next(iter(new.values())))
            if created:
                found[next(iter(new))] = {"id": created[0]["id"], "pqa": False, "owner_id": None}
        else:
            create.executemany(conn, list(new.values()))
        missing = set(new) - set(found)
        if missing:  # created just now (or by a concurrent capture): read their ids
            found.update(_find(conn, missing))
    for lead in wanting:
        account = found[lead["domain"]]
        lead["account_id"] = account["id"]
        lead["pqa"] = bool(account["pqa"])
    owners.update({account["id"]: account.get("owner_id") for account in found.values()})
    return owners


_BY_NAME_KEYS = Prepared(
    select(accounts.c.id, accounts.c.name_key, accounts.c.owner_id, accounts.c.pqa).where(
        accounts.c.name_key.in_(bindparam("keys", expanding=True))
    )
)
_BY_NAME_PREFIX = Prepared(
    select(accounts.c.id, accounts.c.name_key, accounts.c.owner_id, accounts.c.pqa)
    .where(accounts.c.name_key >= bindparam("low"), accounts.c.name_key < bindparam("high"))
    .order_by(accounts.c.name_key)
    .limit(50)
)


def _link_by_name(conn: Connection, wanting: Sequence[dict[str, Any]]) -> dict[int, str | None]:
    keys = {id(lead): company_key(lead["company"]) for lead in wanting}
    names = {k for k in keys.values() if k}
    if not names:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for row in _BY_NAME_KEYS.execute(conn, {"keys": sorted(names)}):
        if row["name_key"] not in found or row["id"] < found[row["name_key"]]["id"]:
            found[row["name_key"]] = row
    for name in names - set(found):  # a close spelling of an account sharing the first letters
        stem = name[:3]
        if len(stem) < 3:
            continue
        best = None
        for row in _BY_NAME_PREFIX.execute(conn, {"low": stem, "high": stem + "\uffff"}):
            score = JaroWinkler.similarity(name, row["name_key"])
            if score >= 0.93 and (best is None or score > best[0]):
                best = (score, row)
        if best is not None:
            found[name] = best[1]
    owners: dict[int, str | None] = {}
    for lead in wanting:
        account = found.get(keys[id(lead)] or "")
        if account is not None:
            lead["account_id"] = account["id"]
            lead["pqa"] = bool(account["pqa"])
            owners[account["id"]] = account.get("owner_id")
    return owners
