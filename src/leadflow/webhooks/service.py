"""Outgoing webhooks, with the event log as the outbox.

The capture path writes nothing extra: the worker's ``webhooks.enqueue`` task walks
``lead_events`` past each webhook's cursor, turns the events it subscribes to into delivery rows
(advancing the cursor in the same transaction, so each event is queued once); ``webhooks.send``
sends the due ones. A delivery is claimed in a short transaction (``sending`` until a lease expires) and sent
outside any transaction, so a slow receiver never holds a database lock.

Every attempt is a row in ``webhook_attempts``, committed as ``sending`` before the request goes
out and closed with its HTTP status, duration and error after, so the log shows a request even
when the worker sending it is killed. Such a worker leaves its lease to expire; the next worker
to claim the delivery closes the open attempt as interrupted and sends again. Delivery is
therefore at least once: a receiver may see an event twice (the killed worker's request may have
arrived), always with the same ``Leadflow-Event-Id`` header (``evt_<id>``, also the payload's
``id``), which receivers keep to drop repeats. Failures are retried with exponential backoff,
then marked failed.

Signature (as Stripe does it): ``Leadflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>" with the webhook's secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, insert, select, update

from leadflow import events as ev
from leadflow.config.workspace import Webhook
from leadflow.db.tables import lead_events, leads, webhook_attempts, webhook_cursors, webhook_deliveries
from leadflow.workspace import Workspace

EVENT_TYPES = {
    ev.LEAD_CREATED: "lead.created",
    ev.LEAD_CAPTURED: "lead.updated",
    ev.LEAD_UPDATED: "lead.updated",
    ev.CONSENT_CHANGED: "lead.updated",
    ev.STAGE_CHANGED: "lead.stage_changed",
    ev.LEAD_ASSIGNED: "lead.assigned",
    ev.SLA_REMINDED: "lead.sla_reminded",
    ev.SLA_ESCALATED: "lead.sla_escalated",
    ev.HANDOFF_SENT: "lead.handoff",
    ev.HANDOFF_ACCEPTED: "lead.handoff",
    ev.HANDOFF_REJECTED: "lead.handoff",
}
MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)
TIMEOUT_S = 10.0
HEADER = "Leadflow-Signature"
EVENT_ID_HEADER = "Leadflow-Event-Id"
INTERRUPTED = "interrupted: the worker stopped before the receiver answered"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: recompute the signature and refuse stale timestamps (replays)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    if abs(now - int(parts["t"])) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, int(parts["t"])), header)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at 6 h, with up to 10% jitter."""
    base = min(30 * 2 ** (attempts - 1), 6 * 3600)
    return timedelta(seconds=base * (1 + random.random() / 10))


def enqueue(ws: Workspace, conn: Connection, *, batch: int = 1000) -> int:
    """``webhooks.enqueue``: queue deliveries for new events, per webhook (the cursor moves in the
    same transaction, so each event is queued once); returns how many events were looked at."""
    queued = 0
    for hook in ws.config.webhooks:
        if not hook.active:
            continue
        cursor = conn.execute(
            select(webhook_cursors).where(webhook_cursors.c.webhook_id == hook.id).with_for_update()
        ).first()
        if cursor is None:
            # a new webhook starts from now, not from the beginning of history
            latest = conn.execute(select(lead_events.c.id).order_by(lead_events.c.id.desc()).limit(1)).scalar() or 0
            conn.execute(insert(webhook_cursors).values(webhook_id=hook.id, last_event_id=latest))
            continue
        wanted = [t for t, name in EVENT_TYPES.items() if name in hook.events]
        rows = conn.execute(
            select(lead_events.c.id, lead_events.c.type, lead_events.c.lead_id, lead_events.c.actor)
            .where(lead_events.c.id > cursor.last_event_id)
            .order_by(lead_events.c.id)
            .limit(batch)
        ).all()
        if not rows:
            continue
        now = ws.clock.now()
        deliveries = [
            {
                "webhook_id": hook.id,
                "event_id": r.id,
                "event_type": EVENT_TYPES[r.type],
                "lead_id": r.lead_id,
                "status": "pending",
                "next_attempt_at": now,
                "created_at": now,
            }
            for r in rows
            if r.type in wanted and r.lead_id is not None and r.actor != ev.HISTORY  # history is not news
        ]
        if deliveries:
            conn.execute(insert(webhook_deliveries), deliveries)
        conn.execute(
            update(webhook_cursors).where(webhook_cursors.c.webhook_id == hook.id).values(last_event_id=rows[-1].id)
        )
        queued += len(rows)
    return queued


def claim(ws: Workspace, conn: Connection, *, batch: int = 50) -> list[dict[str, Any]]:
    """Take due deliveries for this worker (a lease, so no other worker sends them meanwhile).

    A delivery still ``sending`` once its lease is over was left by a worker that stopped: its
    open attempt is closed as interrupted here, and it is sent again unless it has had all its
    attempts. The lease's end stays on each claimed delivery as ``claimed_until``: the worker's
    token that the delivery is still its own when it starts the attempt."""
    now = ws.clock.now()
    due = conn.execute(
        select(webhook_deliveries)
        .where(
            ((webhook_deliveries.c.status == "pending") | (webhook_deliveries.c.status == "sending")),
            webhook_deliveries.c.next_attempt_at <= now,
        )
        .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    if not due:
        return []
    ids = [d.id for d in due]
    open_attempts = webhook_attempts.c.delivery_id.in_(ids) & (webhook_attempts.c.outcome == "sending")
    interrupted = set(conn.execute(select(webhook_attempts.c.delivery_id).where(open_attempts)).scalars())
    if interrupted:
        conn.execute(update(webhook_attempts).where(open_attempts).values(outcome="error", error=INTERRUPTED))
        conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id.in_(interrupted))
            .values(last_status=None, last_error=INTERRUPTED)
        )
    spent = [d.id for d in due if d.attempts >= MAX_ATTEMPTS]
    if spent:
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id.in_(spent)).values(status="failed"))
    taken = [d for d in due if d.attempts < MAX_ATTEMPTS]
    if not taken:
        return []
    until = now + LEASE
    conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id.in_([d.id for d in taken]))
        .values(status="sending", next_attempt_at=until)
    )
    return [{**dict(d._mapping), "claimed_until": until} for d in taken]


def begin_attempt(ws: Workspace, conn: Connection, delivery: Mapping[str, Any]) -> dict[str, Any] | None:
    """Log the attempt as ``sending`` and renew the lease; the caller commits this before the
    request goes out, so a worker killed mid-request still leaves its row. None when another
    worker has taken the delivery since this one claimed it (its lease ran out meanwhile)."""
    now = ws.clock.now()
    number = delivery["attempts"] + 1
    still_ours = conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.id == delivery["id"],
            webhook_deliveries.c.status == "sending",
            webhook_deliveries.c.attempts == delivery["attempts"],
            webhook_deliveries.c.next_attempt_at == delivery["claimed_until"],
        )
        .values(attempts=number, next_attempt_at=now + LEASE)
    ).rowcount
    if not still_ours:
        return None
    row = {
        "delivery_id": delivery["id"],
        "webhook_id": delivery["webhook_id"],
        "event_id": delivery["event_id"],
        "attempt": number,
        "started_at": now,
        "outcome": "sending",
    }
    attempt_id = conn.execute(insert(webhook_attempts).values(**row)).inserted_primary_key[0]
    return {**row, "id": attempt_id}


def payload(conn: Connection, delivery: Mapping[str, Any]) -> dict[str, Any]:
    event = conn.execute(select(lead_events).where(lead_events.c.id == delivery["event_id"])).one()
    lead = conn.execute(select(leads).where(leads.c.id == event.lead_id)).first()
    summary = None
    if lead is not None:
        summary = {
            "id": lead.id,
            "stage": lead.stage,
            "score": lead.score,
            "grade": lead.grade,
            "owner": lead.owner_id,
            "team": lead.team_id,
            "email": lead.email,
            "first_name": lead.first_name,
            "last_name": lead.last_name,
            "phone": lead.phone,
            "company": lead.company,
            "title": lead.title,
            "source": lead.source,
            "sla_due_at": lead.sla_due_at,
            "erased": lead.erased_at is not None,
        }
    return {
        "id": public_event_id(delivery),
        "type": delivery["event_type"],
        "occurred_at": event.occurred_at,
        "data": {"lead": summary, "change": event.data},
    }


def public_event_id(delivery: Mapping[str, Any]) -> str:
    """The event's public id: the payload's ``id`` and the ``Leadflow-Event-Id`` header, the same
    on every attempt, so a receiver that keeps the ids it has processed drops repeats."""
    return f"evt_{delivery['event_id']}"


def send(
    ws: Workspace, hook: Webhook, delivery: Mapping[str, Any], body: bytes, client: httpx.Client
) -> tuple[int | None, str | None]:
    """POST one delivery; (HTTP status, error) — a status of 2xx means delivered."""
    secret = os.environ.get(hook.secret_env)
    if not secret:
        return None, f"secret not set: environment variable {hook.secret_env} is empty"
    timestamp = int(ws.clock.now().timestamp())
    headers = {
        "content-type": "application/json",
        HEADER: sign(secret, body, timestamp),
        EVENT_ID_HEADER: public_event_id(delivery),
        "Leadflow-Event": delivery["event_type"],
        "Leadflow-Delivery": str(delivery["id"]),
        "user-agent": "leadflow-webhooks",
    }
    try:
        response = client.post(hook.url, content=body, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"
    return response.status_code, None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


def record(
    ws: Workspace,
    conn: Connection,
    attempt: Mapping[str, Any],
    status: int | None,
    error: str | None,
    duration_ms: float | None,
) -> str:
    """Close the attempt's log row and, unless another worker has started a later attempt since,
    move the delivery on: delivered, due again after a backoff, or failed for good."""
    now = ws.clock.now()
    outcome = "delivered" if error is None else ("failed" if status is not None else "error")
    conn.execute(
        update(webhook_attempts)
        .where(webhook_attempts.c.id == attempt["id"])
        .values(outcome=outcome, status=status, duration_ms=duration_ms, error=error)
    )
    if error is None:
        values: dict[str, Any] = {"status": "delivered", "delivered_at": now, "last_status": status, "last_error": None}
    elif attempt["attempt"] >= MAX_ATTEMPTS:
        values = {"status": "failed", "last_status": status, "last_error": error}
    else:
        values = {
            "status": "pending",
            "next_attempt_at": now + backoff(attempt["attempt"]),
            "last_status": status,
            "last_error": error,
        }
    conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == attempt["delivery_id"], webhook_deliveries.c.attempts == attempt["attempt"])
        .values(**values)
    )
    return str(values["status"])


def send_due(ws: Workspace, *, batch: int = 50) -> int:
    """``webhooks.send``: claim a batch of due deliveries (one short transaction); for each, log
    the attempt (committed), send it with no transaction open, then record the outcome."""
    if not ws.config.webhooks:
        return 0
    with ws.transaction() as conn:
        claimed = claim(ws, conn, batch=batch)
        bodies = {d["id"]: orjson.dumps(payload(conn, d)) for d in claimed}
    if not claimed:
        return 0
    hooks = {h.id: h for h in ws.config.webhooks}
    with httpx.Client() as client:
        for d in claimed:
            with ws.transaction() as conn:
                attempt = begin_attempt(ws, conn, d)
            if attempt is None:
                continue
            hook = hooks.get(d["webhook_id"])
            started = time.perf_counter()
            status, error = (
                send(ws, hook, d, bodies[d["id"]], client) if hook else (None, "webhook no longer configured")
            )
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            with ws.transaction() as conn:
                record(ws, conn, attempt, status, error, duration_ms)
    return len(claimed)


def list_deliveries(
    conn: Connection, *, status: str | None = None, limit: int = 50, after_id: int | None = None
) -> list[dict[str, Any]]:
    query = select(webhook_deliveries).order_by(webhook_deliveries.c.id.desc()).limit(limit)
    if status:
        query = query.where(webhook_deliveries.c.status == status)
    if after_id is not None:
        query = query.where(webhook_deliveries.c.id < after_id)
    deliveries = [dict(r._mapping) for r in conn.execute(query)]
    by_delivery = attempts_of(conn, [d["id"] for d in deliveries])
    return [{**d, "attempt_log": by_delivery.get(d["id"], [])} for d in deliveries]


def attempts_of(conn: Connection, delivery_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each delivery's attempts, first to last."""
    found: dict[int, list[dict[str, Any]]] = {}
    if not delivery_ids:
        return found
    rows = conn.execute(
        select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id.in_(delivery_ids))
        .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.attempt, webhook_attempts.c.id)
    )
    for r in rows:
        found.setdefault(r.delivery_id, []).append(dict(r._mapping))
    return found


def list_attempts(
    conn: Connection,
    *,
    webhook_id: str | None = None,
    event_id: int | None = None,
    outcome: str | None = None,
    limit: int = 50,
    after_id: int | None = None,
) -> list[dict[str, Any]]:
    """The attempt log, newest first: one row per request made (or tried) to a receiver."""
    query = select(webhook_attempts).order_by(webhook_attempts.c.id.desc()).limit(limit)
    if webhook_id:
        query = query.where(webhook_attempts.c.webhook_id == webhook_id)
    if event_id is not None:
        query = query.where(webhook_attempts.c.event_id == event_id)
    if outcome:
        query = query.where(webhook_attempts.c.outcome == outcome)
    if after_id is not None:
        query = query.where(webhook_attempts.c.id < after_id)
    return [dict(r._mapping) for r in conn.execute(query)]
