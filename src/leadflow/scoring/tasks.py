"""Timed scoring work: ``scoring.decay`` brings decaying engagement points up to date.

Set-based in batches, oldest first, claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so
several workers share the work without touching the same lead. A lead whose score changes gets a
``lead_scored`` event (trigger ``decay``) like any other score change.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, select

from leadflow import events as ev
from leadflow.db.tables import leads
from leadflow.leads.service import save_projections
from leadflow.scoring.service import apply_score, score_event_data
from leadflow.workspace import Workspace

MIN_AGE = timedelta(hours=1)  # points younger than this are left for the next round


def decay(ws: Workspace, conn: Connection, *, batch: int = 2000) -> int:
    """Decay one batch of leads to now; returns how many leads were brought up to date."""
    model = ws.rules.scoring
    if model.half_life_s is None:
        return 0
    now = ws.clock.now()
    query = (
        select(leads)
        .where(
            leads.c.engagement_as_of.is_not(None),
            leads.c.engagement_as_of < now - MIN_AGE,
            leads.c.merged_into_id.is_(None),
        )
        .order_by(leads.c.engagement_as_of)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    found = [dict(row._mapping) for row in conn.execute(query)]
    rows = []
    for lead in found:
        state = model.decayed(model.engagement_of(lead), now)
        previous = lead["score"]
        score = model.score(lead, state)
        apply_score(lead, score, state)
        if score.score != previous:
            lead["updated_at"] = now
            rows.append(
                ev.event_row(
                    type=ev.LEAD_SCORED,
                    lead_id=lead["id"],
                    occurred_at=now,
                    recorded_at=now,
                    actor="system",
                    config_version=ws.version,
                    data=score_event_data(score, model, previous, trigger="decay"),
                )
            )
    save_projections(conn, found)
    ev.append(conn, rows)
    return len(found)
