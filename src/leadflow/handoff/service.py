"""Handoff: a lead entering the handoff stage (MQL by default) is handed to sales with its
context; sales accepts it (it moves on to the accepted stage, SQL by default) or rejects it with
a reason, and the workspace's ``handoff.on_reject`` rules say whether a rejected lead is recycled
to nurture or disqualified.

The ``handoff_sent`` / ``handoff_accepted`` events feed the "Percent of MQLs meeting
qualification criteria" metric (accepted / handed off).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from leadflow import events as ev
from leadflow.config.conditions import compile_condition
from leadflow.db.tables import lead_events
from leadflow.errors import Conflict, InvalidInput, Problem
from leadflow.leads.schemas import lead_out
from leadflow.leads.service import get_lead, load_for_update, require_live, save_projections
from leadflow.notify.service import lead_lines, queue_email
from leadflow.routing import service as routing

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

HANDOFF_TYPES = (ev.HANDOFF_SENT, ev.HANDOFF_ACCEPTED, ev.HANDOFF_REJECTED)
TOUCH_TYPES = (ev.LEAD_CREATED, ev.LEAD_CAPTURED)
HISTORY_LIMIT = 100


def hand_off(
    ws: Workspace,
    conn: Connection,
    items: Sequence[tuple[dict[str, Any], datetime, str]],
    now: datetime,
    *,
    route: bool = True,
) -> list[dict[str, Any]]:
    """Leads that just entered the handoff stage: route those without an owner (unless the
    caller just did), notify owners who already had the lead, and return the events
    (assignments, then ``handoff_sent``)."""
    if not items:
        return []
    unowned = [(lead, at, actor) for lead, at, actor in items if route and lead.get("owner_id") is None]
    rows = routing.route_leads(ws, conn, unowned, now) if unowned else []
    just_assigned = {id(lead) for lead, _, _ in unowned} if route else {id(lead) for lead, _, _ in items}
    d = routing.directory(ws, conn)
    for lead, at, actor in items:
        rows.append(sent_event(ws, lead, at, actor, now))
        owner = d.by_id.get(lead.get("owner_id") or "")
        if (
            owner is not None
            and id(lead) not in just_assigned
            and ws.config.routing.notify_owner
            and not ws.quiet
            and now - at <= routing.NOTIFY_WITHIN
        ):
            queue_email(
                conn,
                to=owner.email,
                subject=f"Ready for sales: {lead.get('company') or lead.get('email') or lead['id']}",
                body=f"Hello {owner.name},\n\nYour lead is now {lead['stage']}: please accept or reject it.\n\n{lead_lines(lead)}\n",
                lead_id=lead["id"],
                reason="handoff_sent",
                now=now,
            )
    return rows


def sent_event(ws: Workspace, lead: dict[str, Any], at: datetime, actor: str, now: datetime) -> dict[str, Any]:
    return ev.event_row(
        type=ev.HANDOFF_SENT,
        lead_id=lead["id"],
        occurred_at=at,
        recorded_at=now,
        actor=actor,
        config_version=ws.version,
        data={
            "stage": lead["stage"],
            "owner": lead.get("owner_id"),
            "team": lead.get("team_id"),
            "score": lead.get("score"),
            "grade": lead.get("grade"),
        },
    )


def status(conn: Connection, lead_id: int) -> dict[str, Any] | None:
    """The latest handoff event of a lead (sent, accepted or rejected), if any."""
    row = conn.execute(
        select(lead_events.c.type, lead_events.c.occurred_at, lead_events.c.actor, lead_events.c.data)
        .where(lead_events.c.lead_id == lead_id, lead_events.c.type.in_(HANDOFF_TYPES))
        .order_by(lead_events.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    state = {ev.HANDOFF_SENT: "pending", ev.HANDOFF_ACCEPTED: "accepted", ev.HANDOFF_REJECTED: "rejected"}[row.type]
    return {"status": state, "at": row.occurred_at, "by": row.actor, **(row.data or {})}


def package(ws: Workspace, conn: Connection, lead_id: int) -> dict[str, Any]:
    """Everything sales needs to act on the lead without asking marketing: who, where from
    (every touch), the qualification answers, the score and why, the history and the notes."""
    row = get_lead(conn, lead_id)
    lead = lead_out(row, ws.rules.scoring)
    history = ev.for_lead(conn, lead_id)
    touches = [
        {
            "at": e["occurred_at"],
            "type": e["type"],
            **{
                k: e["data"].get(k)
                for k in ("source", "medium", "campaign", "capture_context", "landing_page", "referrer")
            },
            "utm": e["data"].get("utm"),
        }
        for e in history
        if e["type"] in TOUCH_TYPES
    ]
    counts: dict[str, int] = {}
    for e in history:
        counts[e["type"]] = counts.get(e["type"], 0) + 1
    notes = [
        {"at": e["occurred_at"], "by": e["actor"], "text": (e["personal"] or {}).get("text") or e["data"].get("text")}
        for e in history
        if e["type"] == "note"
    ]
    if row.get("notes"):
        notes.insert(0, {"at": row["created_at"], "by": "lead", "text": row["notes"]})
    assignment = next((e["data"] for e in reversed(history) if e["type"] == ev.LEAD_ASSIGNED), None)
    return {
        "lead": lead.model_dump(mode="json"),
        "handoff": status(conn, lead_id),
        "source": {"first_touch": lead.attribution.model_dump(mode="json"), "touches": touches},
        "qualification": {
            "criteria": {k: v.model_dump() for k, v in lead.criteria.items()},
            "answers": row.get("custom") or {},
            "pql": lead.pql,
            "pqa": lead.pqa,
            "competitor": bool(row.get("is_competitor")),
        },
        "score": lead.score.model_dump(mode="json"),
        "assignment": assignment,
        "activity": counts,
        "history": [
            {"at": e["occurred_at"], "type": e["type"], "actor": e["actor"], "stage": e["stage"]}
            for e in history[-HISTORY_LIMIT:]
        ],
        "notes": notes,
    }


def _pending(conn: Connection, ws: Workspace, lead_id: int) -> dict[str, Any]:
    found = load_for_update(conn, [lead_id])
    require_live(found, [lead_id])
    lead = found[lead_id]
    if lead["erased_at"] is not None or lead["merged_into_id"] is not None:
        raise Conflict(f"lead {lead_id} was {'erased' if lead['erased_at'] else 'merged'}")
    current = status(conn, lead_id)
    if current is None or current["status"] != "pending":
        said = "was never handed off" if current is None else f"was already {current['status']}"
        raise Conflict(f"lead {lead_id} {said}; only a pending handoff can be accepted or rejected")
    return lead


def _move(ws: Workspace, lead: dict[str, Any], to: str, reason: str | None, at: datetime, actor: str) -> dict[str, Any]:
    frm = lead["stage"]
    lead.update(stage=to, stage_entered_at=at, stage_reason=reason, updated_at=max(at, lead["updated_at"]))
    return ev.event_row(
        type=ev.STAGE_CHANGED,
        lead_id=lead["id"],
        occurred_at=at,
        recorded_at=at,
        actor=actor,
        config_version=ws.version,
        data={"from": frm, "to": to, "reason": reason, "via": "handoff"},
        stage=to,
    )


def accept(ws: Workspace, conn: Connection, lead_id: int, *, actor: str, note: str | None = None) -> dict[str, Any]:
    lead = _pending(conn, ws, lead_id)
    now = ws.clock.now()
    to = ws.config.handoff.accepted_stage
    rows = [
        ev.event_row(
            type=ev.HANDOFF_ACCEPTED,
            lead_id=lead_id,
            occurred_at=now,
            recorded_at=now,
            actor=actor,
            config_version=ws.version,
            data={"note": note, "from_stage": lead["stage"], "to_stage": to},
        )
    ]
    if ws.rules.stages.index(lead["stage"]) < ws.rules.stages.index(to):
        rows.append(_move(ws, lead, to, note or "accepted by sales", now, actor))
    save_projections(conn, [lead])
    ev.append(conn, rows)
    return {"lead_id": lead_id, "status": "accepted", "stage": lead["stage"]}


def reject(
    ws: Workspace, conn: Connection, lead_id: int, *, reason: str, actor: str, note: str | None = None
) -> dict[str, Any]:
    """Reject with one of the workspace's reasons; the first ``on_reject`` rule whose reasons
    (and condition) hold says where the lead goes, else ``handoff.otherwise`` (nurture)."""
    config = ws.config.handoff
    if reason not in config.reasons:
        raise InvalidInput(
            "unknown rejection reason", [Problem("reason", f"{reason!r} is not one of: {', '.join(config.reasons)}")]
        )
    lead = _pending(conn, ws, lead_id)
    now = ws.clock.now()
    to, rule = config.otherwise, None
    for i, r in enumerate(config.on_reject):
        if (r.reasons is None or reason in r.reasons) and compile_condition(r.when)(lead):
            to, rule = r.to, r.description or f"on_reject[{i}]"
            break
    rows = [
        ev.event_row(
            type=ev.HANDOFF_REJECTED,
            lead_id=lead_id,
            occurred_at=now,
            recorded_at=now,
            actor=actor,
            config_version=ws.version,
            data={
                "reason": reason,
                "note": note,
                "to_stage": to,
                "rule": rule or "otherwise",
                "owner": lead["owner_id"],
            },
        )
    ]
    if lead["stage"] != to:
        rows.append(_move(ws, lead, to, f"rejected by sales: {reason}", now, actor))
    # a recycled lead goes back to marketing: no owner, no deadline
    if to not in ("disqualified", "lost"):
        lead.update(owner_id=None, destination=f"nurture:{reason}" if to == "nurture" else None)
    lead.update(sla_next_at=None)
    save_projections(conn, [lead])
    ev.append(conn, rows)
    return {"lead_id": lead_id, "status": "rejected", "reason": reason, "stage": to}
