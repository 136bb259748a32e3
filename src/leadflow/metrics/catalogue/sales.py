"""Opportunity metrics: close and win rates, the open pipeline (value, growth, forecast),
the funnel reached and how fast leads and deals move through it."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, or_, select

from leadflow import events as ev
from leadflow.db.tables import lead_events, leads, opportunities, sources
from leadflow.metrics import queries as legacy
from leadflow.metrics.catalogue import declared
from leadflow.metrics.catalogue.define import Rows, _keys, _lead_grp, metric
from leadflow.metrics.measures import (
    Ctx,
    durations,
    first_opportunity,
    first_reach,
    in_span,
    lead_population,
    live,
    merge_rates,
    money,
    population_rate,
    rate_row,
    safe_div,
    seconds_between,
)
from leadflow.metrics.periods import Period, periods_table


def _opp_population(ctx: Ctx, t0: Any, t1: Any, *where: Any) -> Any:
    frm = opportunities.outerjoin(leads, leads.c.id == opportunities.c.lead_id).outerjoin(
        sources, sources.c.id == func.coalesce(leads.c.source, opportunities.c.source)
    )
    return (
        select(ctx.grp(ctx.opp_dims()), t0.label("t0"), t1.label("t1"))
        .select_from(frm)
        .where(*where)
        .subquery("opp_pop")
    )


@metric(
    "opportunity_to_customer_rate",
    "Opportunity-to-customer rate",
    "opportunities that become customers",
    "rate",
    "won opportunities / opportunities created (cohort)",
)
def opportunity_to_customer_rate(ctx: Ctx) -> Rows:
    won = case((opportunities.c.status == "won", opportunities.c.closed_at), else_=None)
    return population_rate(ctx, _opp_population(ctx, opportunities.c.created_at, won))


def _closed(ctx: Ctx, *where: Any) -> Rows:
    closed = opportunities.c.status.in_(("won", "lost"))
    pop = _opp_population(ctx, opportunities.c.closed_at, opportunities.c.status, closed, *where)
    p = ctx.table()
    stmt = (
        select(
            p.c.label,
            pop.c.grp,
            func.count().label("den"),
            func.sum(case((pop.c.t1 == "won", 1), else_=0)).label("num"),
        )
        .select_from(pop.join(p, and_(pop.c.t0 >= p.c.p_start, pop.c.t0 < p.c.p_end)))
        .group_by(p.c.label, pop.c.grp)
    )
    found = list(ctx.conn.execute(stmt))
    return merge_rates(
        ctx,
        {(r.label, r.grp): r.num for r in found},
        {(r.label, r.grp): r.den for r in found},
        "no opportunity closed in this period",
    )


@metric(
    "close_rate",
    "Close Rate",
    "closed deals out of opportunities worked",
    "rate",
    "won / (won + lost) opportunities closed in period",
)
def close_rate(ctx: Ctx) -> Rows:
    return _closed(ctx)


@metric(
    "win_rate",
    "Win Rate",
    "marketing-sourced opportunities that are won",
    "rate",
    "won / (won + lost) opportunities closed in period whose lead (or, for imported history, the "
    "opportunity itself) is marketing-sourced",
    note=declared.note(
        "closed opportunities", "as marketing-sourced (marketing: true, or by default kind inbound or referral)"
    ),
    left_out=declared.closed_opportunities_left_out,
)
def win_rate(ctx: Ctx) -> Rows:
    return _closed(ctx, sources.c.marketing.is_(True))


def _open_at(at: Any) -> Any:
    return and_(
        opportunities.c.created_at < at, or_(opportunities.c.closed_at.is_(None), opportunities.c.closed_at >= at)
    )


def _snapshot(ctx: Ctx, at_end: bool = True, periods: list[Period] | None = None) -> dict[tuple[str, Any], Any]:
    """Open pipeline at each period's end (or start): count, amount, weighted amount, mean probability."""
    p = periods_table(periods or ctx.periods, "snap")
    at = p.c.p_end if at_end else p.c.p_start
    grp = ctx.grp(ctx.opp_dims())
    stmt = (
        select(
            p.c.label,
            grp,
            func.count().label("n"),
            func.sum(opportunities.c.amount).label("amount"),
            func.sum(opportunities.c.amount * func.coalesce(opportunities.c.probability, 0)).label("weighted"),
            func.avg(opportunities.c.probability).label("prob"),
            func.sum(opportunities.c.probability).label("expected"),
            func.count(opportunities.c.probability).label("with_prob"),
        )
        .select_from(opportunities.outerjoin(leads, leads.c.id == opportunities.c.lead_id).join(p, _open_at(at)))
        .where(opportunities.c.status != "void")
        .group_by(p.c.label, grp)
    )
    return {(r.label, r.grp): r._mapping for r in ctx.conn.execute(stmt)}


@metric(
    "forecasted_win_rate",
    "Forecasted Win Rate",
    "expected win likelihood of the open pipeline",
    "rate",
    "mean predicted win probability of opportunities open at the period end (expected wins = sum of probabilities)",
)
def forecasted_win_rate(ctx: Ctx) -> Rows:
    snap = _snapshot(ctx)
    out = []
    for k in _keys(ctx, snap):
        m = snap.get(k)
        with_prob = int(m["with_prob"]) if m else 0
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": float(m["prob"]) if m and with_prob else None,
                "expected_wins": float(m["expected"] or 0) if m else 0.0,
                "open": int(m["n"]) if m else 0,
                "with_probability": with_prob,
                "reason": None if with_prob else "no open opportunity has a predicted probability",
            }
        )
    return out


# -- funnel and velocity ----------------------------------------------------------------------


@metric(
    "stage_reached",
    "Stage Reached",
    "how far leads get before falling out or winning",
    "distribution",
    "for the cohort, the distribution of the furthest stage reached (count and share per stage), "
    "conversion between consecutive stages, and the opportunities created by pipeline status",
)
def stage_reached(ctx: Ctx) -> Rows:
    rows = legacy.stage_reached(ctx.conn, ctx.ws, ctx.q)
    order = ctx.order
    for r in rows:
        r["value"] = r["cohort"]
        r["conversion"] = [
            {**rate_row(r["period"], r["group"], r["reached"][b], r["reached"][a]), "from": a, "to": b}
            for a, b in itertools.pairwise(order)
        ]
    p = ctx.table()
    grp = ctx.grp(ctx.opp_dims())
    status = case((opportunities.c.status == "open", opportunities.c.pipeline_stage), else_=opportunities.c.status)
    stmt = (
        select(p.c.label, grp, status.label("status"), func.count().label("n"))
        .select_from(
            opportunities.outerjoin(leads, leads.c.id == opportunities.c.lead_id).join(
                p, and_(opportunities.c.created_at >= p.c.p_start, opportunities.c.created_at < p.c.p_end)
            )
        )
        .group_by(p.c.label, grp, status)
    )
    pipeline: dict[tuple[str, Any], dict[str, int]] = {}
    for r in ctx.conn.execute(stmt):
        pipeline.setdefault((r.label, r.grp), {})[r.status] = int(r.n)
    by_key = {(r["period"], r["group"]): r for r in rows}
    for key, dist in pipeline.items():
        row = by_key.get(key)
        if row is None:
            row = {
                "period": key[0],
                "group": key[1],
                "cohort": 0,
                "value": 0,
                "reached": {},
                "furthest": {},
                "share": {},
                "conversion": [],
            }
            rows.append(row)
            by_key[key] = row
        row["opportunities"] = dist
    return sorted(rows, key=lambda v: (v["period"], str(v["group"])))


@metric(
    "stage_velocity",
    "Velocity (time in stage)",
    "how long leads spend in each stage",
    "duration",
    "per stage, duration between entering the stage and leaving it (median, mean, p90; stays that "
    "began in the period, open stays counted as pending)",
)
def stage_velocity(ctx: Ctx) -> Rows:
    e, nxt = lead_events.alias("stay"), lead_events.alias("nxt")
    left = (
        select(func.min(nxt.c.occurred_at))
        .where(
            nxt.c.lead_id == e.c.lead_id,
            nxt.c.type == ev.STAGE_CHANGED,
            or_(nxt.c.occurred_at > e.c.occurred_at, and_(nxt.c.occurred_at == e.c.occurred_at, nxt.c.id > e.c.id)),
        )
        .scalar_subquery()
    )
    pop = (
        select(_lead_grp(ctx), e.c.stage.label("stage"), e.c.occurred_at.label("t0"), left.label("t1"))
        .select_from(e.join(leads, leads.c.id == e.c.lead_id))
        .where(e.c.type == ev.STAGE_CHANGED, live(), in_span(ctx, e.c.occurred_at))
        .subquery("stays")
    )
    return durations(ctx, pop, extra_key="stage")


@metric(
    "deal_velocity",
    "Deal Velocity",
    "speed from first contact to closed deal",
    "duration",
    "duration from first contact (else the opportunity's creation) to won, for opportunities won in "
    "period; pending = opportunities open at the period end",
)
def deal_velocity(ctx: Ctx) -> Rows:
    start = func.coalesce(leads.c.first_contact_at, opportunities.c.created_at)
    pop = _opp_population(ctx, start, opportunities.c.closed_at, opportunities.c.status == "won")
    pop = select(pop.c.grp, pop.c.t0, pop.c.t1, pop.c.t1.label("at")).where(in_span(ctx, pop.c.t1)).subquery("won")
    rows = durations(ctx, pop, anchor="at", pending=False)
    snap = _snapshot(ctx)
    have = {(r["period"], r["group"]) for r in rows}
    for k in snap:
        if k not in have:
            rows.append(
                {
                    "period": k[0],
                    "group": k[1],
                    "value": None,
                    "median": None,
                    "mean": None,
                    "p90": None,
                    "count": 0,
                    "pending": 0,
                    "unit": "hours",
                    "reason": "no deal won in this period",
                }
            )
    for r in rows:
        m = snap.get((r["period"], r["group"]))
        r["pending"] = int(m["n"]) if m else 0
    return sorted(rows, key=lambda r: (r["period"], str(r["group"])))


@metric(
    "opportunity_creation_velocity",
    "Opportunity Creation Velocity (from MQL)",
    "time from MQL to opportunity",
    "duration",
    "duration MQL → first opportunity created, for leads reaching MQL in period (pending: no opportunity yet)",
)
def opportunity_creation_velocity(ctx: Ctx) -> Rows:
    t0 = first_reach(ctx, "mql")
    return durations(ctx, lead_population(ctx, first_opportunity(), t0.is_not(None), t0=t0))


@metric(
    "pipeline_velocity",
    "Pipeline Velocity",
    "revenue the pipeline produces per day",
    "money",
    "(open opportunities at period end × average won deal value × close rate) / average sales cycle in days "
    "(won deals closed in period; the average deal is over the won deals with an amount, and "
    "won_without_amount says how many had none)",
)
def pipeline_velocity(ctx: Ctx) -> Rows:
    snap = _snapshot(ctx)
    p = ctx.table()
    grp = ctx.grp(ctx.opp_dims())
    cycle = seconds_between(opportunities.c.created_at, opportunities.c.closed_at) / 86400.0
    won = opportunities.c.status == "won"
    stmt = (
        select(
            p.c.label,
            grp,
            func.sum(case((won, 1), else_=0)).label("won"),
            func.count().label("closed"),
            func.avg(case((won, opportunities.c.amount), else_=None)).label("deal"),
            func.sum(case((and_(won, opportunities.c.amount.is_(None)), 1), else_=0)).label("no_amount"),
            func.avg(case((won, cycle), else_=None)).label("cycle"),
        )
        .select_from(
            opportunities.outerjoin(leads, leads.c.id == opportunities.c.lead_id).join(
                p, and_(opportunities.c.closed_at >= p.c.p_start, opportunities.c.closed_at < p.c.p_end)
            )
        )
        .where(opportunities.c.status.in_(("won", "lost")))
        .group_by(p.c.label, grp)
    )
    closed = {(r.label, r.grp): r for r in ctx.conn.execute(stmt)}
    out = []
    for k in _keys(ctx, snap, closed):
        s, c = snap.get(k), closed.get(k)
        n_open = int(s["n"]) if s else 0
        n_won = int(c.won or 0) if c else 0
        no_amount = int(c.no_amount or 0) if c else 0
        value, reason, note = None, None, None
        if not n_won:
            reason = "no deal won in this period"
        elif c.deal is None:
            reason = f"no deal won in this period has an amount ({n_won} won)"
        elif not c.cycle:
            reason = "sales cycle of zero days"
        else:
            velocity = n_open * float(c.deal) * (n_won / c.closed) / float(c.cycle)
            value = money(Decimal(str(round(velocity, 2))))
        if no_amount and c.deal is not None:
            note = f"average deal over the won deals with an amount: {n_won - no_amount} of {n_won}"
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": value,
                "open": n_open,
                "average_deal": money(c.deal) if c and c.deal is not None else None,
                "win_rate": (n_won / c.closed) if c else None,
                "cycle_days": float(c.cycle) if c and c.cycle is not None else None,
                "won": n_won,
                "won_without_amount": no_amount,
                "currency": ctx.ws.config.workspace.currency,
                "reason": reason,
                "note": note,
            }
        )
    return out


@metric(
    "pipeline_value",
    "Pipeline Value",
    "potential revenue in the open pipeline",
    "money",
    "sum of open opportunity amounts at the period end, and the probability-weighted sum",
)
def pipeline_value(ctx: Ctx) -> Rows:
    snap = _snapshot(ctx)
    return [
        {
            "period": k[0],
            "group": k[1],
            "value": money(snap[k]["amount"] or Decimal(0)) if k in snap else "0.00",
            "weighted": money(snap[k]["weighted"] or 0) if k in snap else "0.00",
            "open": int(snap[k]["n"]) if k in snap else 0,
            "currency": ctx.ws.config.workspace.currency,
        }
        for k in _keys(ctx, snap)
    ]


@metric(
    "pipeline_growth",
    "Sales Pipeline Growth",
    "change in pipeline over the period",
    "ratio",
    "(pipeline value at period end − at period start) / at period start; also by count",
)
def pipeline_growth(ctx: Ctx) -> Rows:
    end, start = _snapshot(ctx, True), _snapshot(ctx, False)
    out = []
    for k in _keys(ctx, end, start):
        v1 = float(end[k]["amount"] or 0) if k in end else 0.0
        v0 = float(start[k]["amount"] or 0) if k in start else 0.0
        n1 = int(end[k]["n"]) if k in end else 0
        n0 = int(start[k]["n"]) if k in start else 0
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": safe_div(v1 - v0, v0),
                "count_growth": safe_div(n1 - n0, n0),
                "start_value": money(Decimal(str(v0))),
                "end_value": money(Decimal(str(v1))),
                "start_count": n0,
                "end_count": n1,
                "reason": None if v0 else "no open pipeline at the period start",
            }
        )
    return out
