"""``/api/v1/duplicates``: the duplicate review queue; ``/api/v1/leads/{id}/merge|unmerge``."""

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
from leadflow.identity.merge import merge_leads, unmerge_leads
from leadflow.identity.review import decide_pair, list_pairs

router = APIRouter(tags=["duplicates"])
LeadId = Annotated[int, Path(ge=1, le=2**62)]


class LeadSummary(BaseModel):
    id: int
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    domain: str | None = None
    source: str | None = None
    created_at: datetime
    merged_into_id: int | None = None


class Agreement(BaseModel):
    level: str = Field(description="how the field compares: exact, fuzzy, nickname, swapped, ..., else")
    weight: float = Field(description="log2(m/u): evidence for (positive) or against (negative) one person")


class DuplicatePair(BaseModel):
    id: int
    lead_id: int
    other_lead_id: int
    probability: float
    weight: float
    agreed: list[str] = Field(description="fields that count for the two being one person")
    evidence: dict[str, Agreement]
    status: Literal["open", "merged", "kept_apart"]
    found_by: str
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    merge_id: int | None = None
    lead: LeadSummary | None = None
    other_lead: LeadSummary | None = None


class PairPage(BaseModel):
    items: list[DuplicatePair]
    next_cursor: str | None = None


class PairDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["merge", "keep_apart"]
    reason: str = Field(min_length=1, max_length=500)
    survivor_id: int | None = Field(default=None, ge=1, description="which lead survives a merge (default: the older)")


class PairDecisionOut(BaseModel):
    id: int
    status: str
    merge_id: int | None = None
    survivor_id: int | None = None


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_lead_id: int = Field(ge=1, le=2**62, description="the lead merged into this one")
    reason: str | None = Field(default=None, max_length=500)


class MergeOut(BaseModel):
    merge_id: int
    survivor_id: int
    merged_id: int
    changed: list[str] = Field(default_factory=list)


@router.get("/api/v1/duplicates", response_model=PairPage, summary="Pairs of leads that may be one person")
def list_duplicates(
    request: Request,
    status: Annotated[Literal["open", "merged", "kept_apart", "all"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$", description="next_cursor of the previous page")] = None,
    key: ApiKey = Depends(api_key("leads:read")),
) -> PairPage:
    ws = workspace(request)
    with ws.reader() as conn:
        rows = list_pairs(
            conn, status=None if status == "all" else status, limit=limit, after_id=int(cursor) if cursor else None
        )
    return PairPage(
        items=[DuplicatePair(**r) for r in rows], next_cursor=str(rows[-1]["id"]) if len(rows) == limit else None
    )


@router.post(
    "/api/v1/duplicates/{pair_id}/decision", response_model=PairDecisionOut, summary="Merge a pair or keep it apart"
)
def decide_duplicate(
    request: Request,
    pair_id: LeadId,
    body: Annotated[PairDecisionIn, Body()],
    key: ApiKey = Depends(api_key("reviews:write")),
) -> Response:
    """The decision and its reason stay on the pair: a pair kept apart is not proposed again."""
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, Any, dict[str, str]]:
        out = decide_pair(
            ws, conn, pair_id, body.decision, reason=body.reason, actor=key.actor, survivor_id=body.survivor_id
        )
        return 200, PairDecisionOut(**out), {}

    return idempotency.run(ws, request, key.actor, (pair_id, body), work)


@router.post("/api/v1/leads/{lead_id}/merge", response_model=MergeOut, summary="Merge another lead into this one")
def merge(
    request: Request,
    lead_id: LeadId,
    body: Annotated[MergeIn, Body()],
    key: ApiKey = Depends(api_key("leads:write")),
) -> Response:
    """Survivorship rules from the workspace file decide each field; the other lead's events,
    opportunities and web history move here; consent becomes the most restrictive of the two."""
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, Any, dict[str, str]]:
        out = merge_leads(ws, conn, lead_id, body.other_lead_id, actor=key.actor, reason=body.reason)
        return 200, MergeOut(**out), {}

    return idempotency.run(ws, request, key.actor, (lead_id, body), work)


@router.post("/api/v1/leads/{lead_id}/unmerge", response_model=MergeOut, summary="Undo the merge of this lead")
def unmerge(request: Request, lead_id: LeadId, key: ApiKey = Depends(api_key("leads:write"))) -> Response:
    """Both leads return exactly as they were before the merge; 409 when this lead is not merged."""
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, Any, dict[str, str]]:
        return 200, MergeOut(**unmerge_leads(ws, conn, lead_id, actor=key.actor)), {}

    return idempotency.run(ws, request, key.actor, (lead_id,), work)
