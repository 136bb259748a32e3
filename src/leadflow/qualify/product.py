"""Product-qualified leads and accounts: enough product usage within a rolling window.

The PQL rule looks at one person's usage events; the PQA rule at all people of an account (with a
minimum number of distinct people). Reaching it is an event (``pql_reached`` / ``pqa_reached``)
and a flag on the lead (``pql``/``pqa``), which scoring, stage and routing rules can use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from leadflow import events as ev
from leadflow.config.workspace import ProductQualification
from leadflow.db.tables import accounts, lead_events, leads
from leadflow.workspace import Workspace


def _usage(conn: Connection, spec: ProductQualification, where: Any, at: datetime) -> tuple[int, int, int]:
    """(events, distinct values of the distinct field, distinct people) in the window ending at ``at``."""
    distinct = (
        func.count(func.distinct(lead_events.c.data[spec.distinct_field].as_string()))
        if spec.distinct_field
        else func.count()
    )
    query = (
        select(func.count(), distinct, func.count(func.distinct(lead_events.c.lead_id)))
        .select_from(lead_events.join(leads, leads.c.id == lead_events.c.lead_id))
        .where(
            where,
            lead_events.c.type == spec.event,
            lead_events.c.occurred_at > at - spec.within,
            lead_events.c.occurred_at <= at,
        )
    )
    n, d, people = conn.execute(query).one()
    return int(n), int(d), int(people)


def _meets(spec: ProductQualification, usage: tuple[int, int, int], *, account: bool) -> bool:
    n, d, people = usage
    return n >= spec.min_events and d >= spec.min_distinct and (not account or people >= spec.min_users)


def check(ws: Workspace, conn: Connection, lead: dict[str, Any], at: datetime, actor: str) -> list[dict[str, Any]]:
    """After a usage event of ``lead`` is stored: mark PQL/PQA reached if the rules now hold."""
    q = ws.config.qualification
    rows: list[dict[str, Any]] = []
    if q.pql is not None and not lead["pql"] and q.pql.event:
        usage = _usage(conn, q.pql, leads.c.id == lead["id"], at)
        if _meets(q.pql, usage, account=False):
            lead["pql"] = True
            rows.append(_event(ws, lead["id"], ev.PQL_REACHED, at, {"events": usage[0], "distinct": usage[1]}))
    if q.pqa is not None and lead.get("account_id") is not None and not lead["pqa"]:
        usage = _usage(conn, q.pqa, leads.c.account_id == lead["account_id"], at)
        if _meets(q.pqa, usage, account=True):
            lead["pqa"] = True
            conn.execute(update(accounts).where(accounts.c.id == lead["account_id"]).values(pqa=True, updated_at=at))
            conn.execute(update(leads).where(leads.c.account_id == lead["account_id"]).values(pqa=True))
            rows.append(
                _event(
                    ws,
                    lead["id"],
                    ev.PQA_REACHED,
                    at,
                    {"account_id": lead["account_id"], "events": usage[0], "people": usage[2]},
                )
            )
    return rows


def _event(ws: Workspace, lead_id: int, type_: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return ev.event_row(
        type=type_,
        lead_id=lead_id,
        occurred_at=at,
        recorded_at=ws.clock.now(),
        actor="system",
        config_version=ws.version,
        data=data,
    )
