"""The peer for the HTTP capture benchmark: a bare FastAPI endpoint that inserts one lead row and
one event row into SQLite per request (no validation beyond pydantic, no pipeline). The ceiling
of what any capture endpoint on this stack can answer."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import insert

from leadflow.db.engine import make_engine
from leadflow.db.tables import lead_events, leads

engine = make_engine(os.environ["BARE_DATABASE_URL"])
app = FastAPI()
INSERT_LEAD, INSERT_EVENT = insert(leads), insert(lead_events)


class LeadIn(BaseModel):
    email: str
    company: str | None = None


@app.post("/leads", status_code=201)
def create(lead: LeadIn) -> dict[str, int]:
    """The usual way: a sync endpoint, run in the thread pool."""
    return _insert(lead)


@app.post("/leads-inline", status_code=201)
async def create_inline(lead: LeadIn) -> dict[str, int]:
    """The fastest way on SQLite: inline on the event loop."""
    return _insert(lead)


def _insert(lead: LeadIn) -> dict[str, int]:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        lead_id = conn.execute(
            INSERT_LEAD,
            {
                "created_at": now,
                "updated_at": now,
                "email": lead.email,
                "email_key": lead.email.lower(),
                "company": lead.company,
                "stage": "lead",
                "stage_entered_at": now,
                "config_version": "bare",
            },
        ).inserted_primary_key[0]
        conn.execute(
            INSERT_EVENT,
            {
                "lead_id": lead_id,
                "type": "lead_created",
                "occurred_at": now,
                "recorded_at": now,
                "actor": "bench",
                "data": {},
                "config_version": "bare",
            },
        )
    return {"id": int(lead_id)}
