"""Find the existing lead a submission belongs to.

Matching here is exact on the normalised email key, through its index, for many submissions in
one query. Merged and erased leads are never matched.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import lead_events, leads, visitors, web_sessions

# At most one live lead per email key (a unique partial index says so), so no ORDER BY/LIMIT:
# that tempts PostgreSQL's generic plan into walking the primary key instead of the index.
_BY_EMAIL_KEYS = select(leads).where(
    leads.c.email_key.in_(bindparam("keys", expanding=True)), leads.c.merged_into_id.is_(None)
)
_BY_EMAIL_KEY = Prepared(select(leads).where(leads.c.email_key == bindparam("key"), leads.c.merged_into_id.is_(None)))


def find_by_email_keys(conn: Connection, keys: Collection[str]) -> dict[str, dict[str, Any]]:
    """The live (not merged) lead for each email key; erased leads have no key left to match."""
    if not keys:
        return {}
    if len(keys) == 1:
        (key,) = keys
        rows = _BY_EMAIL_KEY.execute(conn, {"key": key})
        return {key: rows[0]} if rows else {}
    found: dict[str, dict[str, Any]] = {}
    for row in conn.execute(_BY_EMAIL_KEYS, {"keys": list(keys)}):
        found.setdefault(row.email_key, dict(row._mapping))
    return found


_HISTORY_COLUMNS = (
    lead_events.c.visitor_id,
    lead_events.c.type,
    lead_events.c.data,
    lead_events.c.occurred_at,
    lead_events.c.id,
)
_HISTORY_OF_ONE = Prepared(
    select(*_HISTORY_COLUMNS).where(lead_events.c.visitor_id == bindparam("visitor"), lead_events.c.lead_id.is_(None))
)


def anonymous_history(conn: Connection, visitor_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    """Events recorded for visitors before anyone knew who they were, oldest first."""
    if not visitor_ids:
        return {}
    if len(visitor_ids) == 1:
        (visitor,) = visitor_ids
        rows = _HISTORY_OF_ONE.execute(conn, {"visitor": visitor})
    else:
        query = select(*_HISTORY_COLUMNS).where(
            lead_events.c.visitor_id.in_(list(visitor_ids)),
            lead_events.c.visitor_id.is_not(None),
            lead_events.c.lead_id.is_(None),
        )
        rows = [dict(row._mapping) for row in conn.execute(query)]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["occurred_at"], r["id"])):
        out.setdefault(row["visitor_id"], []).append(
            {"type": row["type"], "occurred_at": row["occurred_at"], **(row["data"] or {})}
        )
    return out


_LINK_VISITOR = Prepared(
    update(visitors)
    .where(visitors.c.id == bindparam("visitor"), visitors.c.lead_id.is_(None))
    .values(lead_id=bindparam("lead"))
)
_LINK_SESSIONS = Prepared(
    update(web_sessions)
    .where(web_sessions.c.visitor_id == bindparam("visitor"), web_sessions.c.lead_id.is_(None))
    .values(lead_id=bindparam("lead"))
)
_LINK_EVENTS = Prepared(
    update(lead_events)
    .where(lead_events.c.visitor_id == bindparam("visitor"), lead_events.c.lead_id.is_(None))
    .values(lead_id=bindparam("lead"))
)


def link_visitors(conn: Connection, links: Sequence[tuple[str, int]]) -> None:
    """Join anonymous visitors' history (visitor, sessions, events) to the leads they turned out to be."""
    rows = [{"visitor": visitor, "lead": lead} for visitor, lead in links]
    for statement in (_LINK_VISITOR, _LINK_SESSIONS, _LINK_EVENTS):
        statement.executemany(conn, rows)
