"""Access control inside metric queries: a viewer's metrics are computed over the leads they may read.

A viewer is described by one WHERE clause over ``leads`` (``leadflow.dashboard.access.readable_leads``
for a signed-in user; ``None`` for a workspace-wide reader such as an API key, a marketer or an admin).
Every statement a metric executes is rewritten before it reaches the database: each reference to a
table of lead data (``leads``, ``lead_events``, ``opportunities``, ``revenue``, ``lead_milestones``,
``visitors``, ``web_sessions``, and every alias of them) is replaced by the same rows filtered to the
readable leads. The filter is therefore in the SQL of every metric, whichever way it was written,
rather than applied to the figures afterwards. Spend is not lead data and is not filtered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, or_, select
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ClauseElement, ColumnClause
from sqlalchemy.sql.selectable import Alias, TableClause

from leadflow.db.tables import lead_events, lead_milestones, leads, opportunities, revenue, web_sessions
from leadflow.db.tables import visitors as visitor_rows


def _filters(readable: Any) -> dict[Any, Any]:
    """For each table of lead data, the condition (over that table) keeping what the viewer may read."""
    ids = select(leads.c.id).where(readable)
    opp_ids = select(opportunities.c.id).where(opportunities.c.lead_id.in_(ids))
    seen = select(visitor_rows.c.id).where(visitor_rows.c.lead_id.in_(ids))
    return {
        leads: lambda t: readable if t is leads else t.c.id.in_(ids),
        lead_events: lambda t: t.c.lead_id.in_(ids),
        lead_milestones: lambda t: t.c.lead_id.in_(ids),
        opportunities: lambda t: t.c.lead_id.in_(ids),
        revenue: lambda t: or_(t.c.lead_id.in_(ids), t.c.opportunity_id.in_(opp_ids)),
        visitor_rows: lambda t: t.c.lead_id.in_(ids),
        web_sessions: lambda t: t.c.visitor_id.in_(seen),
    }


def _base(element: Any) -> Any:
    return element.element if isinstance(element, Alias) else element


def restrict(stmt: Any, readable: Any) -> Any:
    """``stmt`` with every table of lead data replaced by its rows readable under ``readable``."""
    if readable is None or not isinstance(stmt, ClauseElement):
        return stmt
    filters = _filters(readable)
    made: dict[int, Any] = {}

    def restricted(source: Any) -> Any:
        key = id(source)
        if key not in made:
            base = _base(source)
            name = source.name
            # Filter the base table in a subquery under the original name, so the SQL reads the same.
            made[key] = select(base).where(filters[base](base)).subquery(name)
        return made[key]

    def replace(element: Any) -> Any:
        if isinstance(element, ColumnClause) and isinstance(element.table, (TableClause, Alias)):
            if _base(element.table) in filters:
                return restricted(element.table).c[element.key]
            return None
        if isinstance(element, (TableClause, Alias)) and _base(element) in filters:
            return restricted(element)
        return None

    return visitors.replacement_traverse(stmt, {}, replace)


class ScopedConnection:
    """A connection whose ``execute`` restricts every statement to the viewer's leads; everything
    else is the connection's own."""

    def __init__(self, conn: Connection, readable: Any) -> None:
        self._conn = conn
        self._readable = readable

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self._conn.execute(restrict(statement, self._readable), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def scoped(conn: Connection, readable: Any) -> Any:
    """``conn`` itself for a workspace-wide reader; a restricting connection otherwise."""
    return conn if readable is None else ScopedConnection(conn, readable)
