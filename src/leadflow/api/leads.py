"""``/api/v1/leads``: capture a lead through the pipeline, read a lead with its history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from leadflow import events
from leadflow.access.keys import ApiKey
from leadflow.api import idempotency
from leadflow.api.deps import api_key, workspace
from leadflow.capture.schemas import LeadIn
from leadflow.capture.service import prepare
from leadflow.errors import InvalidInput
from leadflow.leads.schemas import CaptureOut, LeadOut, LeadWithEvents, Score, event_out, lead_out
from leadflow.leads.service import get_lead, list_leads
from leadflow.pipeline import process, process_many
from leadflow.privacy import suppression
from leadflow.qualify.service import change_stage

router = APIRouter(prefix="/api/v1/leads", tags=["leads"])
LeadId = Annotated[int, Path(ge=1, le=2**62, description="lead id")]
Writer = Annotated[ApiKey, Depends(api_key("leads:write"))]
Reader = Annotated[ApiKey, Depends(api_key("leads:read"))]
_ws = workspace


@router.post(
    "", status_code=201, response_model=CaptureOut, summary="Capture a lead", responses={200: {"model": CaptureOut}}
)
async def create_lead(request: Request, lead: Annotated[LeadIn, Body()], key: Writer) -> Response:
    """Takes the lead through capture → identity → enrich → qualify → score → route and answers
    with its stage, score (explained) and owner. A submission that matches an existing lead
    updates it and answers 200 with ``created: false``."""
    ws = _ws(request)

    def work(conn: Connection) -> tuple[int, CaptureOut, dict[str, str]]:
        result = process(ws, conn, lead, actor=key.actor)
        out = CaptureOut(created=result.created, lead=lead_out(result.lead, ws.rules.scoring))
        return (201 if result.created else 200), out, {"Location": f"/api/v1/leads/{result.lead_id}"}

    if ws.dialect == "sqlite":
        # Inline on the event loop: a capture is about a millisecond of CPU and SQLite has one
        # writer anyway, so a hop to a worker thread and back only adds latency (measured:
        # ~450 vs ~290 leads/s). The batch endpoint, which can take a second, keeps the pool.
        return idempotency.run(ws, request, key.actor, lead, work)
    # PostgreSQL: each capture waits on the network; threads let them overlap.
    return await run_in_threadpool(idempotency.run, ws, request, key.actor, lead, work)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    leads: list[dict[str, Any]] = Field(
        min_length=1, max_length=1000, description="up to 1,000 leads, each as for POST /api/v1/leads"
    )


class BatchItem(BaseModel):
    index: int
    status: Literal["created", "updated", "rejected"]
    lead_id: int | None = None
    stage: str | None = None
    score: int | None = None
    owner: str | None = None
    errors: list[dict[str, Any]] | None = None


class BatchOut(BaseModel):
    created: int
    updated: int
    rejected: int
    results: list[BatchItem]


@router.post("/batch", response_model=BatchOut, summary="Capture up to 1,000 leads")
def create_leads(request: Request, body: Annotated[BatchIn, Body()], key: Writer) -> Response:
    """Each lead gets its own result: the valid ones are captured together (one transaction),
    the invalid ones are reported with their index and problems, and nothing of them is written."""
    ws = _ws(request)

    def work(conn: Connection) -> tuple[int, BatchOut, dict[str, str]]:
        now = ws.clock.now()
        region = ws.config.workspace.default_region
        items: list[BatchItem | None] = [None] * len(body.leads)
        good, where = [], []
        for i, payload in enumerate(body.leads):
            try:
                good.append(prepare(payload, default_region=region, now=now))
                where.append(i)
            except InvalidInput as exc:
                items[i] = BatchItem(index=i, status="rejected", errors=[p.as_dict() for p in exc.problems])
        refused = suppression.screen(ws, conn, good)  # an erased person's email or phone
        for k, exc in refused.items():
            items[where[k]] = BatchItem(index=where[k], status="rejected", errors=[p.as_dict() for p in exc.problems])
        if refused:
            good = [c for k, c in enumerate(good) if k not in refused]
            where = [i for k, i in enumerate(where) if k not in refused]
        for i, r in zip(where, process_many(ws, conn, good, actor=key.actor), strict=True):
            items[i] = BatchItem(
                index=i,
                status="created" if r.created else "updated",
                lead_id=r.lead_id,
                stage=r.stage,
                score=r.score,
                owner=r.owner_id,
            )
        results = [item for item in items if item is not None]
        counts = {s: sum(1 for r in results if r.status == s) for s in ("created", "updated", "rejected")}
        return 200, BatchOut(**counts, results=results), {}

    return idempotency.run(ws, request, key.actor, body, work)


class LeadPage(BaseModel):
    leads: list[LeadOut]
    next_after_id: int | None = Field(description="pass as after_id for the next page; none at the end")


@router.get("", response_model=LeadPage, summary="Leads, newest first; or the lead of an external id")
def list_leads_route(
    request: Request,
    key: Reader,
    external_id: Annotated[
        str | None, Query(min_length=1, max_length=100, description="the lead's id in the system it came from")
    ] = None,
    stage: Annotated[str | None, Query(max_length=32)] = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> LeadPage:
    """Live leads, newest first, a page at a time; ``external_id`` finds the lead a CRM record id
    names (through merges)."""
    ws = _ws(request)
    with ws.reader() as conn:
        rows = list_leads(conn, limit=limit, after_id=after_id, stage=stage, owner=owner, external_id=external_id)
    return LeadPage(
        leads=[lead_out(r, ws.rules.scoring) for r in rows],
        next_after_id=rows[-1]["id"] if len(rows) == limit else None,
    )


@router.get("/{lead_id}", response_model=LeadWithEvents, summary="A lead with its event history")
def read_lead(request: Request, lead_id: LeadId, key: Reader) -> LeadWithEvents:
    ws = _ws(request)
    with ws.reader() as conn:
        row = get_lead(conn, lead_id)
        history = events.for_lead(conn, lead_id)
    return LeadWithEvents(**lead_out(row, ws.rules.scoring).model_dump(), events=[event_out(e) for e in history])


class ScoreNow(BaseModel):
    value: int
    engagement: int
    as_of: datetime


class ScoreOut(Score):
    lead_id: int
    mql_threshold: int
    config_version: str
    now: ScoreNow = Field(description="the score at this moment, engagement decayed to now (the worker stores it)")


@router.get("/{lead_id}/score", response_model=ScoreOut, summary="A lead's score and why")
def read_score(request: Request, lead_id: LeadId, key: Reader) -> ScoreOut:
    """The stored score with its explanation (rules and points, summing exactly to the score),
    the fit grade, engagement level and matrix position, and the score as of now."""
    ws = _ws(request)
    with ws.reader() as conn:
        row = get_lead(conn, lead_id)
    model = ws.rules.scoring
    out = lead_out(row, model).score
    now = ws.clock.now()
    current = model.score(row, model.decayed(model.engagement_of(row), now))
    return ScoreOut(
        **out.model_dump(),
        lead_id=lead_id,
        mql_threshold=model.mql_threshold,
        config_version=row["config_version"],
        now=ScoreNow(value=current.score, engagement=current.engagement, as_of=now),
    )


class StageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(min_length=1, max_length=32)
    reason: str | None = Field(default=None, max_length=300)


class StageOut(BaseModel):
    lead_id: int
    from_: str = Field(alias="from")
    to: str


@router.post("/{lead_id}/stage", response_model=StageOut, summary="Move a lead to another stage")
def move_stage(request: Request, lead_id: LeadId, body: Annotated[StageIn, Body()], key: Writer) -> Response:
    """A manual transition with a reason; a move that makes no sense (backwards, out of a closed
    state, to an unknown stage, a disqualification without a reason) is refused with 422."""
    ws = _ws(request)

    def work(conn: Connection) -> tuple[int, StageOut, dict[str, str]]:
        moved = change_stage(ws, conn, lead_id, body.stage, reason=body.reason, actor=key.actor)
        return 200, StageOut.model_validate(moved), {}

    return idempotency.run(ws, request, key.actor, (lead_id, body), work)
