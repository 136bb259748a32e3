"""Lead-to-account matching: a lead belongs to the company of its (business) domain.

An account is found by the company domain (from the website, or a business email); when none
exists one is created from what the lead says about its company. Free-mail addresses say nothing
about a company and link no account.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import accounts

_BY_DOMAIN = Prepared(
    select(accounts.c.id, accounts.c.domain, accounts.c.owner_id, accounts.c.pqa).where(
        accounts.c.domain == bindparam("domain")
    )
)
_BY_DOMAINS = select(accounts.c.id, accounts.c.domain, accounts.c.owner_id, accounts.c.pqa).where(
    accounts.c.domain.in_(bindparam("domains", expanding=True))
)
_ACCOUNT_COLUMNS = ("name", "domain", "industry", "employees", "country", "created_at", "updated_at")
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
    return {row.domain: dict(row._mapping) for row in conn.execute(_BY_DOMAINS, {"domains": sorted(domains)})}


def link_accounts(conn: Connection, leads: Sequence[dict[str, Any]], now: datetime) -> dict[int, str | None]:
    """Set ``account_id`` (and ``pqa``) on leads that have a company domain and no account yet:
    one lookup for all their domains, one insert for the accounts that do not exist yet.
    Returns the owners of the accounts it linked (account id → owner id), for routing."""
    wanting = [
        lead for lead in leads if lead.get("account_id") is None and lead.get("domain") and not lead.get("is_free_mail")
    ]
    if not wanting:
        return {}
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
    return {account["id"]: account.get("owner_id") for account in found.values()}
