"""``/api/v1/reviews``: the quality review queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from leadflow.access.keys import ApiKey
from leadflow.api import idempotency
from leadflow.api.deps import api_key, workspace
from leadflow.qualify.review import decide, list_items

router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])


class ReviewItem(BaseModel):
    id: int
    kind: str
    lead_id: int
    other_lead_id: int | None = None
    rule: str
    reason: str
    evidence: dict[str, Any] | None = None
    status: str
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    decision_reason: str | None = None


class ReviewPage(BaseModel):
    items: list[ReviewItem]
    next_cursor: str | None = None


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "reject"]
    reason: str = Field(min_length=1, max_length=500)


class DecisionOut(BaseModel):
    id: int
    status: str
    lead_id: int
    stage: str


_ws = workspace


@router.get("", response_model=ReviewPage, summary="Review items, oldest first")
def list_reviews(
    request: Request,
    status: Annotated[Literal["open", "accepted", "rejected", "all"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$", description="next_cursor of the previous page")] = None,
    key: ApiKey = Depends(api_key("leads:read")),
) -> ReviewPage:
    ws = _ws(request)
    with ws.reader() as conn:
        rows = list_items(
            conn, status=None if status == "all" else status, limit=limit, after_id=int(cursor) if cursor else None
        )
    return ReviewPage(
        items=[ReviewItem(**r) for r in rows], next_cursor=str(rows[-1]["id"]) if len(rows) == limit else None
    )


@router.post("/{item_id}/decision", response_model=DecisionOut, summary="Accept or reject a lead under review")
def decide_review(
    request: Request,
    item_id: Annotated[int, Path(ge=1, le=2**62)],
    body: Annotated[DecisionIn, Body()],
    key: ApiKey = Depends(api_key("reviews:write")),
) -> Response:
    """Accepting moves a lead that is not yet an MQL to MQL; rejecting disqualifies it. The
    decision and its reason are kept as labelled data."""
    ws = _ws(request)

    def work(conn: Connection) -> tuple[int, DecisionOut, dict[str, str]]:
        return 200, DecisionOut(**decide(ws, conn, item_id, body.decision, reason=body.reason, actor=key.actor)), {}

    return idempotency.run(ws, request, key.actor, (item_id, body), work)
