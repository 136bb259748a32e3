"""Routing over HTTP: why a lead has its owner, (re)assigning it, the handoff to sales, and the
owners and teams that leads are routed to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, select

from leadflow import events as ev
from leadflow.access.keys import ApiKey
from leadflow.api import idempotency
from leadflow.api.deps import api_key, workspace
from leadflow.config.workspace import Owner, Team
from leadflow.db.tables import lead_events
from leadflow.handoff import service as handoff
from leadflow.leads.service import get_lead
from leadflow.routing import service as routing

router = APIRouter(prefix="/api/v1", tags=["routing"])
LeadId = Annotated[int, Path(ge=1, le=2**62, description="lead id")]
ObjectId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="owner or team id")]
Reader = Annotated[ApiKey, Depends(api_key("leads:read"))]
Writer = Annotated[ApiKey, Depends(api_key("leads:write"))]
Admin = Annotated[ApiKey, Depends(api_key("owners:write"))]


# -- why this owner --------------------------------------------------------------------------


class AssignmentOut(BaseModel):
    lead_id: int
    owner: str | None
    team: str | None
    destination: str | None
    assigned_at: datetime | None
    sla_policy: str | None
    sla_due_at: datetime | None
    first_contact_at: datetime | None
    next_sla_step_at: datetime | None = Field(description="when the next reminder or escalation fires, if any")
    trace: dict[str, Any] | None = Field(
        description="the latest assignment's trace: rule matched, strategy, candidates and why each was skipped"
    )
    history: list[dict[str, Any]] = Field(description="every assignment and escalation, oldest first")


@router.get("/leads/{lead_id}/assignment", response_model=AssignmentOut, summary="Who owns a lead, and why")
def read_assignment(request: Request, lead_id: LeadId, key: Reader) -> AssignmentOut:
    ws = workspace(request)
    with ws.reader() as conn:
        lead = get_lead(conn, lead_id)
        rows = conn.execute(
            select(lead_events.c.type, lead_events.c.occurred_at, lead_events.c.actor, lead_events.c.data)
            .where(
                lead_events.c.lead_id == lead_id,
                lead_events.c.type.in_((ev.LEAD_ASSIGNED, ev.SLA_REMINDED, ev.SLA_ESCALATED, ev.SLA_STOPPED)),
            )
            .order_by(lead_events.c.id)
        ).all()
    history = [{"type": r.type, "at": r.occurred_at, "actor": r.actor, **(r.data or {})} for r in rows]
    trace = next((r.data for r in reversed(rows) if r.type == ev.LEAD_ASSIGNED), None)
    return AssignmentOut(
        lead_id=lead_id,
        owner=lead["owner_id"],
        team=lead["team_id"],
        destination=lead["destination"],
        assigned_at=lead["assigned_at"],
        sla_policy=lead["sla_policy"],
        sla_due_at=lead["sla_due_at"],
        first_contact_at=lead["first_contact_at"],
        next_sla_step_at=lead["sla_next_at"],
        trace=trace,
        history=history,
    )


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(default=None, max_length=64, description="give the lead to this owner")
    team: str | None = Field(default=None, max_length=64, description="or to the next owner of this team")
    reason: str | None = Field(default=None, max_length=300)

    @model_validator(mode="after")
    def _one(self) -> AssignIn:
        if (self.owner is None) == (self.team is None):
            raise ValueError("give exactly one of `owner` or `team`")
        return self


@router.post("/leads/{lead_id}/assign", response_model=dict[str, Any], summary="Assign a lead to an owner or team")
def assign_lead(request: Request, lead_id: LeadId, body: Annotated[AssignIn, Body()], key: Writer) -> Response:
    """A manager's decision, or a rep taking a lead from a queue. The SLA deadline stays; the
    assignment and its trace are recorded like any other."""
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, dict[str, Any], dict[str, str]]:
        trace = routing.reassign(
            ws, conn, lead_id, owner=body.owner, team=body.team, actor=key.actor, reason=body.reason
        )
        return 200, {"lead_id": lead_id, **trace}, {}

    return idempotency.run(ws, request, key.actor, (lead_id, body), work)


# -- handoff ---------------------------------------------------------------------------------


@router.get("/leads/{lead_id}/handoff", response_model=dict[str, Any], summary="The handoff package of a lead")
def read_handoff(request: Request, lead_id: LeadId, key: Reader) -> dict[str, Any]:
    """Who the lead is, where it came from (every touch), its qualification answers, its score
    and why, its assignment, its history and notes, and the handoff status."""
    ws = workspace(request)
    with ws.reader() as conn:
        return handoff.package(ws, conn, lead_id)


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=1000)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=64, description="one of the workspace's handoff.reasons")
    note: str | None = Field(default=None, max_length=1000)


class HandoffOut(BaseModel):
    lead_id: int
    status: Literal["accepted", "rejected"]
    stage: str
    reason: str | None = None


@router.post("/leads/{lead_id}/handoff/accept", response_model=HandoffOut, summary="Sales accepts a lead")
def accept_handoff(request: Request, lead_id: LeadId, body: Annotated[AcceptIn, Body()], key: Writer) -> Response:
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, HandoffOut, dict[str, str]]:
        return 200, HandoffOut(**handoff.accept(ws, conn, lead_id, actor=key.actor, note=body.note)), {}

    return idempotency.run(ws, request, key.actor, (lead_id, body), work)


@router.post(
    "/leads/{lead_id}/handoff/reject", response_model=HandoffOut, summary="Sales rejects a lead, with a reason"
)
def reject_handoff(request: Request, lead_id: LeadId, body: Annotated[RejectIn, Body()], key: Writer) -> Response:
    """The reason decides where the lead goes (``handoff.on_reject``): recycled to nurture, or
    disqualified."""
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, HandoffOut, dict[str, str]]:
        out = handoff.reject(ws, conn, lead_id, reason=body.reason, actor=key.actor, note=body.note)
        return 200, HandoffOut(**out), {}

    return idempotency.run(ws, request, key.actor, (lead_id, body), work)


# -- owners and teams ------------------------------------------------------------------------


class OwnerOut(BaseModel):
    id: str
    name: str
    email: str | None
    team: str | None
    manager: str | None
    timezone: str | None
    active: bool
    weight: int
    capacity_day: int | None
    capacity_week: int | None
    languages: list[str]
    skills: list[str]
    working_hours: dict[str, list[int]] | None
    out_of_office: list[dict[str, str]]
    managed_in: Literal["config", "api"]


def _owner_out(row: dict[str, Any]) -> OwnerOut:
    return OwnerOut(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        team=row["team_id"],
        manager=row["manager_id"],
        timezone=row["timezone"],
        active=row["active"],
        weight=row["weight"],
        capacity_day=row["capacity_day"],
        capacity_week=row["capacity_week"],
        languages=row["languages"] or [],
        skills=row["skills"] or [],
        working_hours=row["working_hours"],
        out_of_office=row["out_of_office"] or [],
        managed_in=row["origin"],
    )


class TeamOut(BaseModel):
    id: str
    name: str
    strategy: str
    active: bool
    members: int = Field(description="active owners")
    managed_in: Literal["config", "api"]


@router.get("/owners", response_model=list[OwnerOut], summary="Owners")
def read_owners(
    request: Request, key: Reader, team: Annotated[str | None, Query(max_length=64)] = None
) -> list[OwnerOut]:
    ws = workspace(request)
    with ws.reader() as conn:
        return [_owner_out(r) for r in routing.list_owners(conn, team=team)]


@router.get("/owners/{owner_id}", response_model=OwnerOut, summary="One owner")
def read_owner(request: Request, owner_id: ObjectId, key: Reader) -> OwnerOut:
    ws = workspace(request)
    with ws.reader() as conn:
        return _owner_out(routing.get_owner(conn, owner_id))


class OwnersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teams: list[Team] = Field(default_factory=list, max_length=1000, description="created or updated first")
    owners: list[Owner] = Field(default_factory=list, max_length=10_000)


class Upserted(BaseModel):
    teams: dict[str, int]
    owners: dict[str, int]


@router.post("/owners", response_model=Upserted, summary="Add or change owners and teams")
def upsert(request: Request, body: Annotated[OwnersIn, Body()], key: Admin) -> Response:
    """Owners and teams the workspace file does not declare (the file stays the source of truth
    for its own). All or nothing: one bad owner rejects the call, naming it."""
    ws = workspace(request)

    def work(conn: Connection) -> tuple[int, Upserted, dict[str, str]]:
        t = routing.upsert_teams(ws, conn, body.teams)
        o = routing.upsert_owners(ws, conn, body.owners)
        return 200, Upserted(teams=t, owners=o), {}

    return idempotency.run(ws, request, key.actor, body, work)


@router.get("/teams", response_model=list[TeamOut], summary="Teams")
def read_teams(request: Request, key: Reader) -> list[TeamOut]:
    ws = workspace(request)
    with ws.reader() as conn:
        return [
            TeamOut(
                id=t["id"],
                name=t["name"],
                strategy=t["strategy"],
                active=t["active"],
                members=t["members"],
                managed_in=t["origin"],
            )
            for t in routing.list_teams(conn)
        ]
