"""Rows of historical sales data — opportunities, spend and revenue — for the CSV import.

History is written as it happened (an opportunity closed two years ago stays closed then), so a
team can load its past and measure it with the same metrics as live data. Each row is validated
here and rejected with its field and reason when it does not fit; a valid row is written by the
same service functions the API calls (:mod:`leadflow.opportunities.service`,
:func:`leadflow.sources.service.record_spend`), so an imported won deal makes its lead a customer
at the close time and records its revenue exactly as a deal closed through the API does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, insert, select

from leadflow.capture.schemas import CustomValue
from leadflow.capture.service import problems_from_validation
from leadflow.db.tables import accounts, opportunities, owners
from leadflow.errors import Conflict, InvalidInput, LeadflowError, NotFound, Problem
from leadflow.identity.service import find_by_email_keys, find_by_external_ids, survivor
from leadflow.opportunities.service import (
    Closing,
    NewDeal,
    close_deals,
    open_deals,
    record_revenue,
)
from leadflow.sources.service import record_spend
from leadflow.workspace import Workspace

SALES_KINDS = ("opportunities", "spend", "revenue")
DATE_FIELDS = {"created_at", "closed_at", "recognized_at", "period_start", "period_end"}
Amount = Decimal
Custom = dict[str, CustomValue] | None


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _LeadLink(_Row):
    """Which lead a row belongs to: its id here, its id in the system it came from, or its email."""

    lead_id: int | None = Field(default=None, ge=1, le=2**62)
    lead_external_id: str | None = Field(default=None, max_length=100)
    lead_email: str | None = Field(default=None, max_length=320)


class OpportunityRow(_LeadLink):
    external_id: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=300)
    account: str | None = Field(default=None, max_length=300)
    owner: str | None = Field(default=None, max_length=320)
    product: str | None = Field(default=None, max_length=200)
    amount: Amount | None = Field(default=None, ge=0, max_digits=16, decimal_places=2)
    status: Literal["open", "won", "lost"] = "open"
    pipeline_stage: str | None = Field(default=None, max_length=64)
    probability: float | None = Field(default=None, ge=0, le=1)
    created_at: datetime | None = None
    closed_at: datetime | None = None
    source: str | None = Field(default=None, max_length=64)
    lost_reason: str | None = Field(default=None, max_length=300)
    custom: Custom = None


class SpendRow(_Row):
    source: str = Field(min_length=1, max_length=64)
    campaign: str | None = Field(default=None, max_length=64)
    period_start: date
    period_end: date
    amount: Amount = Field(ge=0, max_digits=16, decimal_places=2)
    kind: Literal["marketing", "sales"] = "marketing"
    custom: Custom = None

    @field_validator("period_start", "period_end", mode="before")
    @classmethod
    def _day(cls, value: Any) -> Any:
        return value.date() if isinstance(value, datetime) else value


class RevenueRow(_LeadLink):
    external_id: str | None = Field(default=None, max_length=100)
    amount: Amount = Field(max_digits=16, decimal_places=2)
    recognized_at: datetime
    kind: Literal["new", "recurring", "expansion", "refund"] = "recurring"
    account: str | None = Field(default=None, max_length=300)
    opportunity_external_id: str | None = Field(default=None, max_length=100)
    custom: Custom = None


SCHEMAS: dict[str, type[_Row]] = {"opportunities": OpportunityRow, "spend": SpendRow, "revenue": RevenueRow}
TARGETS = {kind: tuple(n for n in schema.model_fields if n != "custom") for kind, schema in SCHEMAS.items()}


def moment(value: Any, field: str, date_format: str | None, zone: tzinfo = UTC) -> Any:
    """A cell as an aware time: in ``date_format`` (else ISO 8601), in ``zone`` unless it says its own."""
    if not isinstance(value, str):
        return value
    try:
        at = datetime.strptime(value, date_format) if date_format else datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            "not a date", [Problem(field, f"{value!r} is not a date ({date_format or 'ISO 8601, e.g. 2024-03-01'})")]
        ) from None
    at = at if at.tzinfo else at.replace(tzinfo=zone)
    try:
        utc = at.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past the last day a datetime holds
        utc = None
    if utc is None or not 1970 <= utc.year <= 2200:
        raise InvalidInput("not a date", [Problem(field, f"{value!r} is not between 1970 and 2200")])
    return at


def parse(kind: str, payload: dict[str, Any]) -> _Row:
    """A mapped row (times already read) as the kind's validated row."""
    try:
        return SCHEMAS[kind].model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput(f"invalid {kind} row", problems_from_validation(exc)) from None


@dataclass
class Notes:
    """What an import wants the user to know beyond created and rejected: counts by what
    happened, and warning lines (a deal won before its lead was created, ...)."""

    line: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def warn(self, field_: str, message: str) -> None:
        self.warnings.append({"line": self.line, "field": field_, "message": message})


class OwnerBook:
    """Owners as an import names them: by id, email or name (any case); an owner the directory
    does not know is kept as written (history has reps who left) and reported."""

    def __init__(self, conn: Connection) -> None:
        self.by: dict[str, tuple[str, str | None]] = {}
        for row in conn.execute(select(owners.c.id, owners.c.name, owners.c.email, owners.c.team_id)):
            for key in (row.id, row.email, row.name):
                if key:
                    self.by.setdefault(key.strip().lower(), (row.id, row.team_id))
        self.unknown: Counter[str] = Counter()

    def resolve(self, value: str | None) -> tuple[str | None, str | None]:
        if not value:
            return None, None
        found = self.by.get(value.strip().lower())
        if found is not None:
            return found
        self.unknown[value] += 1
        return value[:64], None


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


def find_lead(conn: Connection, row: _LeadLink) -> dict[str, Any] | None:
    """The live lead a row names (a merged lead's id, external id or email names its survivor)."""
    lead: dict[str, Any] | None = None
    field_ = "lead_id"
    if row.lead_external_id:
        field_ = "lead_external_id"
        lead = find_by_external_ids(conn, [row.lead_external_id]).get(row.lead_external_id)
        if lead is None:
            raise InvalidInput(
                "unknown lead", [Problem(field_, "no lead has this external id; import the leads first")]
            )
    elif row.lead_id is not None:
        lead = survivor(conn, row.lead_id)
        if lead is None:
            raise NotFound(f"no lead with id {row.lead_id}", [Problem(field_, "no such lead")])
    elif row.lead_email:
        field_ = "lead_email"
        key = row.lead_email.strip().lower()
        lead = find_by_email_keys(conn, [key]).get(key)
        if lead is None:
            raise InvalidInput("unknown lead", [Problem(field_, "no lead has this email")])
    if lead is not None and lead["erased_at"] is not None:
        raise Conflict("erased lead", [Problem(field_, "this lead was erased; nothing more is recorded")])
    return lead


@dataclass
class SalesContext:
    ws: Workspace
    conn: Connection
    actor: str
    notes: Notes
    owners: OwnerBook
    accounts: dict[str, int] = field(default_factory=dict)


def import_row(ctx: SalesContext, row: _Row) -> str:
    """Write one validated spend or revenue row (inside the batch's transaction); deals go in
    batches through :func:`import_deals`."""
    if isinstance(row, SpendRow):
        record_spend(ctx.conn, currency=ctx.ws.config.workspace.currency, origin="import", **row.model_dump())
        return "created"
    assert isinstance(row, RevenueRow)
    return _revenue(ctx, row)


@dataclass
class _Deal:
    """What one deal row comes to: nothing new, a known deal to close, or a new deal (maybe closed)."""

    outcome: str  # created | updated | unchanged
    existing_id: int | None = None
    new: NewDeal | None = None
    account: str | None = None


def _check(ctx: SalesContext, row: OpportunityRow) -> None:
    if row.status != "open" and row.closed_at is None:
        raise InvalidInput("a closed deal needs its close date", [Problem("closed_at", "required when won or lost")])
    if row.status == "open" and row.closed_at is not None:
        # CRMs export an open deal's expected close date in the same column (HubSpot's Close Date)
        row.custom = {**(row.custom or {}), "expected_close": row.closed_at.date().isoformat()}
        row.closed_at = None
        ctx.notes.counts["open deals with an expected close date (kept as custom.expected_close)"] += 1
    if row.created_at is not None and row.closed_at is not None and row.closed_at < row.created_at:
        raise InvalidInput("closed before it was created", [Problem("closed_at", "is before created_at")])


def _plan_deal(
    ctx: SalesContext, row: OpportunityRow, known: tuple[int, str] | None, lead: dict[str, Any] | None
) -> _Deal:
    """Decide what a deal row does, given the deal its external id names (id, status) and its lead."""
    _check(ctx, row)
    if known is not None:  # the same deal exported again: it may have closed since
        known_id, known_status = known
        if known_status == row.status:
            return _Deal("unchanged")
        if known_status != "open":
            raise Conflict(
                "already closed",
                [Problem("status", f"deal {row.external_id!r} was imported as {known_status}, now {row.status}")],
            )
        return _Deal("updated", existing_id=known_id)
    notes = ctx.notes
    created = row.created_at
    if created is None:
        if lead is not None:
            created = lead["created_at"]
            notes.counts["deals opened at their lead's creation (no created_at)"] += 1
            if row.closed_at is not None and row.closed_at < created:
                created = row.closed_at
        elif row.status == "open":
            created = ctx.ws.clock.now()
            notes.counts["open deals without created_at or lead, opened at the import"] += 1
        else:
            raise InvalidInput(
                "when did it open?",
                [Problem("created_at", "a closed deal with no lead needs its creation time (or link its lead)")],
            )
    if lead is not None and min(created, row.closed_at or created) < lead["created_at"]:
        notes.warn(
            "created_at",
            f"the deal {'closed' if row.closed_at else 'opened'} before its lead was created; kept as written",
        )
    owner_id, _ = ctx.owners.resolve(row.owner)
    deal = NewDeal(
        lead_id=lead["id"] if lead is not None else None,
        name=row.name or row.product or row.account or row.external_id or "imported deal",
        amount=row.amount,
        product=row.product,
        pipeline_stage=row.pipeline_stage or "qualification",
        owner_id=owner_id,
        created_at=created,
        external_id=row.external_id,
        actor=ctx.actor,
        source=row.source,
        probability=row.probability,
        custom=row.custom,
    )
    return _Deal("created", new=deal, account=row.account)


def _opportunity(ctx: SalesContext, row: OpportunityRow) -> str:
    """One deal row on its own (the careful path, row by row)."""
    conn = ctx.conn
    known = None
    if row.external_id:
        found = conn.execute(
            select(opportunities.c.id, opportunities.c.status).where(opportunities.c.external_id == row.external_id)
        ).first()
        known = (found.id, found.status) if found is not None else None
    plan = _plan_deal(ctx, row, known, None if known else find_lead(conn, row))
    if plan.existing_id is not None:
        _close(ctx, plan.existing_id, row)
    elif plan.new is not None:
        plan.new.account_id = _account(conn, plan.account, plan.new.created_at, ctx.accounts)  # type: ignore[arg-type]
        opp_id = open_deals(ctx.ws, conn, [plan.new])[0]
        if row.status != "open":
            _close(ctx, opp_id, row)
    return plan.outcome


def import_deals(
    ctx: SalesContext, rows: list[tuple[int, OpportunityRow]]
) -> tuple[list[tuple[int, str]], list[tuple[int, LeadflowError]]]:
    """A batch of deal rows in a few statements: leads, known deals and accounts looked up for
    all rows at once, then :func:`open_deals` and :func:`close_deals` for the batch. If the batch
    cannot be written as one (a row the checks let through fails), it is written row by row, so
    each bad row is rejected with its reason and the good ones land. Returns (line, outcome) and
    (line, error)."""
    conn = ctx.conn
    external = [r.external_id for _, r in rows if r.external_id]
    known = (
        {
            x.external_id: (x.id, x.status)
            for x in conn.execute(
                select(opportunities.c.external_id, opportunities.c.id, opportunities.c.status).where(
                    opportunities.c.external_id.in_(external)
                )
            )
        }
        if external
        else {}
    )
    by_external = find_by_external_ids(conn, {r.lead_external_id for _, r in rows if r.lead_external_id})
    by_email = find_by_email_keys(conn, {r.lead_email.strip().lower() for _, r in rows if r.lead_email})
    done: list[tuple[int, str]] = []
    failed: list[tuple[int, LeadflowError]] = []
    planned: list[tuple[int, OpportunityRow, _Deal]] = []
    later: list[tuple[int, OpportunityRow]] = []  # a deal named twice in the batch: after the rest, in order
    seen: set[str] = set()
    snapshot = (Counter(ctx.notes.counts), len(ctx.notes.warnings), Counter(ctx.owners.unknown))
    for line, row in rows:
        ctx.notes.line = line
        if row.external_id and row.external_id in seen:
            later.append((line, row))
            continue
        if row.external_id:
            seen.add(row.external_id)
        try:
            lead = None
            if row.external_id not in known:
                if row.lead_external_id:  # the order find_lead reads them in: external id, id, email
                    lead = by_external.get(row.lead_external_id)
                elif row.lead_id is None and row.lead_email:
                    lead = by_email.get(row.lead_email.strip().lower())
                if lead is None or lead["erased_at"] is not None:
                    lead = find_lead(conn, row)  # names why (unknown, erased), or finds by id
            planned.append((line, row, _plan_deal(ctx, row, known.get(row.external_id or ""), lead)))
        except LeadflowError as exc:
            failed.append((line, exc))
    try:
        with conn.begin_nested():
            new = [(line, row, p) for line, row, p in planned if p.new is not None]
            for _, _, p in new:
                p.new.account_id = _account(conn, p.account, p.new.created_at, ctx.accounts)  # type: ignore[union-attr, arg-type]
            ids = open_deals(ctx.ws, conn, [p.new for _, _, p in new])  # type: ignore[misc]
            opened = {line: opp_id for (line, _, _), opp_id in zip(new, ids, strict=True)}
            closings = [
                _closing(ctx, p.existing_id or opened[line], row)
                for line, row, p in planned
                if row.status != "open" and (p.existing_id is not None or p.new is not None)
            ]
            close_deals(ctx.ws, conn, closings)
        done += [(line, p.outcome) for line, _, p in planned]
    except LeadflowError:
        ctx.accounts.clear()  # the savepoint took the accounts it made with it
        ctx.notes.counts, ctx.owners.unknown = snapshot[0], snapshot[2]
        del ctx.notes.warnings[snapshot[1] :]
        later = [(line, row) for line, row, _ in planned] + later
        later.sort(key=lambda item: item[0])
    for line, row in later:
        ctx.notes.line = line
        try:
            with conn.begin_nested():
                done.append((line, _opportunity(ctx, row)))
        except LeadflowError as exc:
            ctx.accounts.clear()
            failed.append((line, exc))
    return done, failed


def _closing(ctx: SalesContext, opp_id: int, row: OpportunityRow) -> Closing:
    assert row.closed_at is not None
    if row.status == "won" and not row.amount:
        ctx.notes.counts["won deals without an amount (no revenue recorded)"] += 1
    return Closing(
        opp_id, row.status == "won", row.amount, row.lost_reason, row.closed_at, ctx.actor, reason_required=False
    )


def _close(ctx: SalesContext, opp_id: int, row: OpportunityRow) -> None:
    close_deals(ctx.ws, ctx.conn, [_closing(ctx, opp_id, row)])


def _revenue(ctx: SalesContext, row: RevenueRow) -> str:
    conn = ctx.conn
    if (row.kind == "refund") != (row.amount < 0):
        raise InvalidInput("invalid revenue", [Problem("amount", "a refund is negative, anything else is not")])
    lead = find_lead(conn, row)
    opp_id = None
    if row.opportunity_external_id:
        opp_id = conn.execute(
            select(opportunities.c.id).where(opportunities.c.external_id == row.opportunity_external_id)
        ).scalar()
        if opp_id is None:
            raise InvalidInput("unknown opportunity", [Problem("opportunity_external_id", "no such opportunity")])
    account_id = _account(conn, row.account, row.recognized_at, ctx.accounts)
    if lead is None and account_id is None and opp_id is None:
        raise InvalidInput(
            "whose revenue?",
            [Problem("lead_email", "give lead_external_id, lead_email, lead_id, account or opportunity_external_id")],
        )
    record_revenue(
        ctx.ws,
        conn,
        amount=row.amount,
        recognized_at=row.recognized_at,
        kind=row.kind,
        lead_id=lead["id"] if lead is not None else None,
        account_id=account_id,
        opportunity_id=opp_id,
        external_id=row.external_id,
        actor=ctx.actor,
        custom=row.custom,
    )
    return "created"
