"""Sources, campaigns and configured spend, kept in step with the workspace file.

The workspace runs this when it opens, so it depends only on the configuration and the tables.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, delete, insert, select, update

from leadflow.config.workspace import WorkspaceConfig
from leadflow.db.tables import campaigns, sources, spend


def next_month(day: date) -> date:
    """The first day of the month after ``day`` (spend in the file is per calendar month)."""
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
