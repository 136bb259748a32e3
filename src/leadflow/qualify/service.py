"""Manual stage changes, validated and recorded as events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from leadflow import events as ev
from leadflow.errors import Conflict
from leadflow.handoff.service import hand_off
from leadflow.leads.service import load_for_update, require_live, save_projections
from leadflow.workspace import Workspace


def change_stage(
    ws: Workspace,
    conn: Connection,
    lead_id: int,
    to: str,
    *,
    reason: str | None = None,
    actor: str = "api",
    occurred_at: datetime | None = None,
) -> dict[str, object]:
    """Move a lead to ``to``; refuses moves that make no sense (see ``StageModel.validate``).
    Entering the handoff stage hands the lead to sales (routed first if it has no owner)."""
    found = load_for_update(conn, [lead_id])
    require_live(found, [lead_id])
    lead = found[lead_id]
    if lead["erased_at"] is not None or lead["merged_into_id"] is not None:
        raise Conflict(f"lead {lead_id} was {'erased' if lead['erased_at'] else 'merged'}; it has no stage to change")
    ws.rules.stages.validate(lead["stage"], to, reason)
    now = ws.clock.now()
    at = occurred_at or now
    frm = lead["stage"]
    lead.update(stage=to, stage_entered_at=at, stage_reason=reason, updated_at=max(at, lead["updated_at"]))
    rows = [
        ev.event_row(
            type=ev.STAGE_CHANGED,
            lead_id=lead_id,
            occurred_at=at,
            recorded_at=now,
            actor=actor,
            config_version=ws.version,
            data={"from": frm, "to": to, "reason": reason},
            stage=to,
        )
    ]
    if to == ws.config.handoff.stage:
        rows.extend(hand_off(ws, conn, [(lead, at, actor)], now))
    save_projections(conn, [lead])
    ev.append(conn, rows)
    return {"lead_id": lead_id, "from": frm, "to": to}
