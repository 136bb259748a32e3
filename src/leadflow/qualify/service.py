"""Stage changes by a person or from a system a lead came from, validated and recorded as events.

One function for every door: the API, the CLI, the dashboard, the review queue and the import of
a team's history all move stages through :func:`change_stages`, so every metric reads an imported
stage like one moved by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from leadflow import events as ev
from leadflow.errors import Conflict, InvalidInput
from leadflow.handoff.service import hand_off
from leadflow.leads.service import load_for_update, require_live, save_projections
from leadflow.workspace import Workspace


@dataclass(frozen=True)
class StageMove:
    lead_id: int
    to: str
    at: datetime | None = None  # default now
    reason: str | None = None
    actor: str = "api"


@dataclass(frozen=True)
class Skipped:
    index: int  # of the move in the moves given
    move: StageMove
    why: str


def change_stages(
    ws: Workspace,
    conn: Connection,
    moves: Sequence[StageMove],
    *,
    strict: bool = True,
    leads: Mapping[int, dict[str, Any]] | None = None,
) -> tuple[list[dict[str, object]], list[Skipped]]:
    """Apply ``moves`` in order. A move that makes no sense (``StageModel.validate``) raises when
    ``strict``; otherwise it is skipped and returned with why (an import reports it and goes on),
    and a move to the stage the lead is in already is no move. Entering the handoff stage hands
    the lead to sales (routed first if it has no owner), except for history. ``leads`` are rows
    this transaction holds already (an import's batch it just wrote), not read again."""
    if not moves:
        return [], []
    ids = {m.lead_id for m in moves}
    found = {i: leads[i] for i in ids if i in leads} if leads else {}
    found.update(load_for_update(conn, ids - set(found)))
    require_live(found, ids)
    now = ws.clock.now()
    rows: list[dict[str, object]] = []
    handoffs = []
    done: list[dict[str, object]] = []
    skipped: list[Skipped] = []
    changed: dict[int, dict[str, object]] = {}
    for index, move in enumerate(moves):
        lead = found[move.lead_id]
        if lead["erased_at"] is not None or lead["merged_into_id"] is not None:
            state = "erased" if lead["erased_at"] else "merged"
            raise Conflict(f"lead {move.lead_id} was {state}; it has no stage to change")
        if not strict and move.to == lead["stage"]:
            continue
        try:
            ws.rules.stages.validate(lead["stage"], move.to, move.reason)
        except InvalidInput as exc:
            if strict:
                raise
            skipped.append(Skipped(index, move, "; ".join(p.message for p in exc.problems) or exc.message))
            continue
        at = move.at or now
        frm = lead["stage"]
        lead.update(
            stage=move.to, stage_entered_at=at, stage_reason=move.reason, updated_at=max(at, lead["updated_at"])
        )
        rows.append(
            ev.event_row(
                type=ev.STAGE_CHANGED,
                lead_id=move.lead_id,
                occurred_at=at,
                recorded_at=now,
                actor=move.actor,
                config_version=ws.version,
                data={"from": frm, "to": move.to, "reason": move.reason},
                stage=move.to,
            )
        )
        if move.to == ws.config.handoff.stage and move.actor != ev.HISTORY:
            handoffs.append((lead, at, move.actor))
        changed[move.lead_id] = lead
        done.append({"lead_id": move.lead_id, "from": frm, "to": move.to})
    if handoffs:
        rows.extend(hand_off(ws, conn, handoffs, now))
    save_projections(conn, list(changed.values()))
    ev.append(conn, rows)
    return done, skipped


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
    done, _ = change_stages(ws, conn, [StageMove(lead_id, to, occurred_at, reason, actor)])
    return done[0]
