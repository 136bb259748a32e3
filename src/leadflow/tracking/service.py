"""Visitors, sessions and page views.

A session ends after 30 minutes without a page view. Anonymous page views are kept by visitor
id; when the visitor becomes a lead, :func:`link_visitor` joins their history to it so it counts
(for attribution, engagement and the web metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from leadflow import events as ev
from leadflow.capture.normalize import slug
from leadflow.capture.rules import referrer_channel, split_url
from leadflow.db.tables import visitors, web_sessions
from leadflow.pipeline import Activity, record_activities
from leadflow.workspace import Workspace

SESSION_TIMEOUT = timedelta(minutes=30)


@dataclass
class PageView:
    visitor_id: str
    url: str
    occurred_at: datetime
    referrer: str | None = None
    utm: dict[str, str] = field(default_factory=dict)
    actor: str = "web"  # "history" for imported page views
    external_id: str | None = None  # its id in the system it came from


def channel(url: str, referrer: str | None, utm: dict[str, str]) -> tuple[str, str | None, str | None]:
    """(source, medium, campaign) of a session from its UTM tags, else its referrer."""
    if utm.get("utm_source"):
        return (
            slug(utm["utm_source"]),
            slug(utm["utm_medium"]) if utm.get("utm_medium") else None,
            (slug(utm["utm_campaign"]) if utm.get("utm_campaign") else None),
        )
    implied = referrer_channel(referrer, url)
    return (implied[0], implied[1], None) if implied else ("direct", "none", None)


def track_page_views(ws: Workspace, conn: Connection, views: Sequence[PageView]) -> list[int | None]:
    """Record page views: visitors, sessions and one ``page_view`` event each.

    Returns, per view, the lead the visitor is known as (None while anonymous). A view by a
    known visitor is an activity on their lead and goes through the pipeline's activity path,
    so engagement scoring sees it.
    """
    if not views:
        return []
    now = ws.clock.now()
    ids = sorted({v.visitor_id for v in views})
    known = {row.id: dict(row._mapping) for row in conn.execute(select(visitors).where(visitors.c.id.in_(ids)))}
    latest_ids = (
        select(func.max(web_sessions.c.id))
        .where(web_sessions.c.visitor_id.in_(ids))
        .group_by(web_sessions.c.visitor_id)
    )
    sessions = {
        row.visitor_id: dict(row._mapping)
        for row in conn.execute(select(web_sessions).where(web_sessions.c.id.in_(latest_ids)))
    }

    new_visitors: dict[str, dict[str, Any]] = {}
    new_sessions: list[dict[str, Any]] = []
    touched_sessions: dict[int, dict[str, Any]] = {}
    rows = []
    activities: list[Activity] = []
    leads_for: list[int | None] = []
    for view in sorted(views, key=lambda v: v.occurred_at):
        visitor = known.get(view.visitor_id) or new_visitors.get(view.visitor_id)
        if visitor is None:
            visitor = {
                "id": view.visitor_id,
                "lead_id": None,
                "first_seen_at": view.occurred_at,
                "last_seen_at": view.occurred_at,
            }
            new_visitors[view.visitor_id] = visitor
        else:
            visitor["last_seen_at"] = max(visitor["last_seen_at"], view.occurred_at)
        session = sessions.get(view.visitor_id)
        if session is None or view.occurred_at - session["last_seen_at"] > SESSION_TIMEOUT:
            source, medium, campaign = channel(view.url, view.referrer, view.utm)
            session = {
                "id": None,
                "visitor_id": view.visitor_id,
                "lead_id": visitor["lead_id"],
                "started_at": view.occurred_at,
                "last_seen_at": view.occurred_at,
                "landing_page": _page(view.url)[:500],
                "referrer": view.referrer,
                "source": source,
                "medium": medium,
                "campaign": campaign,
                "page_views": 0,
            }
            new_sessions.append(session)
            sessions[view.visitor_id] = session
        session["last_seen_at"] = max(session["last_seen_at"], view.occurred_at)
        session["page_views"] += 1
        if session["id"] is not None:
            touched_sessions[session["id"]] = session
        leads_for.append(visitor["lead_id"])
        data = {
            "url": view.url,
            "page": _page(view.url),
            "referrer": view.referrer,
            **({"utm": view.utm} if view.utm else {}),
        }
        if visitor["lead_id"] is not None:
            activities.append(
                Activity(
                    type="page_view",
                    lead_id=visitor["lead_id"],
                    occurred_at=view.occurred_at,
                    actor=view.actor,
                    data=data,
                    visitor_id=view.visitor_id,
                    external_id=view.external_id,
                )
            )
            continue
        rows.append(
            ev.event_row(
                type="page_view",
                lead_id=None,
                visitor_id=view.visitor_id,
                occurred_at=view.occurred_at,
                recorded_at=now,
                actor=view.actor,
                config_version=ws.version,
                data=data,
                external_id=view.external_id,
            )
        )

    if new_visitors:
        conn.execute(insert(visitors), list(new_visitors.values()))
    existing = [v for k, v in known.items() if k not in new_visitors]
    if existing:
        conn.execute(
            update(visitors).where(visitors.c.id == bindparam("_id")).values(last_seen_at=bindparam("seen")),
            [{"_id": v["id"], "seen": v["last_seen_at"]} for v in existing],
        )
    if new_sessions:
        conn.execute(insert(web_sessions), [{k: v for k, v in s.items() if k != "id"} for s in new_sessions])
    if touched_sessions:
        conn.execute(
            update(web_sessions)
            .where(web_sessions.c.id == bindparam("_id"))
            .values(last_seen_at=bindparam("seen"), page_views=bindparam("views")),
            [{"_id": s["id"], "seen": s["last_seen_at"], "views": s["page_views"]} for s in touched_sessions.values()],
        )
    ev.append(conn, rows)
    record_activities(ws, conn, activities)
    return leads_for


def _page(url: str) -> str:
    parts = split_url(url)
    return (parts.path if parts else None) or "/"
