"""A person's data on request: export it, erase it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from leadflow.access.keys import ApiKey
from leadflow.api import idempotency
from leadflow.api.deps import api_key, workspace
from leadflow.privacy.service import erase, export

router = APIRouter(prefix="/api/v1/leads", tags=["privacy"])
LeadId = Annotated[int, Path(ge=1, le=2**62, description="lead id")]
Privacy = Annotated[ApiKey, Depends(api_key("privacy"))]


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=300, description="e.g. the person's request of 2026-11-23")


@router.get("/{lead_id}/export", summary="Everything leadflow holds about a lead (subject access request)")
def export_lead(request: Request, lead_id: LeadId, key: Privacy) -> Any:
    ws = workspace(request)
    with ws.reader() as conn:
        return jsonable_encoder(export(ws, conn, lead_id))


@router.post("/{lead_id}/erase", summary="Erase a lead's personal data and stop all contact")
def erase_lead(request: Request, lead_id: LeadId, body: Annotated[EraseIn, Body()], key: Privacy) -> Response:
    """The response names no personal data, so an ``Idempotency-Key`` replay keeps none either."""
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, dict[str, Any], dict[str, str]]:
        return 200, jsonable_encoder(erase(ws, conn, lead_id, actor=key.actor, reason=body.reason)), {}

    return idempotency.run(ws, request, key.actor, body, work)
