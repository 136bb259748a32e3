"""``/api/v1/opportunities``, ``/api/v1/spend``, ``/api/v1/revenue``: what leads turn into and
what they cost. Money is a decimal string (or number) in, a decimal string with a currency out."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from leadflow.access.keys import ApiKey
from leadflow.api import idempotency
from leadflow.api.deps import api_key, workspace
from leadflow.capture.schemas import Moment
from leadflow.opportunities.service import close_opportunity, create_opportunity, record_revenue
from leadflow.sources.service import record_spend

router = APIRouter(prefix="/api/v1", tags=["sales"])
Amount = Annotated[Decimal, Field(max_digits=16, decimal_places=2, ge=Decimal("-99999999999999.99"))]
Writer = Annotated[ApiKey, Depends(api_key("sales:write"))]


class Money(BaseModel):
    amount: str
    currency: str


class OpportunityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=300)
    lead_id: int | None = Field(default=None, ge=1, le=2**62)
    account_id: int | None = Field(default=None, ge=1, le=2**62)
    owner_id: str | None = Field(default=None, max_length=64)
    amount: Amount | None = Field(default=None, ge=0)
    product: str | None = Field(default=None, max_length=200)
    pipeline_stage: str = Field(default="qualification", min_length=1, max_length=64)
    created_at: Moment | None = None
    external_id: str | None = Field(default=None, max_length=100)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    won: bool
    amount: Amount | None = Field(default=None, ge=0)
    reason: str | None = Field(default=None, max_length=300)
    closed_at: Moment | None = None


class SpendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=64)
    campaign: str | None = Field(default=None, max_length=64)
    period_start: date
    period_end: date = Field(description="exclusive")
    amount: Amount = Field(ge=0)
    kind: Literal["marketing", "sales"] = "marketing"


class RevenueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    recognized_at: Moment
    kind: Literal["new", "recurring", "expansion", "refund"] = "recurring"
    lead_id: int | None = Field(default=None, ge=1, le=2**62)
    account_id: int | None = Field(default=None, ge=1, le=2**62)
    opportunity_id: int | None = Field(default=None, ge=1, le=2**62)
    external_id: str | None = Field(default=None, max_length=100)


class Created(BaseModel):
    id: int


class Recorded(BaseModel):
    recorded: bool
    amount: Money


@router.post("/opportunities", status_code=201, response_model=Created, summary="Open an opportunity")
def open_opportunity(request: Request, body: Annotated[OpportunityIn, Body()], key: Writer) -> Response:
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, Created, dict[str, str]]:
        opp = create_opportunity(ws, conn, actor=key.actor, **body.model_dump())
        return 201, Created(id=opp), {"Location": f"/api/v1/opportunities/{opp}"}

    return idempotency.run(ws, request, key.actor, body, work)


@router.post(
    "/opportunities/{opportunity_id}/close", response_model=Created, summary="Close an opportunity as won or lost"
)
def close(
    request: Request,
    opportunity_id: Annotated[int, Path(ge=1, le=2**62)],
    body: Annotated[CloseIn, Body()],
    key: Writer,
) -> Response:
    """A win records its amount as new revenue and makes the lead a customer; a loss needs a reason."""
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, Created, dict[str, str]]:
        close_opportunity(ws, conn, opportunity_id, actor=key.actor, **body.model_dump())
        return 200, Created(id=opportunity_id), {}

    return idempotency.run(ws, request, key.actor, (opportunity_id, body), work)


@router.post("/spend", status_code=201, response_model=Recorded, summary="Record spend for a source or campaign")
def add_spend(request: Request, body: Annotated[SpendIn, Body()], key: Writer) -> Response:
    ws = workspace(request)
    currency = ws.config.workspace.currency

    def work(conn: Connection) -> tuple[int, Recorded, dict[str, str]]:
        record_spend(conn, currency=currency, origin="api", **body.model_dump())
        return 201, Recorded(recorded=True, amount=Money(amount=f"{body.amount:.2f}", currency=currency)), {}

    return idempotency.run(ws, request, key.actor, body, work)


@router.post("/revenue", status_code=201, response_model=Created, summary="Record revenue")
def add_revenue(request: Request, body: Annotated[RevenueIn, Body()], key: Writer) -> Response:
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, Created, dict[str, str]]:
        return 201, Created(id=record_revenue(ws, conn, actor=key.actor, **body.model_dump())), {}

    return idempotency.run(ws, request, key.actor, body, work)
