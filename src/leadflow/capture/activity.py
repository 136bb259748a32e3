"""Recording activity that arrives from outside: find whose it is, then hand it to web tracking
(page views, which keep anonymous history by visitor) or to the pipeline's activity path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from leadflow import events as ev
from leadflow.capture.schemas import EventIn
from leadflow.db.locks import lock_names
from leadflow.db.tables import lead_events, leads, visitors
from leadflow.errors import Conflict, InvalidInput, NotFound, Problem
from leadflow.identity.service import find_by_email_keys, find_by_external_ids, survivor
from leadflow.pipeline import Activity, record_activities
from leadflow.tracking.service import PageView, track_page_views
from leadflow.workspace import Workspace

UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


@dataclass
class Recorded:
    lead_id: int | None
    visitor_id: str | None
    anonymous: bool
    score: int | None = None
    stage: str | None = None


def record_event(ws: Workspace, conn: Connection, event: EventIn, *, actor: str) -> Recorded:
    now = ws.clock.now()
    at = event.occurred_at or now
    if event.external_id is not None:
        lock_names(conn, [f"activity:{event.external_id}"])  # the check and the write, one at a time
    if (
        event.external_id is not None
        and conn.execute(select(lead_events.c.id).where(lead_events.c.external_id == event.external_id)).first()
    ):
        raise Conflict(
            f"activity {event.external_id!r} was recorded already",
            [Problem("external_id", "an activity with this id was recorded already")],
        )
    lead_id = _resolve_lead(conn, event)
    utm = {k: v for k in UTM if (v := getattr(event, k))}
    if event.type == "page_view":
        visitor = event.visitor_id or (f"lead-{lead_id}" if lead_id else None)
        assert visitor is not None and event.url is not None
        if lead_id is not None:
            _known_visitor(conn, visitor, lead_id, at)
        [known] = track_page_views(
            ws,
            conn,
            [
                PageView(
                    visitor_id=visitor,
                    url=event.url,
                    occurred_at=at,
                    referrer=event.referrer,
                    utm=utm,
                    actor=ev.HISTORY if actor == ev.HISTORY else "web",
                    external_id=event.external_id,
                )
            ],
        )
        if known is None:
            return Recorded(lead_id=None, visitor_id=visitor, anonymous=True)
        row = conn.execute(select(leads.c.score, leads.c.stage).where(leads.c.id == known)).one()
        return Recorded(lead_id=known, visitor_id=visitor, anonymous=False, score=row.score, stage=row.stage)
    if lead_id is None:
        raise InvalidInput(
            "no lead for this event",
            [Problem("visitor_id", "this visitor is not a known lead yet; only page_view is kept anonymously")],
        )
    data: dict[str, Any] = dict(event.data or {})
    for name in ("url", "referrer", "direction"):
        if (value := getattr(event, name)) is not None:
            data[name] = value
    if utm:
        data["utm"] = utm
    if event.referred_lead_id is not None:
        referred = _require_lead(conn, event.referred_lead_id, "referred_lead_id")
        if referred == lead_id:
            raise InvalidInput(
                "a lead cannot refer itself",
                [Problem("referred_lead_id", f"is lead {lead_id} itself (or merged into it)")],
            )
        data["referred_lead_id"] = referred
    [result] = record_activities(
        ws,
        conn,
        [
            Activity(
                type=event.type,
                lead_id=lead_id,
                occurred_at=at,
                actor=actor,
                data=data,
                personal={"text": event.text} if event.text else None,
                visitor_id=event.visitor_id,
                external_id=event.external_id,
            )
        ],
    )
    return Recorded(
        lead_id=lead_id, visitor_id=event.visitor_id, anonymous=False, score=result.score, stage=result.stage
    )


def _resolve_lead(conn: Connection, event: EventIn) -> int | None:
    if event.lead_external_id is not None:
        lead = find_by_external_ids(conn, [event.lead_external_id]).get(event.lead_external_id)
        if lead is None:
            raise InvalidInput(
                "unknown lead", [Problem("lead_external_id", "no lead has this external id; import the lead first")]
            )
        named = survivor(conn, event.lead_id) if event.lead_id is not None else None
        if named is not None and named["id"] != lead["id"]:
            raise InvalidInput(
                "lead_id and lead_external_id name different leads",
                [Problem("lead_external_id", f"belongs to lead {lead['id']}, not to lead {event.lead_id}")],
            )
        return _require_lead(conn, int(lead["id"]), "lead_external_id")
    if event.lead_id is not None:
        lead_id = _require_lead(conn, event.lead_id, "lead_id")
        if event.email:  # both given: they must name the same person
            key = event.email.strip().lower()
            other = find_by_email_keys(conn, {key}).get(key)
            if other is not None and other["id"] != lead_id:
                raise InvalidInput(
                    "lead_id and email name different leads",
                    [Problem("email", f"belongs to lead {other['id']}, not to lead {lead_id}")],
                )
        return lead_id
    if event.email:
        key = event.email.strip().lower()
        found = find_by_email_keys(conn, {key})
        if key not in found:
            raise InvalidInput("unknown lead", [Problem("email", "no lead has this email; capture the lead first")])
        return int(found[key]["id"])
    row = conn.execute(select(visitors.c.lead_id).where(visitors.c.id == event.visitor_id)).first()
    return int(row.lead_id) if row is not None and row.lead_id is not None else None


def _require_lead(conn: Connection, lead_id: int, field: str) -> int:
    """The live lead an id names: a lead merged into another is its survivor, so activity that
    other systems report under an old id still counts for the person."""
    lead = survivor(conn, lead_id)
    if lead is None:
        raise NotFound(f"no lead with id {lead_id}", [Problem(field, "no such lead")])
    if lead["erased_at"] is not None:
        raise Conflict(f"lead {lead_id} was erased", [Problem(field, "this lead was erased; nothing more is recorded")])
    return int(lead["id"])


def _known_visitor(conn: Connection, visitor: str, lead_id: int, at: datetime) -> None:
    """A page view reported for a lead: make sure its visitor is known as that lead."""
    from sqlalchemy import insert, update

    row = conn.execute(select(visitors.c.lead_id).where(visitors.c.id == visitor)).first()
    if row is None:
        conn.execute(insert(visitors).values(id=visitor, lead_id=lead_id, first_seen_at=at, last_seen_at=at))
    elif row.lead_id is None:
        conn.execute(update(visitors).where(visitors.c.id == visitor).values(lead_id=lead_id))
    elif row.lead_id != lead_id:
        raise InvalidInput(
            "visitor belongs to another lead", [Problem("visitor_id", f"visitor {visitor} is lead {row.lead_id}")]
        )
