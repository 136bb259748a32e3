"""Notifications: queued with the change that causes them, sent by ``notify.send``.

A message is handed to the mail server at most once. A notification goes
``pending`` → ``sending`` (claimed by a worker, with a lease another worker may take over) →
``delivering`` (committed just before the message is handed over) → ``sent``; or back to
``pending`` when the server certainly did not take it, ``failed`` after the last attempt,
``cancelled`` when it must not go out any more, and ``in_doubt`` when a worker died (or the
connection broke) after handing it over: the server may have it, so it is never sent again.
The last check (the lead not erased, still consenting, its sequence not ended, its step not sent)
and the send happen in one transaction that holds the lead's row, so an erasure or unsubscribe
waits for a send in progress and nothing goes out after it returns. Each message carries a
Message-ID derived from what it is (a nurture step of a lead, or the notification), so a copy is
recognisable wherever it turns up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from leadflow.config.settings import get_settings
from leadflow.db.fastpath import Prepared
from leadflow.db.tables import notifications
from leadflow.leads.service import load_for_update
from leadflow.notify.mail import DeliveryInDoubt, Mailer, NotDelivered, SmtpSettings, new_message, sender_address

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

MAX_ATTEMPTS = 6
CLAIMABLE = ("pending", "sending")  # sending: claimed, never handed over; the lease may be taken over


_COLUMNS = ("kind", "recipient", "subject", "body", "lead_id", "reason", "status", "next_attempt_at", "created_at")
_INSERT = Prepared(insert(notifications), column_keys=_COLUMNS)


def email(
    *, to: str | None, subject: str, body: str, lead_id: int | None, reason: str, now: datetime
) -> dict[str, Any] | None:
    """A notification row for an email, or None when there is nobody to send it to."""
    if not to:
        return None
    return {
        "kind": "email",
        "recipient": to,
        "subject": subject[:300],
        "body": body,
        "lead_id": lead_id,
        "reason": reason,
        "status": "pending",
        "next_attempt_at": now,
        "created_at": now,
    }


def queue(conn: Connection, rows: Iterable[Mapping[str, Any] | None]) -> int:
    """Queue notifications in the caller's transaction (one statement); returns how many."""
    batch = [r for r in rows if r is not None]
    _INSERT.executemany(conn, batch)
    return len(batch)


def queue_email(
    conn: Connection, *, to: str | None, subject: str, body: str, lead_id: int | None, reason: str, now: datetime
) -> bool:
    """Queue one email in the caller's transaction; False when there is nobody to send it to."""
    return queue(conn, [email(to=to, subject=subject, body=body, lead_id=lead_id, reason=reason, now=now)]) == 1


def lead_lines(lead: Mapping[str, Any]) -> str:
    name = (
        " ".join(filter(None, (lead.get("first_name"), lead.get("last_name"))))
        or lead.get("email")
        or f"lead {lead['id']}"
    )
    lines = [
        f"{name}"
        + (f" — {lead['title']}" if lead.get("title") else "")
        + (f" at {lead['company']}" if lead.get("company") else ""),
        f"Score {lead.get('score')} (grade {lead.get('grade')}), stage {lead.get('stage')}, source {lead.get('source') or 'unknown'}",
    ]
    if lead.get("sla_due_at"):
        lines.append(f"Respond by {lead['sla_due_at'].isoformat(' ', 'minutes')[:16]} UTC")  # strftime: 9 µs
    return "\n".join(lines)


def lease() -> timedelta:
    """How long a worker's claim lasts (``LEADFLOW_NOTIFY_LEASE_SECONDS``, default 5 minutes)."""
    return timedelta(seconds=get_settings().notify_lease_seconds)


def message_id(notification: Mapping[str, Any], *, tag: str, domain: str) -> str:
    """The Message-ID of a notification: a nurture email is named by its lead, enrolment and
    step, a notice by its id, so any copy of the same message carries the same id. ``tag`` tells
    workspaces sending from one domain apart (staging and production)."""
    if notification.get("reason") == "nurture" and notification.get("enrolment_id") is not None:
        what = f"nurture.l{notification['lead_id']}.e{notification['enrolment_id']}.s{notification['step']}"
    else:
        what = f"notice.{notification['id']}"
    return f"<{what}.{tag}@{domain}>"


def _tag(ws: Workspace, conn: Connection) -> str:
    from leadflow.nurture import links

    return hashlib.sha256(links.signing_key(ws, conn, create=True)).hexdigest()[:10]


def compose(notification: Mapping[str, Any], *, sender: str, msg_id: str) -> EmailMessage:
    message = new_message()
    message["From"] = sender
    message["To"] = notification["recipient"]
    message["Subject"] = notification["subject"]
    message["Message-ID"] = msg_id
    message["X-Leadflow-Notification"] = str(notification["id"])
    for name, value in (notification["headers"] or {}).items():
        message[name] = value
    message.set_content(notification["body"])
    if notification["html"]:
        message.add_alternative(notification["html"], subtype="html")
    return message


def send_due(ws: Workspace, *, batch: int = 100) -> int:
    """``notify.send``: claim due notifications, then for each one: mark it ``delivering``,
    and in one transaction holding its lead check it may still go, hand it over, record the
    outcome. Returns how many were claimed."""
    now = ws.clock.now()
    claimed, tag = _claim(ws, now, batch)
    if not claimed:
        return 0
    outbox = ws.path / "outbox" if ws.path else None
    with Mailer(SmtpSettings.from_env(), outbox) as mailer:
        try:
            mailer.connect()
        except NotDelivered as exc:  # no server: all wait for a retry
            _release(ws, claimed, str(exc))
            return len(claimed)
        for position, (notification_id, attempts) in enumerate(claimed):
            if _deliver(ws, mailer, notification_id, attempts, tag) == "unreachable":
                _release(ws, claimed[position + 1 :], "the mail server went away")
                break
    return len(claimed)


def _claim(ws: Workspace, now: datetime, batch: int) -> tuple[list[tuple[int, int]], str]:
    """Due notifications as (id, attempts), claimed for this worker until the lease ends, and
    the workspace's Message-ID tag. A ``delivering`` one whose lease ended was handed over by a
    worker that died: ``in_doubt``."""
    skip_locked = {"skip_locked": True}
    with ws.transaction() as conn:
        stranded = list(
            conn.execute(
                select(notifications.c.id)
                .where(notifications.c.status == "delivering", notifications.c.next_attempt_at <= now)
                .with_for_update(**skip_locked)
            ).scalars()
        )
        if stranded:
            conn.execute(
                update(notifications)
                .where(notifications.c.id.in_(stranded), notifications.c.status == "delivering")
                .values(
                    status="in_doubt",
                    last_error="the worker stopped after handing it to the mail server; not sent again",
                )
            )
        due = conn.execute(
            select(notifications.c.id, notifications.c.attempts)
            .where(notifications.c.status.in_(CLAIMABLE), notifications.c.next_attempt_at <= now)
            .order_by(notifications.c.id)
            .limit(batch)
            .with_for_update(**skip_locked)
        ).all()
        if not due:
            return [], ""
        conn.execute(
            update(notifications)
            .where(notifications.c.id.in_([d.id for d in due]))
            .values(status="sending", attempts=notifications.c.attempts + 1, next_attempt_at=now + lease())
        )
        # here, not under a lead's lock: making the key may wait for another transaction
        tag = _tag(ws, conn)
    return [(d.id, d.attempts + 1) for d in due], tag


def _release(ws: Workspace, claimed: list[tuple[int, int]], error: str) -> None:
    """Give claimed notifications back for a later attempt (they were never handed over)."""
    now = ws.clock.now()
    with ws.transaction() as conn:
        for notification_id, attempts in claimed:
            conn.execute(
                update(notifications)
                .where(
                    notifications.c.id == notification_id,
                    notifications.c.status == "sending",
                    notifications.c.attempts == attempts,
                )
                .values(**_retry(attempts, error, now))
            )


def _retry(attempts: int, error: str, now: datetime) -> dict[str, Any]:
    if attempts >= MAX_ATTEMPTS:
        return {"status": "failed", "last_error": error[:300]}
    return {"status": "pending", "last_error": error[:300], "next_attempt_at": now + timedelta(minutes=2**attempts)}


def _deliver(ws: Workspace, mailer: Mailer, notification_id: int, attempts: int, tag: str) -> str:
    """Send one claimed notification; says what became of it."""
    with ws.transaction() as conn:  # committed before the message leaves: a crash from here on is in doubt
        handed = conn.execute(
            update(notifications)
            .where(
                notifications.c.id == notification_id,
                notifications.c.status == "sending",
                notifications.c.attempts == attempts,
            )
            .values(status="delivering", next_attempt_at=ws.clock.now() + lease())
        ).rowcount
    if handed != 1:
        return "taken"  # cancelled (erased), or the lease ran out and another worker has it
    with ws.transaction() as conn:
        lead_id = conn.execute(
            select(notifications.c.lead_id).where(notifications.c.id == notification_id)
        ).scalar_one()
        # The lead's row first (as erasure, unsubscribe and capture lock it): held until the
        # outcome is recorded, so they wait for this send and see it done.
        lead = load_for_update(conn, [lead_id]).get(lead_id) if lead_id is not None else None
        query = select(notifications).where(notifications.c.id == notification_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = dict(conn.execute(query).one()._mapping)
        if row["status"] != "delivering" or row["attempts"] != attempts:
            return "taken"
        now = ws.clock.now()
        refused = _refusal(conn, row, lead)
        if refused is not None:
            _set(conn, notification_id, status="cancelled", last_error=refused)
            return "cancelled"
        domain = sender_address().rpartition("@")[2] or "localhost"
        message = compose(row, sender=mailer.sender, msg_id=message_id(row, tag=tag, domain=domain))
        try:
            mailer.send(message, f"notification-{notification_id}")
        except NotDelivered as exc:
            _set(conn, notification_id, **_retry(attempts, str(exc), now))
            return "unreachable" if mailer.broken else "retry"
        except DeliveryInDoubt as exc:
            _set(conn, notification_id, status="in_doubt", last_error=f"not sent again: {exc}"[:300])
            return "in_doubt"
        _set(conn, notification_id, status="sent", sent_at=now, last_error=None)
        if row["reason"] == "nurture" and lead_id is not None:
            # the email_sent activity (engagement, the nurture report), in the transaction that
            # marks the send: it can never follow the lead's erasure
            from leadflow.pipeline import Activity, record_activities

            data = {"enrolment": row["enrolment_id"], "step": row["step"], "notification": notification_id}
            record_activities(
                ws,
                conn,
                [Activity("email_sent", lead_id, now, actor="nurture", data={**data, "subject": row["subject"]})],
            )
    return "sent"


def _refusal(conn: Connection, row: Mapping[str, Any], lead: Mapping[str, Any] | None) -> str | None:
    """Why this notification must not go out now, or None."""
    if row["lead_id"] is not None and (lead is None or lead["erased_at"] is not None):
        return "the lead was erased"
    if row["reason"] == "nurture":
        from leadflow.nurture.service import stop_reason

        return stop_reason(conn, row, lead)
    return None


def _set(conn: Connection, notification_id: int, **values: Any) -> None:
    conn.execute(update(notifications).where(notifications.c.id == notification_id).values(**values))
