"""``/api/v1/events``: activity of leads and anonymous visitors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Connection

from leadflow.access.keys import ApiKey
from leadflow.api import idempotency
from leadflow.api.deps import api_key, workspace
from leadflow.capture.activity import record_event
from leadflow.capture.schemas import EventIn

router = APIRouter(prefix="/api/v1/events", tags=["events"])


class EventOut(BaseModel):
    lead_id: int | None
    visitor_id: str | None
    anonymous: bool
    score: int | None = None
    stage: str | None = None


@router.post("", status_code=201, response_model=EventOut, summary="Record an activity")
def create_event(
    request: Request, event: Annotated[EventIn, Body()], key: ApiKey = Depends(api_key("events:write"))
) -> Response:
    """Page views of unknown visitors are kept by visitor id and join the lead once it is known;
    any other activity needs its lead (by ``lead_id``, ``email`` or a known ``visitor_id``), and
    rescores it at once."""
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, EventOut, dict[str, str]]:
        recorded = record_event(ws, conn, event, actor=key.actor)
        return 201, EventOut(**recorded.__dict__), {}

    return idempotency.run(ws, request, key.actor, event, work)
