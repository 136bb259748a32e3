"""The quality review queue: leads that need a human look, and the decisions people make.

Review rules in the workspace file flag a lead (borderline score, incomplete but eager,
conflicting signals). A person accepts or rejects it with a reason; the decision is kept on the
item and as a ``review_decided`` event: labelled data for refining scoring later. Accepting moves
a lead that is not yet marketing-qualified to MQL; rejecting disqualifies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, insert, select, update

from leadflow import events as ev
from leadflow.db.fastpath import Prepared
from leadflow.db.tables import review_items
from leadflow.errors import Conflict, InvalidInput, NotFound, Problem
from leadflow.qualify.criteria import ReviewFlag
from leadflow.workspace import Workspace

Decision = Literal["accept", "reject"]

_OPEN_QUALITY = Prepared(
    select(review_items.c.lead_id).where(
        review_items.c.lead_id.in_(bindparam("ids", expanding=True)),
        review_items.c.kind == "quality",
        review_items.c.status == "open",
    )
)
_INSERT_ITEM = Prepared(
    insert(review_items),
    ("kind", "lead_id", "other_lead_id", "rule", "reason", "evidence", "status", "created_at", "config_version"),
)


def open_items(
    ws: Workspace, conn: Connection, flagged: Sequence[tuple[dict[str, Any], ReviewFlag]], now: datetime
) -> list[dict[str, Any]]:
    """Open a quality review item per flagged lead that has none open; returns the event rows."""
    if not flagged:
        return []
    ids = [lead["id"] for lead, _ in flagged]
    already = {row["lead_id"] for row in _OPEN_QUALITY.execute(conn, {"ids": ids})}
    rows, events = [], []
    for lead, flag in flagged:
        if lead["id"] in already:
            continue
        already.add(lead["id"])
        evidence = {
            "score": lead["score"],
            "grade": lead["grade"],
            "stage": lead["stage"],
            "criteria": lead.get("criteria"),
        }
        rows.append(
            {
                "kind": "quality",
                "lead_id": lead["id"],
                "other_lead_id": None,
                "rule": flag.rule,
                "reason": flag.reason,
                "evidence": evidence,
                "status": "open",
                "created_at": now,
                "config_version": ws.version,
            }
        )
        events.append(
            ev.event_row(
                type=ev.REVIEW_OPENED,
                lead_id=lead["id"],
                occurred_at=now,
                recorded_at=now,
                actor="system",
                config_version=ws.version,
                data={"kind": "quality", "rule": flag.rule, "reason": flag.reason},
            )
        )
    _INSERT_ITEM.executemany(conn, rows)
    return events


def list_items(
    conn: Connection,
    *,
    kind: str = "quality",
    status: str | None = "open",
    limit: int = 50,
    after_id: int | None = None,
) -> list[dict[str, Any]]:
    query = select(review_items).where(review_items.c.kind == kind).order_by(review_items.c.id).limit(limit)
    if status is not None:
        query = query.where(review_items.c.status == status)
    if after_id is not None:
        query = query.where(review_items.c.id > after_id)
    return [dict(row._mapping) for row in conn.execute(query)]


def decide(
    ws: Workspace, conn: Connection, item_id: int, decision: str, *, reason: str | None, actor: str
) -> dict[str, Any]:
    """Accept or reject a quality review item, with a reason; the lead's stage follows."""
    from leadflow.qualify.service import change_stage

    if decision not in ("accept", "reject"):
        raise InvalidInput("invalid decision", [Problem("decision", "must be 'accept' or 'reject'")])
    if not (reason and reason.strip()):
        raise InvalidInput(
            "a reason is required", [Problem("reason", "say why, so the decision can teach the scoring")]
        )
    item = conn.execute(select(review_items).where(review_items.c.id == item_id).with_for_update()).first()
    if item is None or item.kind != "quality":
        raise NotFound(f"no quality review item with id {item_id}")
    if item.status != "open":
        raise Conflict(f"review item {item_id} was already {item.status}")
    now = ws.clock.now()
    status = "accepted" if decision == "accept" else "rejected"
    conn.execute(
        update(review_items)
        .where(review_items.c.id == item_id)
        .values(status=status, decided_at=now, decided_by=actor, decision_reason=reason.strip())
    )
    ev.append(
        conn,
        [
            ev.event_row(
                type=ev.REVIEW_DECIDED,
                lead_id=item.lead_id,
                occurred_at=now,
                recorded_at=now,
                actor=actor,
                config_version=ws.version,
                data={
                    "item_id": item_id,
                    "rule": item.rule,
                    "decision": decision,
                    "label": int(decision == "accept"),
                    "reason": reason.strip(),
                },
            )
        ],
    )
    from leadflow.leads.service import get_lead

    lead = get_lead(conn, item.lead_id)
    stages = ws.rules.stages
    moved = None
    if decision == "accept" and 0 <= stages.index(lead["stage"]) < stages.index("mql"):
        moved = change_stage(ws, conn, item.lead_id, "mql", reason=f"accepted in review: {reason.strip()}", actor=actor)
    elif decision == "reject" and lead["stage"] not in ("disqualified", stages.order[-1]):
        moved = change_stage(
            ws, conn, item.lead_id, "disqualified", reason=f"rejected in review: {reason.strip()}", actor=actor
        )
    return {"id": item_id, "status": status, "lead_id": item.lead_id, "stage": moved["to"] if moved else lead["stage"]}
