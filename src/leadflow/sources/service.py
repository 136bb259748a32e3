"""Sources, campaigns and spend: kept in step with the workspace file, and recorded from imports."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from leadflow.config.workspace import WorkspaceConfig
from leadflow.db.tables import campaigns, sources, spend
from leadflow.errors import InvalidInput, Problem


def next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def sync_from_config(conn: Connection, config: WorkspaceConfig) -> None:
    """Make the source, campaign and configured-spend tables say what the workspace file says."""
    existing = set(conn.execute(select(sources.c.id)).scalars())
    for s in config.sources:
        values = {"name": s.name, "kind": s.kind, "medium": s.medium, "marketing": s.is_marketing}
        if s.id in existing:
            conn.execute(update(sources).where(sources.c.id == s.id).values(**values))
        else:
            conn.execute(insert(sources).values(id=s.id, **values))
    existing = set(conn.execute(select(campaigns.c.id)).scalars())
    for c in config.campaigns:
        values = {"name": c.name, "source_id": c.source}
        if c.id in existing:
            conn.execute(update(campaigns).where(campaigns.c.id == c.id).values(**values))
        else:
            conn.execute(insert(campaigns).values(id=c.id, **values))
    conn.execute(delete(spend).where(spend.c.origin == "config"))
    rows = [
        {
            "source_id": c.source,
            "campaign_id": c.id,
            "period_start": entry.period_start,
            "period_end": next_month(entry.period_start),
            "amount": entry.amount,
            "currency": config.workspace.currency,
            "kind": "marketing",
            "origin": "config",
        }
        for c in config.campaigns
        for entry in c.spend
    ]
    if rows:
        conn.execute(insert(spend), rows)


def record_spend(
    conn: Connection,
    *,
    source: str,
    amount: Decimal,
    period_start: date,
    period_end: date,
    currency: str,
    campaign: str | None = None,
    kind: str = "marketing",
    origin: str = "api",
    custom: dict[str, Any] | None = None,
) -> None:
    problems = []
    if amount < 0:
        problems.append(Problem("amount", "spend cannot be negative"))
    if period_end <= period_start:
        problems.append(Problem("period_end", "must be after period_start"))
    if kind not in ("marketing", "sales"):
        problems.append(Problem("kind", "must be 'marketing' or 'sales'"))
    if problems:
        raise InvalidInput("invalid spend", problems)
    conn.execute(
        insert(spend).values(
            source_id=source,
            campaign_id=campaign,
            period_start=period_start,
            period_end=period_end,
            amount=amount,
            currency=currency,
            kind=kind,
            origin=origin,
            custom=custom or None,
        )
    )
