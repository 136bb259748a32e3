"""Create and close opportunities; record revenue. Each change is an event on the lead, and the
lead's stage follows (opportunity on creation, customer on a win, lost when its last open
opportunity is lost)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from leadflow import events as ev
from leadflow.db.tables import accounts, leads, opportunities, revenue
from leadflow.errors import Conflict, InvalidInput, NotFound, Problem
from leadflow.leads.service import load_for_update, require_live
from leadflow.workspace import Workspace


def _move_stage(
    ws: Workspace, conn: Connection, lead: dict[str, Any], to: str, at: datetime, actor: str, why: str
) -> list[dict[str, Any]]:
    """Forward-only move driven by a sales outcome; returns the event rows."""
    stages = ws.rules.stages
    if to == lead["stage"]:
        return []
    if stages.index(to) >= 0 and stages.index(lead["stage"]) > stages.index(to):
        return []
    conn.execute(
        update(leads)
        .where(leads.c.id == lead["id"])
        .values(stage=to, stage_entered_at=at, stage_reason=why, updated_at=max(at, lead["updated_at"]))
    )
    row = ev.event_row(
        type=ev.STAGE_CHANGED,
        lead_id=lead["id"],
        occurred_at=at,
        recorded_at=ws.clock.now(),
        actor=actor,
        config_version=ws.version,
        data={"from": lead["stage"], "to": to, "why": why},
        stage=to,
    )
    lead["stage"] = to
    return [row]


def create_opportunity(
    ws: Workspace,
    conn: Connection,
    *,
    lead_id: int | None,
    name: str,
    amount: Decimal | None = None,
    product: str | None = None,
    pipeline_stage: str = "qualification",
    owner_id: str | None = None,
    account_id: int | None = None,
    created_at: datetime | None = None,
    external_id: str | None = None,
    actor: str = "api",
    source: str | None = None,
    probability: float | None = None,
    custom: dict[str, Any] | None = None,
) -> int:
    """Open a deal (a lead's stage becomes opportunity, forward only). ``created_at`` may be in
    the past: imported history opens where it opened."""
    if amount is not None and amount < 0:
        raise InvalidInput("invalid opportunity", [Problem("amount", "cannot be negative")])
    if (
        account_id is not None
        and conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first() is None
    ):
        raise NotFound(f"no account with id {account_id}", [Problem("account_id", "no such account")])
    if (
        external_id is not None
        and conn.execute(select(opportunities.c.id).where(opportunities.c.external_id == external_id)).first()
    ):
        raise Conflict(f"opportunity {external_id!r} exists already", [Problem("external_id", "already recorded")])
    at = created_at or ws.clock.now()
    lead = None
    if lead_id is not None:
        found = load_for_update(conn, [lead_id])
        require_live(found, [lead_id])
        lead = found[lead_id]
        owner_id = owner_id or lead["owner_id"]
        account_id = account_id or lead["account_id"]
    opp_id = conn.execute(
        insert(opportunities)
        .values(
            external_id=external_id,
            lead_id=lead_id,
            account_id=account_id,
            owner_id=owner_id,
            name=name,
            product=product,
            amount=amount,
            currency=ws.config.workspace.currency,
            pipeline_stage=pipeline_stage,
            status="open",
            created_at=at,
            source=source,
            probability=probability,
            custom=custom or None,
        )
        .returning(opportunities.c.id)
    ).scalar_one()
    if lead is not None:
        rows = [
            ev.event_row(
                type=ev.OPPORTUNITY_CREATED,
                lead_id=lead_id,
                occurred_at=at,
                recorded_at=ws.clock.now(),
                actor=actor,
                config_version=ws.version,
                data={"opportunity_id": opp_id, "amount": amount, "product": product},
            )
        ]
        rows += _move_stage(ws, conn, lead, "opportunity", at, actor, f"opportunity {opp_id} created")
        ev.append(conn, rows)
    return int(opp_id)


def close_opportunity(
    ws: Workspace,
    conn: Connection,
    opportunity_id: int,
    *,
    won: bool,
    amount: Decimal | None = None,
    reason: str | None = None,
    closed_at: datetime | None = None,
    actor: str = "api",
    reason_required: bool = True,
) -> None:
    """Close as won or lost. A win records the amount as new revenue and makes the lead a customer
    at the close time; a loss keeps its reason (history does not always say why: ``reason_required``)."""
    opp = conn.execute(select(opportunities).where(opportunities.c.id == opportunity_id).with_for_update()).first()
    if opp is None:
        raise NotFound(f"no opportunity with id {opportunity_id}")
    if opp.status != "open":
        raise Conflict(f"opportunity {opportunity_id} is already {opp.status}")
    if not won and reason_required and not (reason and reason.strip()):
        raise InvalidInput("a reason is required", [Problem("reason", "say why the opportunity was lost")])
    at = closed_at or ws.clock.now()
    if at < opp.created_at:
        raise InvalidInput("invalid close date", [Problem("closed_at", "cannot be before the opportunity was created")])
    final = amount if amount is not None else opp.amount
    conn.execute(
        update(opportunities)
        .where(opportunities.c.id == opportunity_id)
        .values(
            status="won" if won else "lost",
            closed_at=at,
            amount=final,
            lost_reason=None if won else reason,
            pipeline_stage="closed_won" if won else "closed_lost",
        )
    )
    if won and final:
        conn.execute(
            insert(revenue).values(
                account_id=opp.account_id,
                lead_id=opp.lead_id,
                opportunity_id=opportunity_id,
                amount=final,
                currency=opp.currency,
                recognized_at=at,
                kind="new",
            )
        )
    if opp.lead_id is None:
        return
    lead = load_for_update(conn, [opp.lead_id])[opp.lead_id]
    rows = [
        ev.event_row(
            type=ev.OPPORTUNITY_WON if won else ev.OPPORTUNITY_LOST,
            lead_id=opp.lead_id,
            occurred_at=at,
            recorded_at=ws.clock.now(),
            actor=actor,
            config_version=ws.version,
            data={"opportunity_id": opportunity_id, "amount": final, "reason": reason},
        )
    ]
    if won:
        rows += _move_stage(ws, conn, lead, ws.rules.stages.target, at, actor, f"opportunity {opportunity_id} won")
    else:
        still_open = conn.execute(
            select(func.count()).where(opportunities.c.lead_id == opp.lead_id, opportunities.c.status == "open")
        ).scalar_one()
        if not still_open and lead["stage"] != ws.rules.stages.target:
            rows += _move_stage(ws, conn, lead, "lost", at, actor, reason or "opportunity lost")
    ev.append(conn, rows)


def record_revenue(
    ws: Workspace,
    conn: Connection,
    *,
    amount: Decimal,
    recognized_at: datetime,
    kind: str = "recurring",
    lead_id: int | None = None,
    account_id: int | None = None,
    opportunity_id: int | None = None,
    external_id: str | None = None,
    actor: str = "api",
    custom: dict[str, Any] | None = None,
) -> int:
    """Revenue from a customer (new, recurring, expansion, or a refund as a negative amount)."""
    problems = []
    if kind not in ("new", "recurring", "expansion", "refund"):
        problems.append(Problem("kind", "must be new, recurring, expansion or refund"))
    if kind == "refund" and amount > 0:
        problems.append(Problem("amount", "a refund is a negative amount"))
    if kind != "refund" and amount < 0:
        problems.append(Problem("amount", "cannot be negative (record a refund instead)"))
    if lead_id is None and account_id is None and opportunity_id is None:
        problems.append(Problem("lead_id", "say whose revenue it is: lead_id, account_id or opportunity_id"))
    if problems:
        raise InvalidInput("invalid revenue", problems)
    if opportunity_id is not None:
        opp = conn.execute(
            select(opportunities.c.lead_id, opportunities.c.account_id).where(opportunities.c.id == opportunity_id)
        ).first()
        if opp is None:
            raise NotFound(
                f"no opportunity with id {opportunity_id}", [Problem("opportunity_id", "no such opportunity")]
            )
        lead_id = lead_id or opp.lead_id
        account_id = account_id or opp.account_id
    if lead_id is not None:
        found = load_for_update(conn, [lead_id])
        if lead_id not in found:
            raise NotFound(f"no lead with id {lead_id}", [Problem("lead_id", "no such lead")])
        account_id = account_id or found[lead_id]["account_id"]
    if (
        external_id is not None
        and conn.execute(select(revenue.c.id).where(revenue.c.external_id == external_id)).first()
    ):
        raise Conflict(f"revenue {external_id!r} was recorded already", [Problem("external_id", "already recorded")])
    revenue_id = conn.execute(
        insert(revenue)
        .values(
            external_id=external_id,
            account_id=account_id,
            lead_id=lead_id,
            opportunity_id=opportunity_id,
            amount=amount,
            currency=ws.config.workspace.currency,
            recognized_at=recognized_at,
            kind=kind,
            custom=custom or None,
        )
        .returning(revenue.c.id)
    ).scalar_one()
    if lead_id is not None:
        ev.append(
            conn,
            [
                ev.event_row(
                    type=ev.REVENUE_RECORDED,
                    lead_id=lead_id,
                    occurred_at=recognized_at,
                    recorded_at=ws.clock.now(),
                    actor=actor,
                    config_version=ws.version,
                    data={"revenue_id": revenue_id, "amount": amount, "kind": kind, "opportunity_id": opportunity_id},
                )
            ],
        )
    return int(revenue_id)
