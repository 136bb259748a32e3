"""Money: spend per lead and customer, lifetime value, payback, return on ad spend, revenue
by source and its growth, market share, and pipeline and revenue credited by attribution."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, String, and_, case, cast, func, literal, null, select, union_all

from leadflow.db.tables import leads, opportunities, revenue, sources, spend
from leadflow.errors import InvalidInput, Problem
from leadflow.metrics import attribution
from leadflow.metrics.catalogue.conversion import lead_conversion_rate
from leadflow.metrics.catalogue.define import Rows, _keys, _lead_grp, _stage_is, metric
from leadflow.metrics.measures import Ctx, counts, day_number, first_in_period, in_span, live, money, rate_row, safe_div
from leadflow.metrics.periods import Period, periods_table, split


def _date_periods(ctx: Ctx) -> Any:
    zone = ZoneInfo(ctx.tz)
    rows = [
        select(
            literal(p.label, String()).label("label"),
            literal(p.start.astimezone(zone).date(), Date()).label("d_start"),
            literal(p.end.astimezone(zone).date(), Date()).label("d_end"),
        )
        for p in ctx.periods
    ]
    return (rows[0] if len(rows) == 1 else union_all(*rows)).subquery("dperiods")


SPEND_DIMENSIONS = {"source": spend.c.source_id, "campaign": spend.c.campaign_id, "medium": sources.c.medium}


def _spend(ctx: Ctx, *kinds: str) -> dict[tuple[str, Any], Decimal]:
    """Spend in each reporting period: each spend row (a month, a campaign flight) spread evenly
    over the days of its own period, so a flight from 15 January to 14 February counts 17 of its
    31 days in January and 14 in February. Each period's sum is rounded to the cent."""
    d = _date_periods(ctx)
    by = ctx.q.by
    if by is not None and by not in SPEND_DIMENSIONS:
        raise InvalidInput(
            "spend has no such breakdown", [Problem("by", f"cost metrics break down by {', '.join(SPEND_DIMENSIONS)}")]
        )
    grp = (SPEND_DIMENSIONS[by] if by else cast(null(), String())).label("grp")
    lo = case((spend.c.period_start > d.c.d_start, spend.c.period_start), else_=d.c.d_start)
    hi = case((spend.c.period_end < d.c.d_end, spend.c.period_end), else_=d.c.d_end)
    share = (
        spend.c.amount
        * (day_number(hi) - day_number(lo))
        / (day_number(spend.c.period_end) - day_number(spend.c.period_start))
    )
    stmt = (
        select(d.c.label, grp, func.sum(share).label("amount"))
        .select_from(
            spend.join(d, and_(spend.c.period_start < d.c.d_end, spend.c.period_end > d.c.d_start)).outerjoin(
                sources, sources.c.id == spend.c.source_id
            )
        )
        .where(spend.c.kind.in_(kinds))
        .group_by(d.c.label, grp)
    )
    cent = Decimal("0.01")
    return {(r.label, r.grp): Decimal(str(r.amount)).quantize(cent) for r in ctx.conn.execute(stmt)}


def _new_customers(ctx: Ctx) -> dict[tuple[str, Any], int]:
    return first_in_period(ctx, _stage_is(ctx, ctx.ws.rules.stages.target), _lead_grp(ctx))


def _per(
    ctx: Ctx, cost: dict[tuple[str, Any], Decimal], per: dict[tuple[str, Any], Any], what: str, **extra: Any
) -> Rows:
    out = []
    for k in _keys(ctx, cost, per):
        c, n = cost.get(k, Decimal(0)), int(per.get(k) or 0)
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": money(c / n) if n else None,
                "spend": money(c),
                what: n,
                "currency": ctx.ws.config.workspace.currency,
                "reason": None if n else f"no {what.replace('_', ' ')} in this period",
                **extra,
            }
        )
    return out


@metric(
    "cost_per_lead",
    "Cost per Lead",
    "spend per lead",
    "money",
    "spend / leads created, per source or campaign, same period",
)
def cost_per_lead(ctx: Ctx) -> Rows:
    cost = _spend(ctx, "marketing", "sales")
    grp = SPEND_DIMENSIONS[ctx.q.by] if ctx.q.by else None
    frm = leads.outerjoin(sources, sources.c.id == leads.c.source)
    lead_grp = ctx.grp({"source": leads.c.source, "campaign": leads.c.campaign, "medium": sources.c.medium})
    del grp
    found = counts(ctx, frm, leads.c.created_at, lead_grp, live())
    return _per(ctx, cost, found, "leads")


@metric(
    "cac",
    "Customer Acquisition Cost",
    "spend per new customer",
    "money",
    "(marketing + sales spend) / new customers (first reaching the target stage) in period",
)
def cac(ctx: Ctx) -> Rows:
    if ctx.q.by not in (None, "source", "campaign"):
        raise InvalidInput("spend has no such breakdown", [Problem("by", "cac breaks down by source or campaign")])
    return _per(ctx, _spend(ctx, "marketing", "sales"), _new_customers(ctx), "new_customers")


def _customer() -> Any:
    return func.coalesce(revenue.c.lead_id, -revenue.c.account_id)


def _ltv_parts(ctx: Ctx) -> dict[str, dict[str, Any]]:
    if ctx.q.by is not None:
        raise InvalidInput("not broken down", [Problem("by", "lifetime value is for the whole business")])
    p = ctx.table()
    months = periods_table(split(ctx.q.start, ctx.q.end, "month", ctx.tz), "months")
    cust = _customer()
    in_p = and_(revenue.c.recognized_at >= p.c.p_start, revenue.c.recognized_at < p.c.p_end)
    pairs = (
        select(p.c.label, cust.label("cust"), months.c.label.label("month"))
        .select_from(
            revenue.join(p, in_p).join(
                months, and_(revenue.c.recognized_at >= months.c.p_start, revenue.c.recognized_at < months.c.p_end)
            )
        )
        .distinct()
        .subquery("pairs")
    )
    cm = {
        r.label: int(r.n)
        for r in ctx.conn.execute(select(pairs.c.label, func.count().label("n")).group_by(pairs.c.label))
    }
    totals = {
        r.label: r
        for r in ctx.conn.execute(
            select(
                p.c.label,
                func.sum(revenue.c.amount).label("amount"),
                func.count(func.distinct(cust)).label("customers"),
            )
            .select_from(revenue.join(p, in_p))
            .group_by(p.c.label)
        )
    }
    r2 = revenue.alias("later")
    last = (
        select(func.max(r2.c.recognized_at))
        .where(func.coalesce(r2.c.lead_id, -r2.c.account_id) == cust)
        .scalar_subquery()
    )
    quiet = ctx.now - timedelta(days=45)
    churned = {
        r.label: int(r.n)
        for r in ctx.conn.execute(
            select(p.c.label, func.count(func.distinct(cust)).label("n"))
            .select_from(revenue.join(p, in_p))
            .where(revenue.c.recognized_at == last, revenue.c.recognized_at < quiet)
            .group_by(p.c.label)
        )
    }
    r3 = revenue.alias("todate")
    to_date = {
        r.label: r.v
        for r in ctx.conn.execute(
            select(p.c.label, func.sum(r3.c.amount).label("v"))
            .select_from(r3.join(p, r3.c.recognized_at < p.c.p_end))
            .where(
                func.coalesce(r3.c.lead_id, -r3.c.account_id).in_(
                    select(_customer()).where(
                        revenue.c.recognized_at >= p.c.p_start, revenue.c.recognized_at < p.c.p_end
                    )
                )
            )
            .group_by(p.c.label)
        )
    }
    margin = ctx.ws.config.metrics.gross_margin
    out: dict[str, dict[str, Any]] = {}
    for period in ctx.periods:
        t = totals.get(period.label)
        months_n = cm.get(period.label, 0)
        amount = float(t.amount) if t else 0.0
        arpc = safe_div(amount, months_n)
        churn = safe_div(float(churned.get(period.label, 0)), months_n)
        ltv = safe_div(arpc * margin, churn) if arpc is not None and churn else None
        customers = int(t.customers) if t else 0
        out[period.label] = {
            "arpc_month": arpc,
            "monthly_churn": churn,
            "ltv": ltv,
            "customers": customers,
            "customer_months": months_n,
            "observed_ltv": safe_div(float(to_date.get(period.label) or 0), customers),
            "reason": None
            if ltv is not None
            else ("no revenue in this period" if not months_n else "no churn observed yet"),
        }
    return out


@metric(
    "ltv",
    "Customer Lifetime Value",
    "revenue a customer brings over its life",
    "money",
    "average revenue per customer per month × gross margin ÷ monthly churn rate (churned = last payment "
    "in period and none for 45 days), with observed-to-date LTV alongside",
)
def ltv(ctx: Ctx) -> Rows:
    cur = ctx.ws.config.metrics and ctx.ws.config.workspace.currency
    return [
        {
            "period": label,
            "group": None,
            "value": money(Decimal(str(round(v["ltv"], 2)))) if v["ltv"] is not None else None,
            "arpc_month": v["arpc_month"],
            "monthly_churn": v["monthly_churn"],
            "customers": v["customers"],
            "customer_months": v["customer_months"],
            "observed_ltv": money(Decimal(str(round(v["observed_ltv"], 2)))) if v["observed_ltv"] is not None else None,
            "currency": cur,
            "reason": v["reason"],
        }
        for label, v in _ltv_parts(ctx).items()
    ]


@metric("ltv_to_cac", "LTV to CAC Ratio", "value per unit acquisition cost", "ratio", "ltv / cac")
def ltv_to_cac(ctx: Ctx) -> Rows:
    parts = _ltv_parts(ctx)
    costs = {r["period"]: r for r in cac(ctx)}
    out = []
    for label, v in parts.items():
        c = costs.get(label, {}).get("value")
        value = safe_div(v["ltv"], float(c)) if v["ltv"] is not None and c is not None else None
        out.append(
            {
                "period": label,
                "group": None,
                "value": value,
                "ltv": v["ltv"],
                "cac": c,
                "reason": None if value is not None else (v["reason"] or costs.get(label, {}).get("reason")),
            }
        )
    return out


@metric(
    "payback_period",
    "Payback Period",
    "months to recover CAC",
    "months",
    "cac / (average monthly revenue per customer × gross margin)",
)
def payback_period(ctx: Ctx) -> Rows:
    parts = _ltv_parts(ctx)
    costs = {r["period"]: r for r in cac(ctx)}
    margin = ctx.ws.config.metrics.gross_margin
    out = []
    for label, v in parts.items():
        c = costs.get(label, {}).get("value")
        monthly = v["arpc_month"] * margin if v["arpc_month"] else None
        value = safe_div(float(c), monthly) if c is not None and monthly else None
        out.append(
            {
                "period": label,
                "group": None,
                "value": value,
                "cac": c,
                "monthly_margin_per_customer": monthly,
                "reason": None if value is not None else "needs both a CAC and revenue in the period",
            }
        )
    return out


@metric(
    "roas",
    "Return on Ad Spend",
    "revenue per unit of ad spend",
    "ratio",
    "attributed revenue / ad (marketing) spend, per campaign or source, under the chosen attribution model",
)
def roas(ctx: Ctx) -> Rows:
    model = attribution.check_model(ctx.q.extra.get("model"))
    dim = attribution.dimension(ctx) if ctx.q.by else None
    found = attribution.attribute(ctx, _outcomes_revenue(ctx), model, dim or "source")
    if dim is None:
        total: dict[tuple[str, Any], float] = {}
        for (label, _), v in found.items():
            total[(label, None)] = total.get((label, None), 0.0) + v
        found = total
    cost = _spend(ctx, "marketing")
    out = []
    for k in _keys(ctx, found, cost):
        r, c = found.get(k, 0.0), cost.get(k, Decimal(0))
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": safe_div(r, float(c)) if c else None,
                "revenue": money(Decimal(str(round(r, 2)))),
                "spend": money(c),
                "model": model,
                "reason": None if c else "no ad spend in this period",
            }
        )
    return out


@metric(
    "revenue_by_source",
    "Revenue by source",
    "which sources make money",
    "money",
    "revenue recognised in period, credited to the customers' sources under the chosen attribution model "
    "(default first touch), with every model alongside",
)
def revenue_by_source(ctx: Ctx) -> Rows:
    model = attribution.check_model(ctx.q.extra.get("model"))
    dim = attribution.dimension(ctx)
    outcomes = _outcomes_revenue(ctx)
    every = {m: attribution.attribute(ctx, outcomes, m, dim) for m in attribution.MODELS}
    rows = _money_rows(ctx, every[model], model=model)
    for r in rows:
        k = (r["period"], r["group"])
        r["by_model"] = {m: money(Decimal(str(round(v.get(k, 0.0), 2)))) for m, v in every.items()}
    return rows


def _revenue(ctx: Ctx, periods: list[Period], grp: Any) -> dict[tuple[str, Any], Decimal]:
    p = periods_table(periods, "rp")
    stmt = (
        select(p.c.label, grp, func.sum(revenue.c.amount).label("v"))
        .select_from(
            revenue.outerjoin(leads, leads.c.id == revenue.c.lead_id).join(
                p, and_(revenue.c.recognized_at >= p.c.p_start, revenue.c.recognized_at < p.c.p_end)
            )
        )
        .group_by(p.c.label, grp)
    )
    return {(r.label, r.grp): Decimal(r.v) for r in ctx.conn.execute(stmt)}


def _previous(p: Period, tz: str) -> Period:
    zone = ZoneInfo(tz)
    d0, d1 = p.start.astimezone(zone).date(), p.end.astimezone(zone).date()
    length = (d1 - d0).days
    # A calendar month or quarter is compared with the one before it, not the same number of days.
    if d0.day == 1 and d1.day == 1 and length >= 28:
        months = (d1.year - d0.year) * 12 + d1.month - d0.month
        total = d0.year * 12 + d0.month - 1 - months
        prev = date(total // 12, total % 12 + 1, 1)
    else:
        prev = d0 - timedelta(days=length)
    return Period(p.label, datetime.combine(prev, time(), zone).astimezone(UTC), p.start)


@metric(
    "revenue_growth",
    "Revenue Growth",
    "change in revenue",
    "ratio",
    "(revenue in period − revenue in previous period) / previous",
)
def revenue_growth(ctx: Ctx) -> Rows:
    grp = _lead_grp(ctx)
    now = _revenue(ctx, ctx.periods, grp)
    before = _revenue(ctx, [_previous(p, ctx.tz) for p in ctx.periods], grp)
    out = []
    for k in _keys(ctx, now, before):
        a, b = now.get(k, Decimal(0)), before.get(k, Decimal(0))
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": float((a - b) / b) if b else None,
                "revenue": money(a),
                "previous": money(b),
                "reason": None if b else "no revenue in the previous period",
            }
        )
    return out


@metric(
    "market_share",
    "Market Share",
    "share of the total market",
    "ratio",
    "revenue in period / total market size for the period (metrics.market_size_per_year, prorated by days)",
)
def market_share(ctx: Ctx) -> Rows:
    size = ctx.ws.config.metrics.market_size_per_year
    found = _revenue(ctx, ctx.periods, _lead_grp(ctx))
    lengths = {p.label: (p.end - p.start).total_seconds() / 86400 / 365.2425 for p in ctx.periods}
    out = []
    for k in _keys(ctx, found):
        rev = found.get(k, Decimal(0))
        market = float(size) * lengths[k[0]] if size else None
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": safe_div(float(rev), market) if market else None,
                "revenue": money(rev),
                "market": money(Decimal(str(round(market, 2)))) if market else None,
                "reason": None if market else "set metrics.market_size_per_year in leadflow.yaml",
            }
        )
    return out


@metric(
    "customer_segmentation",
    "Customer Segmentation",
    "customers grouped by shared traits",
    "distribution",
    "per segment (default breakdown: segment, set by the workspace's rules): leads created, customers among "
    "them (cohort conversion) and revenue recognised in period",
)
def customer_segmentation(ctx: Ctx) -> Rows:
    if ctx.q.by is None:
        ctx.q = type(ctx.q)(**{**ctx.q.__dict__, "by": "segment"})
    conv = {(r["period"], r["group"]): r for r in lead_conversion_rate(ctx)}
    rev = _revenue(ctx, ctx.periods, _lead_grp(ctx))
    out = []
    for k in _keys(ctx, conv, rev):
        c = conv.get(k) or rate_row(k[0], k[1], 0, 0)
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": c["numerator"],
                "leads": c["denominator"],
                "customers": c["numerator"],
                "conversion": c["value"],
                "ci_low": c["ci_low"],
                "ci_high": c["ci_high"],
                "revenue": money(rev.get(k, Decimal(0))),
            }
        )
    return out


def _outcomes_opportunities(ctx: Ctx) -> Any:
    return (
        select(
            opportunities.c.id.label("oid"),
            opportunities.c.lead_id,
            opportunities.c.created_at.label("t"),
            opportunities.c.amount,
            opportunities.c.source.label("fallback"),
        )
        .where(in_span(ctx, opportunities.c.created_at))
        .subquery("outcomes")
    )


def _outcomes_revenue(ctx: Ctx) -> Any:
    lead_id = func.coalesce(revenue.c.lead_id, opportunities.c.lead_id)
    return (
        select(
            revenue.c.id.label("oid"),
            lead_id.label("lead_id"),
            revenue.c.recognized_at.label("t"),
            revenue.c.amount,
            opportunities.c.source.label("fallback"),
        )
        .select_from(revenue.outerjoin(opportunities, opportunities.c.id == revenue.c.opportunity_id))
        .where(in_span(ctx, revenue.c.recognized_at))
        .subquery("outcomes")
    )


def _money_rows(ctx: Ctx, found: dict[tuple[str, Any], float], **extra: Any) -> Rows:
    return [
        {
            "period": k[0],
            "group": k[1],
            "value": money(Decimal(str(round(found.get(k, 0.0), 2)))),
            "currency": ctx.ws.config.workspace.currency,
            **extra,
        }
        for k in _keys(ctx, found, fill=False)
    ]


@metric(
    "pipeline_contribution",
    "Pipeline contribution",
    "future revenue potential created by leads",
    "money",
    "sum of opportunity amounts created in period from leads, by source (attribution model: model=)",
)
def pipeline_contribution(ctx: Ctx) -> Rows:
    model = attribution.check_model(ctx.q.extra.get("model"))
    found = attribution.attribute(ctx, _outcomes_opportunities(ctx), model, attribution.dimension(ctx))
    return _money_rows(ctx, found, model=model)
