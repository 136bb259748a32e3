"""A person's rights over their data: export everything leadflow holds about a lead, and erase it.

Personal data lives in the personal columns of ``leads``, the ``personal`` column of
``lead_events``, the emails leadflow sent them (``notifications``) and replayable API responses
(``idempotency_keys``); and in what was derived from it: the ``custom.*`` fields not declared
``personal: false``, URLs with query values, subjects and bodies rendered for the person, browser
ids, merge snapshots (see :mod:`leadflow.privacy.scrub`). Erasure blanks all of it, keeps the
lead's non-personal history (so metrics still count it), stops every message to it, puts their
email and phone on the suppression list as salted digests, and is itself an event (without the
data).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Text, bindparam, cast, delete, insert, or_, select, update

from leadflow import events as ev
from leadflow.config.privacy import non_personal_custom
from leadflow.db.tables import (
    idempotency_keys,
    lead_events,
    lead_external_ids,
    lead_match_keys,
    lead_merges,
    leads,
    match_pairs,
    notifications,
    nurture_enrolments,
    opportunities,
    revenue,
    review_items,
    tasks,
    visitors,
    web_sessions,
)
from leadflow.errors import Conflict, NotFound
from leadflow.identity.service import survivor
from leadflow.leads.fields import PERSONAL_FIELDS
from leadflow.privacy import suppression
from leadflow.privacy.scrub import Scrubber

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


def _known_contacts(rows: list[dict[str, Any]], personal: list[Any], snapshots: list[Any]) -> tuple[set[str], set[str]]:
    """Every email and phone the person was ever known by: on the leads, in the capture and merge
    events' personal data, in the merge snapshots (the replays to remove and the digests to keep
    are found by these)."""
    emails: set[str] = set()
    phones: set[str] = set()

    def take(data: Any) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                if key in ("email", "email_key") and isinstance(value, str) and len(value) >= 5:
                    emails.add(value)
                elif key == "phone" and isinstance(value, str) and len(value) >= 5:
                    phones.add(value)
                else:
                    take(value)

    for item in (*rows, *personal, *snapshots):
        take(item)
    return emails, phones


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
    rows = [dict(r._mapping) for r in conn.execute(select(leads).where(leads.c.id.in_(ids)))]
    browsers = _browsers(conn, ids)
    events = conn.execute(
        select(lead_events.c.id, lead_events.c.data, lead_events.c.personal, lead_events.c.visitor_id).where(
            or_(lead_events.c.lead_id.in_(ids), lead_events.c.visitor_id.in_(sorted(browsers)))
        )
    ).all()
    merges = conn.execute(
        select(
            lead_merges.c.id,
            lead_merges.c.survivor_before,
            lead_merges.c.merged_before,
            lead_merges.c.reason,
            lead_merges.c.moved,
        ).where(lead_merges.c.survivor_id.in_(ids) | lead_merges.c.merged_id.in_(ids))
    ).all()
    snapshots = [s for m in merges for s in (m.survivor_before, m.merged_before) if s]
    personal = [e.personal for e in events if e.personal]
    external = conn.execute(select(lead_external_ids.c.external_id).where(lead_external_ids.c.lead_id.in_(ids)))
    keep_custom = non_personal_custom(ws.config.fields)
    scrub = Scrubber.of(
        [*rows, *snapshots],
        [*personal, list(external.scalars())],
        browsers=browsers,
        keep_custom=keep_custom,
    )
    emails, phones = _known_contacts(rows, personal, snapshots)
    erased_custom = sorted({k for r in (*rows, *snapshots) for k in (r.get("custom") or {}) if k not in keep_custom})

    for row in rows:  # the survivor and the records merged into it: one person
        clean = scrub.lead(row)
        conn.execute(
            update(leads)
            .where(leads.c.id == row["id"])
            .values(
                **dict.fromkeys(PERSONAL_FIELDS),
                custom=clean["custom"],
                landing_page=clean["landing_page"],
                referrer=clean["referrer"],
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
    # their history keeps its facts: what was rendered for them, their URLs' queries, their
    # custom fields and browser ids go (also from their web history before they were known)
    changed = [
        {"_id": e.id, "data": data}
        for e in events
        if (data := scrub.data(e.data)) != e.data or e.personal is not None or e.visitor_id is not None
    ]
    if changed:
        conn.execute(
            update(lead_events)
            .where(lead_events.c.id == bindparam("_id"))
            .values(data=bindparam("data"), personal=None, visitor_id=None),
            changed,
        )
    conn.execute(
        update(notifications)
        .where(notifications.c.lead_id.in_(ids), notifications.c.status.in_(("pending", "sending")))
        .values(status="cancelled", last_error="the lead was erased")
    )
    # what was written to the person (nurture) or about them (owners' notices, SLA reminders)
    notices = conn.execute(
        select(notifications.c.id, notifications.c.last_error).where(notifications.c.lead_id.in_(ids))
    ).all()
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
    _scrub_texts(conn, notifications, "last_error", notices, scrub)
    conn.execute(
        update(nurture_enrolments)
        .where(nurture_enrolments.c.lead_id.in_(ids), nurture_enrolments.c.status == "active")
        .values(status="exited", next_at=None, ended_at=now, end_reason="lead_erased")
    )
    # text people typed about them (a task, a review decision) may repeat their name or address
    _scrub_texts(
        conn,
        tasks,
        "title",
        conn.execute(select(tasks.c.id, tasks.c.title).where(tasks.c.lead_id.in_(ids))).all(),
        scrub,
    )
    # deals and revenue keep their amounts and dates (the business's figures), not the person: a
    # deal named after them is renamed, their personal custom columns go
    for deal in conn.execute(
        select(opportunities.c.id, opportunities.c.name).where(opportunities.c.lead_id.in_(ids))
    ).all():
        if scrub.text(deal.name) != deal.name:  # named after them: a part of the name may be an address too
            conn.execute(update(opportunities).where(opportunities.c.id == deal.id).values(name=f"deal {deal.id}"))
    for table in (opportunities, revenue):
        for row in conn.execute(select(table.c.id, table.c.custom).where(table.c.lead_id.in_(ids))).all():
            if row.custom:
                conn.execute(update(table).where(table.c.id == row.id).values(custom=scrub.custom(row.custom)))
    for table in (review_items, match_pairs):
        found = conn.execute(
            select(table.c.id, table.c.decision_reason).where(table.c.lead_id.in_(ids) | table.c.other_lead_id.in_(ids))
        ).all()
        _scrub_texts(conn, table, "decision_reason", found, scrub)
    strangers = _forget_visitors(conn, browsers, ids, scrub)
    # identity: the person's blocking keys (hashes of its email, phone and name) and the personal
    # fields of the merge snapshots it appears in (unmerge then restores the blanks)
    conn.execute(delete(lead_match_keys).where(lead_match_keys.c.lead_id.in_(ids)))
    # the ids other systems know the person by point nowhere now (a later import of one is a new
    # record, not the erased person's)
    conn.execute(delete(lead_external_ids).where(lead_external_ids.c.lead_id.in_(ids)))
    for merge in merges:
        conn.execute(
            update(lead_merges)
            .where(lead_merges.c.id == merge.id)
            .values(
                survivor_before=scrub.lead(merge.survivor_before or {}),
                merged_before=scrub.lead(merge.merged_before or {}),
                reason=scrub.text(merge.reason) if merge.reason else merge.reason,
                moved={  # the browsers it moved, under the ids they have now (unmerge moves them back)
                    **(merge.moved or {}),
                    "visitors": [strangers.get(v, v) for v in (merge.moved or {}).get("visitors", [])],
                },
            )
        )
    replays = 0
    for value in sorted(emails | phones | browsers):
        replays += conn.execute(
            delete(idempotency_keys).where(cast(idempotency_keys.c.response, Text).contains(value, autoescape=True))
        ).rowcount
    # a later capture with their email or phone is recognised by these digests alone
    suppressed = suppression.suppress(ws, conn, emails, phones)
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
                data={
                    "reason": reason,
                    "fields": list(PERSONAL_FIELDS),
                    "custom": erased_custom,
                    "leads": ids,
                    "suppressed": suppressed,
                },
            )
        ],
    )
    if ws.path is not None:  # copies of the notices in the outbox (no SMTP server configured)
        for notice in notices:
            (ws.path / "outbox" / f"notification-{notice.id}.eml").unlink(missing_ok=True)
    return {
        "lead_id": root,
        "leads": ids,
        "erased_at": now,
        "fields": list(PERSONAL_FIELDS),
        "custom_fields": erased_custom,
        "suppressed": suppressed,
        "replays_removed": replays,
    }


def _scrub_texts(conn: Connection, table: Any, column: str, found: Any, scrub: Scrubber) -> None:
    """Rewrite the texts of ``column`` (rows of id and text) that hold the person's values."""
    changed = [
        {"_id": row.id, "_text": clean}
        for row in found
        if isinstance(text := row[1], str) and (clean := scrub.text(text)) != text
    ]
    if changed:
        conn.execute(update(table).where(table.c.id == bindparam("_id")).values({column: bindparam("_text")}), changed)


def _browsers(conn: Connection, ids: list[int]) -> set[str]:
    """The visitor ids (browser cookies) the person was seen with."""
    found = set(conn.execute(select(visitors.c.id).where(visitors.c.lead_id.in_(ids))).scalars())
    found.update(conn.execute(select(leads.c.visitor_id).where(leads.c.id.in_(ids))).scalars())
    found.update(
        conn.execute(select(lead_events.c.visitor_id).where(lead_events.c.lead_id.in_(ids)).distinct()).scalars()
    )
    found.discard(None)  # type: ignore[arg-type]
    return found


def _forget_visitors(conn: Connection, browsers: set[str], ids: list[int], scrub: Scrubber) -> dict[str, str]:
    """The person's browser ids go: their sessions stay for the web metrics, under a fresh id no
    browser holds, without the query of their referrer, and a page view from the old id is a
    stranger's. Returns the fresh id of each old one."""
    strangers: dict[str, str] = {}
    sessions = conn.execute(
        select(web_sessions.c.id, web_sessions.c.landing_page, web_sessions.c.referrer).where(
            or_(web_sessions.c.lead_id.in_(ids), web_sessions.c.visitor_id.in_(sorted(browsers)))
        )
    ).all()
    changed = [
        {
            "_id": row.id,
            "_page": scrub.text(row.landing_page),
            "_referrer": scrub.text(row.referrer) if row.referrer else None,
        }
        for row in sessions
        if scrub.text(row.landing_page) != row.landing_page
        or (row.referrer and scrub.text(row.referrer) != row.referrer)
    ]
    if changed:
        conn.execute(
            update(web_sessions)
            .where(web_sessions.c.id == bindparam("_id"))
            .values(landing_page=bindparam("_page"), referrer=bindparam("_referrer")),
            changed,
        )
    for visitor in conn.execute(select(visitors).where(visitors.c.id.in_(sorted(browsers)))).all():
        stranger = strangers[visitor.id] = f"erased-{secrets.token_hex(12)}"
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
    return strangers
