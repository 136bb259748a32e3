"""Open and close opportunities; record revenue. Each change is an event on the lead, and the
lead's stage follows (opportunity on creation, customer on a win, lost when its last open
opportunity is lost).

One implementation for every door: :func:`open_deals` and :func:`close_deals` take a batch (an
import's 500 rows: a few statements, not a few per deal), and the API's
:func:`create_opportunity` and :func:`close_opportunity` are those for one deal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from leadflow import events as ev
from leadflow.db.locks import lock_names
from leadflow.db.tables import accounts, opportunities, revenue
from leadflow.errors import Conflict, InvalidInput, NotFound, Problem
from leadflow.leads.service import load_for_update, require_live, save_projections
from leadflow.workspace import Workspace

_INSERT_DEALS = insert(opportunities).returning(opportunities.c.id, sort_by_parameter_order=True)
_CLOSE_DEAL = (
    update(opportunities)
    .where(opportunities.c.id == bindparam("_id"))
    .values(
        status=bindparam("_status"),
        closed_at=bindparam("_closed_at"),
        amount=bindparam("_amount"),
        lost_reason=bindparam("_lost_reason"),
        pipeline_stage=bindparam("_pipeline_stage"),
    )
)


@dataclass
class NewDeal:
    lead_id: int | None
    name: str
    amount: Decimal | None = None
    product: str | None = None
    pipeline_stage: str = "qualification"
    owner_id: str | None = None
    account_id: int | None = None
    created_at: datetime | None = None  # default now; history opens where it opened
    external_id: str | None = None
    actor: str = "api"
    source: str | None = None
    probability: float | None = None
    custom: dict[str, Any] | None = None


@dataclass
class Closing:
    opportunity_id: int
    won: bool
    amount: Decimal | None = None
    reason: str | None = None
    closed_at: datetime | None = None  # default now
    actor: str = "api"
    reason_required: bool = True  # history does not always say why a deal was lost


def _move_stage(
    ws: Workspace, lead: dict[str, Any], to: str, at: datetime, actor: str, why: str
) -> list[dict[str, Any]]:
    """Forward-only move driven by a sales outcome, on the lead's row in memory; the event rows."""
    stages = ws.rules.stages
    if to == lead["stage"]:
        return []
    if stages.index(to) >= 0 and stages.index(lead["stage"]) > stages.index(to):
        return []
    frm = lead["stage"]
    lead.update(stage=to, stage_entered_at=at, stage_reason=why, updated_at=max(at, lead["updated_at"]))
    return [
        ev.event_row(
            type=ev.STAGE_CHANGED,
            lead_id=lead["id"],
            occurred_at=at,
            recorded_at=ws.clock.now(),
            actor=actor,
            config_version=ws.version,
            data={"from": frm, "to": to, "why": why},
            stage=to,
        )
    ]


def open_deals(ws: Workspace, conn: Connection, deals: Sequence[NewDeal]) -> list[int]:
    """Open deals, in order; their ids. A deal's lead moves to opportunity (forward only)."""
    if not deals:
        return []
    for d in deals:
        if d.amount is not None and d.amount < 0:
            raise InvalidInput("invalid opportunity", [Problem("amount", "cannot be negative")])
    account_ids = {d.account_id for d in deals if d.account_id is not None}
    if account_ids:
        found = set(conn.execute(select(accounts.c.id).where(accounts.c.id.in_(account_ids))).scalars())
        if missing := sorted(account_ids - found):
            raise NotFound(f"no account with id {missing[0]}", [Problem("account_id", "no such account")])
    external = [d.external_id for d in deals if d.external_id is not None]
    lock_names(conn, [f"opportunity:{x}" for x in external])  # the check and the write, one at a time
    if external:
        twice = [x for x, n in Counter(external).items() if n > 1]
        known = twice or list(
            conn.execute(select(opportunities.c.external_id).where(opportunities.c.external_id.in_(external))).scalars()
        )
        if known:
            raise Conflict(f"opportunity {known[0]!r} exists already", [Problem("external_id", "already recorded")])
    lead_ids = {d.lead_id for d in deals if d.lead_id is not None}
    found_leads = load_for_update(conn, lead_ids)
    require_live(found_leads, lead_ids)
    now = ws.clock.now()
    rows = []
    for d in deals:
        lead = found_leads.get(d.lead_id) if d.lead_id is not None else None
        rows.append(
            {
                "external_id": d.external_id,
                "lead_id": d.lead_id,
                "account_id": d.account_id or (lead["account_id"] if lead else None),
                "owner_id": d.owner_id or (lead["owner_id"] if lead else None),
                "name": d.name,
                "product": d.product,
                "amount": d.amount,
                "currency": ws.config.workspace.currency,
                "pipeline_stage": d.pipeline_stage,
                "status": "open",
                "probability": d.probability,
                "created_at": d.created_at or now,
                "closed_at": None,
                "lost_reason": None,
                "source": d.source,
                "custom": d.custom or None,
            }
        )
    ids = [int(i) for i in conn.execute(_INSERT_DEALS, rows).scalars().all()]
    events: list[dict[str, Any]] = []
    changed: dict[int, dict[str, Any]] = {}
    # stages follow the deals in time order, whatever order a file lists them in
    for d, row, opp_id in sorted(zip(deals, rows, ids, strict=True), key=lambda item: item[1]["created_at"]):
        if d.lead_id is None:
            continue
        lead = found_leads[d.lead_id]
        at = row["created_at"]
        events.append(
            ev.event_row(
                type=ev.OPPORTUNITY_CREATED,
                lead_id=d.lead_id,
                occurred_at=at,
                recorded_at=now,
                actor=d.actor,
                config_version=ws.version,
                data={"opportunity_id": opp_id, "amount": d.amount, "product": d.product},
            )
        )
        moved = _move_stage(ws, lead, "opportunity", at, d.actor, f"opportunity {opp_id} created")
        if moved:
            events += moved
            changed[d.lead_id] = lead
    save_projections(conn, list(changed.values()))
    ev.append(conn, events)
    return ids


def close_deals(ws: Workspace, conn: Connection, closings: Sequence[Closing]) -> None:
    """Close deals as won or lost, in order. A win records its amount as new revenue and makes
    the lead a customer at the close time; a loss makes it lost when it was its last open deal."""
    if not closings:
        return
    ids = [c.opportunity_id for c in closings]
    found = {
        r.id: r for r in conn.execute(select(opportunities).where(opportunities.c.id.in_(ids)).with_for_update()).all()
    }
    now = ws.clock.now()
    status: dict[int, str] = {}
    updates, payments = [], []
    for c in closings:
        opp = found.get(c.opportunity_id)
        if opp is None:
            raise NotFound(f"no opportunity with id {c.opportunity_id}")
        current = status.get(opp.id, opp.status)
        if current != "open":
            raise Conflict(f"opportunity {opp.id} is already {current}")
        if not c.won and c.reason_required and not (c.reason and c.reason.strip()):
            raise InvalidInput("a reason is required", [Problem("reason", "say why the opportunity was lost")])
        at = c.closed_at or now
        if at < opp.created_at:
            raise InvalidInput(
                "invalid close date", [Problem("closed_at", "cannot be before the opportunity was created")]
            )
        status[opp.id] = "won" if c.won else "lost"
        final = c.amount if c.amount is not None else opp.amount
        updates.append(
            {
                "_id": opp.id,
                "_status": status[opp.id],
                "_closed_at": at,
                "_amount": final,
                "_lost_reason": None if c.won else c.reason,
                "_pipeline_stage": "closed_won" if c.won else "closed_lost",
            }
        )
        if c.won and final:
            payments.append(
                {
                    "account_id": opp.account_id,
                    "lead_id": opp.lead_id,
                    "opportunity_id": opp.id,
                    "amount": final,
                    "currency": opp.currency,
                    "recognized_at": at,
                    "kind": "new",
                }
            )
    conn.execute(_CLOSE_DEAL, updates)
    if payments:
        conn.execute(insert(revenue), payments)
    lead_ids = {found[c.opportunity_id].lead_id for c in closings} - {None}
    if not lead_ids:
        return
    leads_ = load_for_update(conn, lead_ids)
    # deals still open per lead before this batch closed any; each closing in order takes one off
    open_before = dict(
        conn.execute(
            select(opportunities.c.lead_id, func.count())
            .where(opportunities.c.lead_id.in_(lead_ids), opportunities.c.status == "open")
            .group_by(opportunities.c.lead_id)
        ).all()
    )
    still_open = Counter({lead_id: open_before.get(lead_id, 0) for lead_id in lead_ids})
    still_open.update({found[c.opportunity_id].lead_id: 1 for c in closings if found[c.opportunity_id].lead_id})
    events: list[dict[str, Any]] = []
    changed: dict[int, dict[str, Any]] = {}
    for c, u in sorted(zip(closings, updates, strict=True), key=lambda item: item[1]["_closed_at"]):
        opp = found[c.opportunity_id]
        if opp.lead_id is None:
            continue
        lead = leads_[opp.lead_id]
        at = u["_closed_at"]
        still_open[opp.lead_id] -= 1
        events.append(
            ev.event_row(
                type=ev.OPPORTUNITY_WON if c.won else ev.OPPORTUNITY_LOST,
                lead_id=opp.lead_id,
                occurred_at=at,
                recorded_at=now,
                actor=c.actor,
                config_version=ws.version,
                data={"opportunity_id": opp.id, "amount": u["_amount"], "reason": c.reason},
            )
        )
        if c.won:
            moved = _move_stage(ws, lead, ws.rules.stages.target, at, c.actor, f"opportunity {opp.id} won")
        elif not still_open[opp.lead_id] and lead["stage"] != ws.rules.stages.target:
            moved = _move_stage(ws, lead, "lost", at, c.actor, c.reason or "opportunity lost")
        else:
            moved = []
        if moved:
            events += moved
            changed[opp.lead_id] = lead
    save_projections(conn, list(changed.values()))
    ev.append(conn, events)


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
    """Open one deal (see :func:`open_deals`)."""
    deal = NewDeal(
        lead_id, name, amount, product, pipeline_stage, owner_id, account_id, created_at, external_id, actor, source,
        probability, custom,
    )  # fmt: skip
    return open_deals(ws, conn, [deal])[0]


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
    """Close one deal as won or lost (see :func:`close_deals`)."""
    close_deals(ws, conn, [Closing(opportunity_id, won, amount, reason, closed_at, actor, reason_required)])


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
    if external_id is not None:
        lock_names(conn, [f"revenue:{external_id}"])
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
