"""Spend recorded from the API and imports.

Sources, campaigns and configured spend are kept in step with the workspace file by
:mod:`leadflow.sources.sync` (its names are re-exported here).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert

from leadflow.db.tables import spend
from leadflow.errors import InvalidInput, Problem
from leadflow.sources.sync import next_month, sync_from_config  # noqa: F401 (re-exported)


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
