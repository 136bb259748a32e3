"""Routing: the functions the rest of leadflow calls (capture, handoff, the API, the CLI, the
worker), kept here so callers import them from one place.

- :mod:`leadflow.routing.assignment`: plan, assign and finish, the three steps that route a lead
  in the capturing transaction;
- :mod:`leadflow.routing.turns` and :mod:`leadflow.routing.strategies`: whose turn it is in a
  team, and how a skipped owner's turns are shared; :mod:`leadflow.routing.capacity`: caps;
- :mod:`leadflow.routing.tasks`: SLA reminders and escalations, and retrying waiting leads;
- :mod:`leadflow.routing.directory`: owners and teams.

:func:`reassign` (a manager's decision, or a rep taking a lead from the queue) lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from leadflow import events as ev
from leadflow.db.tables import CLOSED_STAGES
from leadflow.errors import Conflict, InvalidInput, Problem
from leadflow.leads.service import load_for_update, require_live, save_projections
from leadflow.routing.assignment import (  # noqa: F401 (re-exported)
    NAMED_BY_CALLER,
    NOTIFY_WITHIN,
    SALES_KINDS,
    Assignment,
    assign,
    assigned_email,
    finish,
    give,
    plan,
    plan_for_owner,
    route_leads,
    schedule,
)
from leadflow.routing.directory import (  # noqa: F401 (re-exported: callers import owners and teams from here)
    DIRECTORY_TTL_S,
    Directory,
    directory,
    forget_directory,
    get_owner,
    list_owners,
    list_teams,
    open_loads,
    sync_from_config,
    upsert_owners,
    upsert_teams,
)
from leadflow.routing.rules import Route
from leadflow.routing.tasks import retry_waiting, tick  # noqa: F401 (re-exported: the worker runs them)

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

CLOSED = CLOSED_STAGES


def reassign(
    ws: Workspace,
    conn: Connection,
    lead_id: int,
    *,
    owner: str | None,
    team: str | None,
    actor: str,
    reason: str | None,
) -> dict[str, Any]:
    """Give a lead to a named owner, or to the next owner of a team by its strategy (a manager's
    decision, or a rep taking a lead from the queue)."""
    found = load_for_update(conn, [lead_id])
    require_live(found, [lead_id])
    lead = found[lead_id]
    if lead["erased_at"] is not None or lead["merged_into_id"] is not None:
        raise Conflict(f"lead {lead_id} was {'erased' if lead['erased_at'] else 'merged'}; it cannot be assigned")
    now = ws.clock.now()
    d = directory(ws, conn)
    if owner is not None and owner not in d.by_id:
        raise InvalidInput("unknown owner", [Problem("owner", f"no active owner {owner!r}")])
    if team is not None and team not in d.by_team:
        raise InvalidInput("unknown team", [Problem("team", f"no team {team!r} with active owners")])
    kind, target = ("owner", owner) if owner is not None else ("team", team)
    assert target is not None
    route = Route(rule="manual", kind=kind, target=target, why=reason or f"assigned by {actor}")
    previous = lead["owner_id"]
    lead.update(owner_id=None, destination=route.destination)
    if lead.get("sla_policy") is None:
        sla = ws.rules.sla.deadline(lead, now)
        lead.update(sla_policy=sla.policy if sla else None, sla_due_at=sla.due_at if sla else None)
    a = Assignment(
        lead=lead,
        route=route,
        at=now,
        actor=actor,
        trace={"rule": "manual", "why": route.why, "previous_owner": previous},
    )
    if owner is not None:
        named = d.by_id[owner]
        give(a, named, "manual", f"{actor} chose {owner}")
    else:
        assign(ws, conn, [a])
    lead["assigned_at"] = now
    schedule(ws.rules, lead, now)
    lead["updated_at"] = max(lead["updated_at"], now)
    save_projections(conn, [lead])
    ev.append(conn, finish(ws, conn, [a], now))
    return a.trace
