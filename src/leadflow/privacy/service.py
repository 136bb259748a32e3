"""A person's rights over their data: export everything leadflow holds about a lead, and erase it.

Personal data lives in the personal columns of ``leads``, the ``personal`` column of
``lead_events``, the emails leadflow sent them (``notifications``) and replayable API responses
(``idempotency_keys``). Erasure blanks exactly those, keeps the lead's non-personal history (so
metrics still count it), stops every message to it, and is itself an event (without the data).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Text, cast, delete, insert, select, update

from leadflow import events as ev
from leadflow.db.tables import (
    idempotency_keys,
    lead_events,
    lead_external_ids,
    lead_match_keys,
    lead_merges,
    leads,
    notifications,
    nurture_enrolments,
    tasks,
    visitors,
    web_sessions,
)
from leadflow.errors import Conflict, NotFound
from leadflow.identity.service import survivor
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
        "external_ids": sorted(  # the ids of the person's records, merged ones included
            conn.execute(
                select(lead_external_ids.c.external_id).where(
                    lead_external_ids.c.lead_id.in_(_person(conn, lead_id)[1])
                )
            ).scalars()
        ),
        "nurture": rows(select(nurture_enrolments).where(nurture_enrolments.c.lead_id == lead_id)),
        "tasks": rows(select(tasks).where(tasks.c.lead_id == lead_id)),
        "exported_at": ws.clock.now(),
    }


def _person(conn: Connection, lead_id: int) -> tuple[int, list[int]]:
    """The live lead a lead id stands for (a merged lead lives on in its survivor) and every lead
    id that is the same person: the survivor and all leads merged into it, through chains."""
    found = survivor(conn, lead_id)
    if found is None:
        raise NotFound(f"no lead with id {lead_id}")
    root = int(found["id"])
    ids, frontier = [root], [root]
    while frontier:
        frontier = [
            i
            for i in conn.execute(select(leads.c.id).where(leads.c.merged_into_id.in_(frontier))).scalars()
            if i not in ids
        ]
        ids.extend(frontier)
    return root, ids


def _known_contacts(conn: Connection, ids: list[int]) -> set[str]:
    """Every email and phone the person was ever known by: on the leads, in the capture and merge
    events' personal data, in the merge snapshots (the replays to remove are found by these)."""
    found: set[str] = set()

    def take(data: Any) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                if key in ("email", "phone") and isinstance(value, str) and len(value) >= 5:
                    found.add(value)
                else:
                    take(value)

    for row in conn.execute(select(leads.c.email, leads.c.phone).where(leads.c.id.in_(ids))):
        take(dict(row._mapping))
    for personal in conn.execute(
        select(lead_events.c.personal).where(lead_events.c.lead_id.in_(ids), lead_events.c.personal.is_not(None))
    ).scalars():
        take(personal)
    for before in conn.execute(
        select(lead_merges.c.survivor_before, lead_merges.c.merged_before).where(
            lead_merges.c.survivor_id.in_(ids) | lead_merges.c.merged_id.in_(ids)
        )
    ):
        take(before.survivor_before)
        take(before.merged_before)
    return found


def erase(ws: Workspace, conn: Connection, lead_id: int, *, actor: str, reason: str) -> dict[str, Any]:
    """Blank the person's personal data everywhere, stop all contact, record that it happened.

    A lead merged into another is the same person as its survivor, which holds what the merge
    took from it: erasing either erases the survivor and every lead merged into it.
    """
    root, ids = _person(conn, lead_id)
    lead = _lead(conn, root, lock=True)
    if lead["erased_at"] is not None:
        raise Conflict(f"lead {root} was already erased on {lead['erased_at']:%Y-%m-%d}")
    now = ws.clock.now()
    contacts = _known_contacts(conn, ids)
    browsers = _browsers(conn, ids)
    conn.execute(  # the survivor and the records merged into it: one person
        update(leads)
        .where(leads.c.id.in_(ids))
        .values(
            **dict.fromkeys(PERSONAL_FIELDS),
            erased_at=now,
            updated_at=now,
            consent_email=False,
            consent_phone=False,
            consent_sms=False,
            do_not_contact=True,
            sla_next_at=None,
            visitor_id=None,
        )
    )
    conn.execute(update(lead_events).where(lead_events.c.lead_id.in_(ids)).values(personal=None, visitor_id=None))
    conn.execute(
        update(notifications)
        .where(notifications.c.lead_id.in_(ids), notifications.c.status.in_(("pending", "sending")))
        .values(status="cancelled", last_error="the lead was erased")
    )
    # what was written to the person (nurture) or about them (owners' notices, SLA reminders)
    notices = list(conn.execute(select(notifications.c.id).where(notifications.c.lead_id.in_(ids))).scalars())
    conn.execute(
        update(notifications)
        .where(notifications.c.lead_id.in_(ids), notifications.c.reason == "nurture")
        .values(recipient="erased")
    )
    conn.execute(
        update(notifications)
        .where(notifications.c.lead_id.in_(ids))
        .values(subject="erased", body="", html=None, headers=None)
    )
    conn.execute(
        update(nurture_enrolments)
        .where(nurture_enrolments.c.lead_id.in_(ids), nurture_enrolments.c.status == "active")
        .values(status="exited", next_at=None, ended_at=now, end_reason="lead_erased")
    )
    _forget_visitors(conn, browsers)
    # identity: the person's blocking keys (hashes of its email, phone and name) and the personal
    # fields of the merge snapshots it appears in (unmerge then restores the blanks)
    conn.execute(delete(lead_match_keys).where(lead_match_keys.c.lead_id.in_(ids)))
    # the ids other systems know the person by point nowhere now (a later import of one is a new
    # record, not the erased person's)
    conn.execute(delete(lead_external_ids).where(lead_external_ids.c.lead_id.in_(ids)))
    for merge in conn.execute(
        select(lead_merges.c.id, lead_merges.c.survivor_before, lead_merges.c.merged_before).where(
            lead_merges.c.survivor_id.in_(ids) | lead_merges.c.merged_id.in_(ids)
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
    for value in sorted(contacts):
        replays += conn.execute(
            delete(idempotency_keys).where(cast(idempotency_keys.c.response, Text).contains(value, autoescape=True))
        ).rowcount
    ev.append(
        conn,
        [
            ev.event_row(
                type=ev.LEAD_ERASED,
                lead_id=root,
                occurred_at=now,
                recorded_at=now,
                actor=actor,
                config_version=ws.version,
                data={"reason": reason, "fields": list(PERSONAL_FIELDS), "leads": ids},
            )
        ],
    )
    if ws.path is not None:  # copies of the notices in the outbox (no SMTP server configured)
        for notice in notices:
            (ws.path / "outbox" / f"notification-{notice}.eml").unlink(missing_ok=True)
    return {
        "lead_id": root,
        "leads": ids,
        "erased_at": now,
        "fields": list(PERSONAL_FIELDS),
        "replays_removed": replays,
    }


def _browsers(conn: Connection, ids: list[int]) -> set[str]:
    """The visitor ids (browser cookies) the person was seen with."""
    found = set(conn.execute(select(visitors.c.id).where(visitors.c.lead_id.in_(ids))).scalars())
    found.update(conn.execute(select(leads.c.visitor_id).where(leads.c.id.in_(ids))).scalars())
    found.update(
        conn.execute(select(lead_events.c.visitor_id).where(lead_events.c.lead_id.in_(ids)).distinct()).scalars()
    )
    found.discard(None)  # type: ignore[arg-type]
    return found


def _forget_visitors(conn: Connection, browsers: set[str]) -> None:
    """The person's browser ids go: their sessions stay for the web metrics, under a fresh id no
    browser holds, and a page view from the old id is a stranger's."""
    for visitor in conn.execute(select(visitors).where(visitors.c.id.in_(sorted(browsers)))).all():
        stranger = f"erased-{secrets.token_hex(12)}"
        conn.execute(
            insert(visitors).values(
                id=stranger,
                lead_id=visitor.lead_id,
                first_seen_at=visitor.first_seen_at,
                last_seen_at=visitor.last_seen_at,
            )
        )
        conn.execute(update(web_sessions).where(web_sessions.c.visitor_id == visitor.id).values(visitor_id=stranger))
        conn.execute(delete(visitors).where(visitors.c.id == visitor.id))
