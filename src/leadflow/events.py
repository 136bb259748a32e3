"""The event log: types, append and read.

Every change to a lead appends an immutable row to ``lead_events``. The step events of one
``process`` call are appended together in one ``executemany``. Personal data in an event goes
only under its ``personal`` column, so erasure can blank it and leave every fact in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import lead_events

# The actor of everything recorded for history imported as it happened: never sent to webhooks.
HISTORY = "history"

# Steps of the pipeline and changes to the lead record.
LEAD_CREATED = "lead_created"
LEAD_CAPTURED = "lead_captured"  # a known lead submitted again: a new touch
LEAD_ENRICHED = "lead_enriched"
LEAD_QUALIFIED = "lead_qualified"
LEAD_SCORED = "lead_scored"
STAGE_CHANGED = "stage_changed"
LEAD_ASSIGNED = "lead_assigned"
LEAD_UPDATED = "lead_updated"
LEAD_ERASED = "lead_erased"
CONSENT_CHANGED = "consent_changed"
SLA_STOPPED = "sla_stopped"
# A public form turned a submission away (honeypot, too fast, rate limit): no lead, no personal data.
FORM_REFUSED = "form_refused"

# Handoff from marketing to sales, and sales' answer (feeds mql_criteria_rate).
HANDOFF_SENT = "handoff_sent"
HANDOFF_ACCEPTED = "handoff_accepted"
HANDOFF_REJECTED = "handoff_rejected"

# Product-qualified leads and accounts (the first time a lead or account meets the PQL/PQA rule).
PQL_REACHED = "pql_reached"
PQA_REACHED = "pqa_reached"

# The quality review queue.
REVIEW_OPENED = "review_opened"
REVIEW_DECIDED = "review_decided"

# Routing and SLA timers.
SLA_REMINDED = "sla_reminded"
SLA_ESCALATED = "sla_escalated"

# Nurture.
NURTURE_ENROLLED = "nurture_enrolled"
NURTURE_ENDED = "nurture_ended"
TASK_CREATED = "task_created"

# Sales outcomes.
OPPORTUNITY_CREATED = "opportunity_created"
OPPORTUNITY_WON = "opportunity_won"
OPPORTUNITY_LOST = "opportunity_lost"
REVENUE_RECORDED = "revenue_recorded"

# Activity: what people do, or what is done to reach them.
ACTIVITY_TYPES: tuple[str, ...] = (
    "page_view",
    "form_submit",
    "signup",
    "trial_started",
    "subscription_started",
    "email_sent",
    "email_delivered",
    "email_opened",
    "email_clicked",
    "email_replied",
    "email_bounced",
    "email_unsubscribed",
    "call",
    "meeting_scheduled",
    "meeting_held",
    "chat",
    "social_like",
    "social_share",
    "social_comment",
    "product_usage",
    "referral",
    "newsletter_subscribed",
    "note",
)

# Types that mean the person engaged (for first-contact engagement and inactivity).
ENGAGEMENT_TYPES = frozenset(
    {
        "email_opened",
        "email_clicked",
        "email_replied",
        "meeting_scheduled",
        "meeting_held",
        "product_usage",
        "form_submit",
        "signup",
        "trial_started",
        "subscription_started",
        "chat",
        "page_view",
    }
)


def is_outbound_contact(event_type: str, data: Mapping[str, Any], actor: str) -> bool:
    """Whether this event is a person reaching out to the lead: it stops the SLA clock."""
    if event_type in ("call", "meeting_held"):
        return data.get("direction", "outbound") == "outbound"
    if event_type in ("email_sent", "chat"):  # by a person (not nurture), or imported from a CRM's log
        return (actor.startswith("owner:") or actor == HISTORY) and data.get("direction", "outbound") == "outbound"
    return False


def event_row(
    *,
    type: str,
    lead_id: int | None,
    occurred_at: datetime,
    recorded_at: datetime,
    actor: str,
    config_version: str,
    data: Mapping[str, Any] | None = None,
    personal: Mapping[str, Any] | None = None,
    visitor_id: str | None = None,
    stage: str | None = None,
    external_id: str | None = None,
) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "visitor_id": visitor_id,
        "type": type,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "actor": actor,
        "stage": stage,
        "data": dict(data or {}),
        "personal": dict(personal) if personal else None,
        "config_version": config_version,
        "external_id": external_id,
    }


EVENT_COLUMNS = (
    "lead_id",
    "visitor_id",
    "type",
    "occurred_at",
    "recorded_at",
    "actor",
    "stage",
    "data",
    "personal",
    "config_version",
    "external_id",
)
_INSERT = Prepared(insert(lead_events), column_keys=EVENT_COLUMNS)


def append(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append events in one round trip (rows as built by :func:`event_row`)."""
    _INSERT.executemany(conn, rows)


def for_lead(conn: Connection, lead_id: int, *, types: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """A lead's events in the order they happened (ties in the order they were recorded)."""
    query = (
        select(lead_events)
        .where(lead_events.c.lead_id == lead_id)
        .order_by(lead_events.c.occurred_at, lead_events.c.id)
    )
    if types is not None:
        query = query.where(lead_events.c.type.in_(list(types)))
    return [dict(row._mapping) for row in conn.execute(query)]
