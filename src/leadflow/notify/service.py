"""Notifications: queued with the change that causes them, sent by ``notify.send``."""

from __future__ import annotations

import smtplib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import notifications
from leadflow.notify.mail import Mailer, SmtpSettings

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

MAX_ATTEMPTS = 6
LEASE = timedelta(minutes=5)


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


def send_due(ws: Workspace, *, batch: int = 100) -> int:
    """``notify.send``: claim due notifications (a short transaction), send them with no
    transaction open, record each outcome."""
    now = ws.clock.now()
    with ws.transaction() as conn:
        due = conn.execute(
            select(notifications)
            .where(notifications.c.status.in_(("pending", "sending")), notifications.c.next_attempt_at <= now)
            .order_by(notifications.c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        if not due:
            return 0
        conn.execute(
            update(notifications)
            .where(notifications.c.id.in_([d.id for d in due]))
            .values(status="sending", attempts=notifications.c.attempts + 1, next_attempt_at=now + LEASE)
        )
        # Marketing email goes only to leads who may still get it (consent can change after queueing).
        nurture_leads = {d.lead_id for d in due if d.reason == "nurture" and d.lead_id is not None}
        if nurture_leads:
            from leadflow.nurture.service import is_live, may_email

            live = is_live(conn, sorted(nurture_leads))
            refused = [
                d.id for d in due if d.reason == "nurture" and (d.lead_id not in live or may_email(live[d.lead_id]))
            ]
            if refused:
                conn.execute(
                    update(notifications)
                    .where(notifications.c.id.in_(refused))
                    .values(status="cancelled", last_error="the lead may not be emailed any more")
                )
                due = [d for d in due if d.id not in set(refused)]
    outbox = ws.path / "outbox" if ws.path else None
    results: list[tuple[int, int, str | None]] = []
    try:
        with Mailer(SmtpSettings.from_env(), outbox) as mailer:
            for d in due:
                message = EmailMessage()
                message["From"] = mailer.sender
                message["To"] = d.recipient
                message["Subject"] = d.subject
                message["X-Leadflow-Notification"] = str(d.id)
                for name, value in (d.headers or {}).items():
                    message[name] = value
                message.set_content(d.body)
                if d.html:
                    message.add_alternative(d.html, subtype="html")
                try:
                    mailer.send(message, f"notification-{d.id}")
                    results.append((d.id, d.attempts + 1, None))
                except (smtplib.SMTPException, OSError) as exc:
                    results.append((d.id, d.attempts + 1, f"{type(exc).__name__}: {str(exc)[:200]}"))
    except (smtplib.SMTPException, OSError) as exc:  # could not even connect: all wait for a retry
        results = [(d.id, d.attempts + 1, f"{type(exc).__name__}: {str(exc)[:200]}") for d in due]
    with ws.transaction() as conn:
        for notification_id, attempts, error in results:
            if error is None:
                values: dict[str, Any] = {"status": "sent", "sent_at": now, "last_error": None}
            elif attempts >= MAX_ATTEMPTS:
                values = {"status": "failed", "last_error": error}
            else:
                values = {
                    "status": "pending",
                    "last_error": error,
                    "next_attempt_at": now + timedelta(minutes=2**attempts),
                }
            conn.execute(update(notifications).where(notifications.c.id == notification_id).values(**values))
        sent = {n for n, _, error in results if error is None}
        delivered = [d for d in due if d.id in sent and d.reason == "nurture" and d.lead_id is not None]
        if delivered:  # the email_sent activity: it counts towards engagement and the nurture report
            from leadflow.pipeline import Activity, record_activities

            record_activities(
                ws,
                conn,
                [
                    Activity(
                        "email_sent",
                        d.lead_id,
                        now,
                        actor="nurture",
                        data={"enrolment": d.enrolment_id, "step": d.step, "notification": d.id, "subject": d.subject},
                    )
                    for d in delivered
                ],
            )
    return len(due)
