"""``/api/v1/webhooks/deliveries``: the delivery log of outgoing webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from leadflow.access.keys import ApiKey
from leadflow.api.deps import api_key, workspace
from leadflow.webhooks.service import list_deliveries

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


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


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = None


@router.get("/deliveries", response_model=DeliveryPage, summary="Webhook deliveries, newest first")
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
