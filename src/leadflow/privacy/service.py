"""A person's rights over their data: export everything leadflow holds about a lead, and erase it.

Personal data lives in the personal columns of ``leads``, the ``personal`` column of
``lead_events``, the emails leadflow sent them (``notifications``) and replayable API responses
(``idempotency_keys``). Erasure blanks exactly those, keeps the lead's non-personal history (so
metrics still count it), stops every message to it, and is itself an event (without the data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Text, cast, delete, select, update

from leadflow import events as ev
from leadflow.db.tables import (
    idempotency_keys,
    lead_events,
    lead_match_keys,
    lead_merges,
    leads,
    notifications,
    nurture_enrolments,
    tasks,
)
from leadflow.errors import Conflict, NotFound
from leadflow.leads.fields import PERSONAL_FIELDS

if TYPE_CHECKING:
    from leadflow.workspace import Workspace


def _lead(conn: Connection, lead_id: int, *, lock: bool = False) -> dict[str, Any]:
    query = select(leads).where(leads.c.id == lead_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no lead with id {lead_id}")
    return dict(row._mapping)


def export(ws: Workspace, conn: Connection, lead_id: int) -> dict[str, Any]:
    """Everything about one lead, as JSON-ready data (a subject access request)."""
    lead = _lead(conn, lead_id)

    def rows(query: Any) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in conn.execute(query)]

    return {
        "lead": lead,
        "events": rows(
            select(lead_events)
            .where(lead_events.c.lead_id == lead_id)
            .order_by(lead_events.c.occurred_at, lead_events.c.id)
        ),
        "emails": rows(
            select(
                notifications.c.id,
                notifications.c.recipient,
                notifications.c.subject,
                notifications.c.body,
                notifications.c.reason,
                notifications.c.status,
                notifications.c.created_at,
                notifications.c.sent_at,
            ).where(notifications.c.lead_id == lead_id, notifications.c.reason == "nurture")
        ),
        "nurture": rows(select(nurture_enrolments).where(nurture_enrolments.c.lead_id == lead_id)),
        "tasks": rows(select(tasks).where(tasks.c.lead_id == lead_id)),
        "exported_at": ws.clock.now(),
    }


def erase(ws: Workspace, conn: Connection, lead_id: int, *, actor: str, reason: str) -> dict[str, Any]:
    """Blank the lead's personal data everywhere, stop all contact, record that it happened."""
    lead = _lead(conn, lead_id, lock=True)
    if lead["erased_at"] is not None:
        raise Conflict(f"lead {lead_id} was already erased on {lead['erased_at']:%Y-%m-%d}")
    now = ws.clock.now()
    conn.execute(
        update(leads)
        .where(leads.c.id == lead_id)
        .values(
            **dict.fromkeys(PERSONAL_FIELDS),
            erased_at=now,
            updated_at=now,
            consent_email=False,
            consent_phone=False,
            consent_sms=False,
            do_not_contact=True,
            sla_next_at=None,
        )
    )
    # the records merged into this one are the same person
    conn.execute(
        update(leads)
        .where(leads.c.merged_into_id == lead_id)
        .values(
            **dict.fromkeys(PERSONAL_FIELDS), erased_at=now, updated_at=now, consent_email=False, do_not_contact=True
        )
    )
    conn.execute(update(lead_events).where(lead_events.c.lead_id == lead_id).values(personal=None))
    conn.execute(
        update(notifications)
        .where(notifications.c.lead_id == lead_id, notifications.c.status.in_(("pending", "sending")))
        .values(status="cancelled", last_error="the lead was erased")
    )
    conn.execute(
        update(notifications)
        .where(notifications.c.lead_id == lead_id, notifications.c.reason == "nurture")
        .values(recipient="erased", subject="erased", body="", html=None, headers=None)
    )
    conn.execute(
        update(nurture_enrolments)
        .where(nurture_enrolments.c.lead_id == lead_id, nurture_enrolments.c.status == "active")
        .values(status="exited", next_at=None, ended_at=now, end_reason="lead_erased")
    )
    # identity: the lead's blocking keys (hashes of its email, phone and name) and the personal
    # fields of the merge snapshots it appears in (unmerge then restores the blanks)
    conn.execute(delete(lead_match_keys).where(lead_match_keys.c.lead_id == lead_id))
    for merge in conn.execute(
        select(lead_merges.c.id, lead_merges.c.survivor_before, lead_merges.c.merged_before).where(
            (lead_merges.c.survivor_id == lead_id) | (lead_merges.c.merged_id == lead_id)
        )
    ).all():
        conn.execute(
            update(lead_merges)
            .where(lead_merges.c.id == merge.id)
            .values(
                survivor_before={**(merge.survivor_before or {}), **dict.fromkeys(PERSONAL_FIELDS)},
                merged_before={**(merge.merged_before or {}), **dict.fromkeys(PERSONAL_FIELDS)},
            )
        )
    replays = 0
    for value in (lead["email"], lead["phone"]):
        if value:
            replays += conn.execute(
                delete(idempotency_keys).where(cast(idempotency_keys.c.response, Text).contains(value))
            ).rowcount
    ev.append(
        conn,
        [
            ev.event_row(
                type=ev.LEAD_ERASED,
                lead_id=lead_id,
                occurred_at=now,
                recorded_at=now,
                actor=actor,
                config_version=ws.version,
                data={"reason": reason, "fields": list(PERSONAL_FIELDS)},
            )
        ],
    )
    return {"lead_id": lead_id, "erased_at": now, "fields": list(PERSONAL_FIELDS), "replays_removed": replays}
