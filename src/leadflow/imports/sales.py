"""Rows of historical sales data — opportunities, spend and revenue — for the CSV import.

History is written as it happened (an opportunity closed two years ago stays closed then), so a
team can load its past and measure it with the same metrics as live data. Each row is validated
here and rejected with its field and reason when it does not fit.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, insert, select

from leadflow import events as ev
from leadflow.capture.service import problems_from_validation
from leadflow.db.tables import accounts, leads, opportunities, revenue
from leadflow.errors import Conflict, InvalidInput, Problem
from leadflow.sources.service import record_spend
from leadflow.workspace import Workspace

SALES_KINDS = ("opportunities", "spend", "revenue")
DATE_FIELDS = {"created_at", "closed_at", "recognized_at", "period_start", "period_end"}
Amount = Decimal


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpportunityRow(_Row):
    external_id: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=300)
    lead_email: str | None = Field(default=None, max_length=320)
    account: str | None = Field(default=None, max_length=300)
    owner: str | None = Field(default=None, max_length=64)
    product: str | None = Field(default=None, max_length=200)
    amount: Amount | None = Field(default=None, ge=0, max_digits=16, decimal_places=2)
    status: Literal["open", "won", "lost"] = "open"
    pipeline_stage: str | None = Field(default=None, max_length=64)
    probability: float | None = Field(default=None, ge=0, le=1)
    created_at: datetime | None = None
    closed_at: datetime | None = None
    source: str | None = Field(default=None, max_length=64)
    lost_reason: str | None = Field(default=None, max_length=300)


class SpendRow(_Row):
    source: str = Field(min_length=1, max_length=64)
    campaign: str | None = Field(default=None, max_length=64)
    period_start: date
    period_end: date
    amount: Amount = Field(ge=0, max_digits=16, decimal_places=2)
    kind: Literal["marketing", "sales"] = "marketing"

    @field_validator("period_start", "period_end", mode="before")
    @classmethod
    def _day(cls, value: Any) -> Any:
        return value.date() if isinstance(value, datetime) else value


class RevenueRow(_Row):
    external_id: str | None = Field(default=None, max_length=100)
    amount: Amount = Field(max_digits=16, decimal_places=2)
    recognized_at: datetime
    kind: Literal["new", "recurring", "expansion", "refund"] = "recurring"
    lead_email: str | None = Field(default=None, max_length=320)
    account: str | None = Field(default=None, max_length=300)
    opportunity_external_id: str | None = Field(default=None, max_length=100)


SCHEMAS: dict[str, type[_Row]] = {"opportunities": OpportunityRow, "spend": SpendRow, "revenue": RevenueRow}
TARGETS = {kind: tuple(schema.model_fields) for kind, schema in SCHEMAS.items()}


def _moment(value: Any, field: str, date_format: str | None) -> Any:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.strptime(value, date_format) if date_format else datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            "not a date", [Problem(field, f"{value!r} is not a date ({date_format or 'ISO 8601'})")]
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past the last day a datetime holds
        utc = None
    if utc is None or not 1970 <= utc.year <= 2200:
        raise InvalidInput("not a date", [Problem(field, f"{value!r} is not between 1970 and 2200")])
    return moment


def parse(kind: str, payload: dict[str, Any], date_format: str | None) -> _Row:
    data = {k: (_moment(v, k, date_format) if k in DATE_FIELDS else v) for k, v in payload.items()}
    try:
        return SCHEMAS[kind].model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid {kind} row", problems_from_validation(exc)) from None


def _lead_by_email(conn: Connection, email: str | None) -> int | None:
    if not email:
        return None
    found = conn.execute(
        select(leads.c.id).where(leads.c.email_key == email.strip().lower(), leads.c.merged_into_id.is_(None))
    ).first()
    if found is None:
        raise InvalidInput("unknown lead", [Problem("lead_email", "no lead has this email")])
    return int(found.id)


def _account(conn: Connection, name: str | None, at: datetime, cache: dict[str, int]) -> int | None:
    if not name:
        return None
    if name in cache:
        return cache[name]
    found = conn.execute(select(accounts.c.id).where(accounts.c.name == name)).first()
    if found is None:
        found_id = conn.execute(
            insert(accounts).values(name=name, created_at=at, updated_at=at).returning(accounts.c.id)
        ).scalar_one()
    else:
        found_id = found.id
    cache[name] = int(found_id)
    return cache[name]


def import_row(ws: Workspace, conn: Connection, kind: str, row: _Row, actor: str, cache: dict[str, int]) -> None:
    """Write one validated row (inside the batch's transaction)."""
    now = ws.clock.now()
    if isinstance(row, SpendRow):
        record_spend(conn, currency=ws.config.workspace.currency, origin="import", **row.model_dump())
    elif isinstance(row, OpportunityRow):
        _opportunity(ws, conn, row, actor, cache, now)
    elif isinstance(row, RevenueRow):
        _revenue(ws, conn, row, cache, now)


def _opportunity(
    ws: Workspace, conn: Connection, row: OpportunityRow, actor: str, cache: dict[str, int], now: datetime
) -> None:
    if (
        row.external_id
        and conn.execute(select(opportunities.c.id).where(opportunities.c.external_id == row.external_id)).first()
    ):
        raise Conflict("already imported", [Problem("external_id", f"opportunity {row.external_id!r} exists already")])
    created = row.created_at or now  # no date known (e.g. still prospecting): as of the import
    if row.status != "open" and row.closed_at is None:
        raise InvalidInput("a closed deal needs its close date", [Problem("closed_at", "required when won or lost")])
    if row.status == "open" and row.closed_at is not None:
        raise InvalidInput("an open deal has no close date", [Problem("status", "open, but closed_at is given")])
    if row.closed_at is not None and row.closed_at < created:
        raise InvalidInput("closed before it was created", [Problem("closed_at", "is before created_at")])
    lead_id = _lead_by_email(conn, row.lead_email)
    account_id = _account(conn, row.account, created, cache)
    opp_id = conn.execute(
        insert(opportunities)
        .values(
            external_id=row.external_id,
            lead_id=lead_id,
            account_id=account_id,
            owner_id=row.owner,
            name=row.name or row.product or row.account or row.external_id or "imported deal",
            product=row.product,
            amount=row.amount,
            currency=ws.config.workspace.currency,
            pipeline_stage=row.pipeline_stage or ("qualification" if row.status == "open" else f"closed_{row.status}"),
            status=row.status,
            probability=row.probability,
            created_at=created,
            closed_at=row.closed_at,
            lost_reason=row.lost_reason,
            source=row.source,
        )
        .returning(opportunities.c.id)
    ).scalar_one()
    if lead_id is not None:
        rows = [
            ev.event_row(
                type=ev.OPPORTUNITY_CREATED,
                lead_id=lead_id,
                occurred_at=created,
                recorded_at=now,
                actor=actor,
                config_version=ws.version,
                data={"opportunity_id": opp_id, "imported": True},
            )
        ]
        if row.status != "open" and row.closed_at is not None:
            rows.append(
                ev.event_row(
                    type=ev.OPPORTUNITY_WON if row.status == "won" else ev.OPPORTUNITY_LOST,
                    lead_id=lead_id,
                    occurred_at=row.closed_at,
                    recorded_at=now,
                    actor=actor,
                    config_version=ws.version,
                    data={"opportunity_id": opp_id, "imported": True},
                )
            )
        ev.append(conn, rows)


def _revenue(ws: Workspace, conn: Connection, row: RevenueRow, cache: dict[str, int], now: datetime) -> None:
    if row.external_id and conn.execute(select(revenue.c.id).where(revenue.c.external_id == row.external_id)).first():
        raise Conflict("already imported", [Problem("external_id", f"revenue {row.external_id!r} exists already")])
    if (row.kind == "refund") != (row.amount < 0):
        raise InvalidInput("invalid revenue", [Problem("amount", "a refund is negative, anything else is not")])
    lead_id = _lead_by_email(conn, row.lead_email)
    opp = None
    if row.opportunity_external_id:
        opp = conn.execute(
            select(opportunities.c.id, opportunities.c.lead_id, opportunities.c.account_id).where(
                opportunities.c.external_id == row.opportunity_external_id
            )
        ).first()
        if opp is None:
            raise InvalidInput("unknown opportunity", [Problem("opportunity_external_id", "no such opportunity")])
    account_id = _account(conn, row.account, row.recognized_at, cache) or (opp.account_id if opp else None)
    lead_id = lead_id or (opp.lead_id if opp else None)
    if lead_id is None and account_id is None:
        raise InvalidInput(
            "whose revenue?", [Problem("lead_email", "give lead_email, account or opportunity_external_id")]
        )
    conn.execute(
        insert(revenue).values(
            external_id=row.external_id,
            account_id=account_id,
            lead_id=lead_id,
            opportunity_id=opp.id if opp else None,
            amount=row.amount,
            currency=ws.config.workspace.currency,
            recognized_at=row.recognized_at,
            kind=row.kind,
        )
    )
