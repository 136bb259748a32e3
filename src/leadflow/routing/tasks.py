"""Routing's timed work: ``sla.escalate`` fires due reminders and escalation steps, and
``routing.retry`` gives leads waiting in a team (caps, absence) another try."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, select, update

from leadflow import events as ev
from leadflow.db.tables import CLOSED_STAGES, leads, owners
from leadflow.leads.service import save_projections
from leadflow.notify import service as notifications
from leadflow.notify.service import lead_lines, queue_email
from leadflow.routing.assignment import Assignment, assign, assigned_email, finish, schedule
from leadflow.routing.availability import Candidate
from leadflow.routing.directory import Directory, directory
from leadflow.routing.rules import Route

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

CLOSED = CLOSED_STAGES


def tick(ws: Workspace, conn: Connection, *, batch: int = 200) -> int:
    """``sla.escalate``: fire due reminders and escalation steps, each exactly once.

    Due leads are claimed with ``FOR UPDATE SKIP LOCKED`` and their step advanced in the same
    transaction as the action and its event, so concurrent workers never fire a step twice."""
    now = ws.clock.now()
    due = [
        dict(r._mapping)
        for r in conn.execute(
            select(leads)
            .where(leads.c.sla_next_at.is_not(None), leads.c.sla_next_at <= now)
            .order_by(leads.c.sla_next_at, leads.c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ]
    if not due:
        return 0
    sla = ws.rules.sla
    d = directory(ws, conn)
    rows: list[dict[str, Any]] = []
    for lead in due:
        steps = sla.steps(lead["sla_policy"], lead["sla_due_at"])
        step_no = lead["sla_step"]
        if (
            step_no >= len(steps)
            or lead["first_contact_at"] is not None
            or lead["stage"] in CLOSED
            or lead["erased_at"] is not None
            or lead["merged_into_id"] is not None
        ):
            lead["sla_next_at"] = None
            continue
        step = steps[step_no]
        rows.append(_fire(ws, conn, d, lead, step.action, step_no, now))
        lead["sla_step"] = step_no + 1
        lead["sla_next_at"] = steps[step_no + 1].at if step_no + 1 < len(steps) else None
        if lead["sla_next_at"] is not None and lead["sla_next_at"] < now:
            lead["sla_next_at"] = now  # a late worker catches up one step per pass, each its own event
    conn.execute(
        update(leads)
        .where(leads.c.id == bindparam("_id"))
        .values(
            sla_step=bindparam("_step"),
            sla_next_at=bindparam("_next"),
            owner_id=bindparam("_owner"),
            team_id=bindparam("_team"),
            destination=bindparam("_dest"),
            assigned_at=bindparam("_assigned"),
        ),
        [
            {
                "_id": x["id"],
                "_step": x["sla_step"],
                "_next": x["sla_next_at"],
                "_owner": x["owner_id"],
                "_team": x["team_id"],
                "_dest": x["destination"],
                "_assigned": x["assigned_at"],
            }
            for x in due
        ],
    )
    ev.append(conn, rows)
    return len(due)


def _fire(
    ws: Workspace, conn: Connection, d: Directory, lead: dict[str, Any], action: str, step_no: int, now: datetime
) -> dict[str, Any]:
    owner = d.by_id.get(lead["owner_id"] or "")
    data: dict[str, Any] = {
        "policy": lead["sla_policy"],
        "due_at": lead["sla_due_at"],
        "step": step_no,
        "action": action,
        "owner": lead["owner_id"],
    }
    subject = lead.get("company") or lead.get("email") or f"lead {lead['id']}"
    notify = ws.config.routing.notify_owner and not ws.quiet
    if action == "remind":
        if owner is not None and notify:
            queue_email(
                conn,
                to=owner.email,
                subject=f"Reminder: respond to {subject} by {lead['sla_due_at']:%H:%M} UTC",
                body=f"Hello {owner.name},\n\nThis lead is waiting for your first contact.\n\n{lead_lines(lead)}\n",
                lead_id=lead["id"],
                reason="sla_reminder",
                now=now,
            )
        kind = ev.SLA_REMINDED
    else:
        kind = ev.SLA_ESCALATED
        if action == "notify_manager":
            manager = d.by_id.get(owner.manager or "") if owner else None
            if manager is None and owner is not None and owner.manager:  # managers need not take leads
                manager = _inactive_owner(conn, owner.manager, ws)
            data["notified"] = manager.id if manager else None
            if manager is not None and notify:
                queue_email(
                    conn,
                    to=manager.email,
                    subject=f"Overdue lead: {subject} ({lead['owner_id']} has not responded)",
                    body=f"{lead['owner_id']} has not contacted this lead by its deadline.\n\n{lead_lines(lead)}\n",
                    lead_id=lead["id"],
                    reason="sla_escalated",
                    now=now,
                )
        elif action == "reassign":
            previous = lead["owner_id"]
            team = lead["team_id"] or (owner.team if owner else None)
            a = Assignment(
                lead=lead,
                route=Route(
                    rule="sla_escalation", kind="team", target=team or "", why="overdue: the next owner in turn"
                ),
                at=now,
                actor="system",
                trace={"rule": "sla_escalation", "why": "overdue: the next owner in turn", "previous_owner": previous},
            )
            if team is not None:
                assign(ws, conn, [a], exclude={previous} if previous else ())
            if lead["owner_id"] is None:  # nobody else can take it: it stays where it was
                lead["owner_id"] = previous
                a.trace["kept"] = "no other owner can take it"
            else:
                lead["assigned_at"] = now
                if notify and (new := d.by_id.get(lead["owner_id"])) is not None:
                    notifications.queue(conn, [assigned_email(new, a, now)])
            data.update(to=lead["owner_id"], trace=a.trace)
        elif action == "return_to_pool":
            data["team"] = lead["team_id"]
            lead["owner_id"] = None
            lead["destination"] = f"queue:{lead['team_id']}" if lead["team_id"] else lead["destination"]
    return ev.event_row(
        type=kind,
        lead_id=lead["id"],
        occurred_at=now,
        recorded_at=now,
        actor="system",
        config_version=ws.version,
        data=data,
    )


def _inactive_owner(conn: Connection, owner_id: str, ws: Workspace) -> Candidate | None:
    row = conn.execute(select(owners).where(owners.c.id == owner_id)).first()
    return Candidate.from_row(row._mapping, ws.config.workspace.timezone) if row is not None else None


def retry_waiting(ws: Workspace, conn: Connection, *, batch: int = 200) -> int:
    """``routing.retry``: leads routed to a team that nobody could take (caps, absence) get
    another try, oldest first. Returns how many found an owner."""
    waiting = [
        dict(r._mapping)
        for r in conn.execute(
            select(leads)
            .where(
                leads.c.owner_id.is_(None),
                leads.c.destination.like("team:%"),
                leads.c.stage.not_in(CLOSED),
                leads.c.merged_into_id.is_(None),
                leads.c.erased_at.is_(None),
            )
            .order_by(leads.c.created_at, leads.c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ]
    if not waiting:
        return 0
    now = ws.clock.now()
    items = [
        Assignment(
            lead=lead,
            route=Route(
                rule="retry", kind="team", target=lead["destination"].split(":", 1)[1], why="waiting for an owner"
            ),
            at=now,
            actor="system",
            trace={"rule": "retry", "why": "waited for an owner with capacity"},
        )
        for lead in waiting
    ]
    assign(ws, conn, items)
    placed = [a for a in items if a.lead["owner_id"] is not None]
    if not placed:
        return 0
    for a in placed:
        a.lead["assigned_at"] = now
        schedule(ws.rules, a.lead, now)
    save_projections(conn, [a.lead for a in placed])
    ev.append(conn, finish(ws, conn, placed, now))
    return len(placed)
