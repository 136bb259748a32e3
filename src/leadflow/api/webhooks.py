"""``/api/v1/webhooks/deliveries`` and ``/api/v1/webhooks/attempts``: the delivery log of
outgoing webhooks, one row per (webhook, event) with every attempt, and the attempts alone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from leadflow.access.keys import ApiKey
from leadflow.api.deps import api_key, workspace
from leadflow.webhooks.service import list_attempts, list_deliveries

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


class Attempt(BaseModel):
    id: int
    delivery_id: int
    webhook_id: str
    event_id: int
    attempt: int
    started_at: datetime
    duration_ms: float | None
    status: int | None = Field(description="the receiver's HTTP status, when it answered")
    outcome: Literal["sending", "delivered", "failed", "error"] = Field(
        description="failed: the receiver answered other than 2xx; error: no answer (network, timeout, "
        "missing secret, or interrupted: the worker stopped mid-request); sending: under way"
    )
    error: str | None


class Delivery(BaseModel):
    id: int
    webhook_id: str
    event_id: int
    event_type: str
    lead_id: int | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[Attempt]


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = None


class AttemptPage(BaseModel):
    items: list[Attempt]
    next_cursor: str | None = None


@router.get("/deliveries", response_model=DeliveryPage, summary="Webhook deliveries with their attempts, newest first")
def deliveries(
    request: Request,
    status: Annotated[Literal["pending", "sending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
    key: ApiKey = Depends(api_key("admin")),
) -> DeliveryPage:
    ws = workspace(request)
    with ws.reader() as conn:
        rows = list_deliveries(conn, status=status, limit=limit, after_id=int(cursor) if cursor else None)
    return DeliveryPage(
        items=[Delivery(**r) for r in rows], next_cursor=str(rows[-1]["id"]) if len(rows) == limit else None
    )


@router.get("/attempts", response_model=AttemptPage, summary="Webhook delivery attempts, newest first")
def attempts(
    request: Request,
    webhook: Annotated[str | None, Query(max_length=64)] = None,
    event: Annotated[str | None, Query(pattern=r"^(evt_)?\d{1,18}$", description="evt_<id> or <id>")] = None,
    outcome: Annotated[Literal["sending", "delivered", "failed", "error"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
    key: ApiKey = Depends(api_key("admin")),
) -> AttemptPage:
    ws = workspace(request)
    with ws.reader() as conn:
        rows = list_attempts(
            conn,
            webhook_id=webhook,
            event_id=int(event.removeprefix("evt_")) if event else None,
            outcome=outcome,
            limit=limit,
            after_id=int(cursor) if cursor else None,
        )
    return AttemptPage(
        items=[Attempt(**r) for r in rows], next_cursor=str(rows[-1]["id"]) if len(rows) == limit else None
    )
