"""The KPI catalogue of ``shared/spec/kpis.md``: every metric under its id, with its computation.

Each computation builds SQL (SQLAlchemy Core) that the database aggregates; Python only merges
the few aggregate rows per (period, group) and does the final arithmetic of composite metrics
(e.g. LTV / CAC). Row shapes by unit:

- count / money: ``value`` (money as a decimal string, with ``currency``);
- rate: ``value``, ``numerator``, ``denominator``, ``ci_low``/``ci_high`` (95% Wilson), ``reason``
  when the denominator is 0 (``value`` is then null);
- duration: ``value`` (= median), ``median``, ``mean``, ``p90`` in hours, ``count``, ``pending``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from leadflow import events as ev
from leadflow.db.tables import lead_events, leads, opportunities, revenue, sources, spend, visitors, web_sessions
from leadflow.errors import InvalidInput, Problem
from leadflow.metrics import attribution
from leadflow.metrics import queries as legacy
from leadflow.metrics.measures import (
    STAGE_CHANGED,
    Ctx,
    count_rows,
    counts,
    day_number,
    durations,
    first_event,
    first_in_period,
    first_opportunity,
    first_reach,
    in_span,
    keyed,
    lead_population,
    live,
    merge_rates,
    money,
    population_rate,
    rate_row,
    safe_div,
    seconds_between,
)
from leadflow.metrics.periods import Period, periods_table, split
from leadflow.metrics.registry import Metric, register

Rows = list[dict[str, Any]]


def metric(id: str, name: str, definition: str, unit: str, formula: str) -> Callable[[Callable[[Ctx], Rows]], Any]:
    def wrap(fn: Callable[[Ctx], Rows]) -> Callable[[Ctx], Rows]:
        register(Metric(id, name, definition, unit, formula, lambda conn, ws, q: fn(Ctx(conn, ws, q))))
        return fn

    return wrap


def legacy_metric(id: str, name: str, definition: str, unit: str, formula: str, fn: Callable[..., Rows]) -> None:
    register(Metric(id, name, definition, unit, formula, fn))


def _lead_grp(ctx: Ctx) -> Any:
    return ctx.grp()


def _keys(ctx: Ctx, *found: dict[tuple[str, Any], Any], fill: bool = True) -> list[tuple[str, Any]]:
    keys: set[tuple[str, Any]] = set()
    for f in found:
        keys |= set(f)
    if ctx.q.by is None and fill:
        keys |= {(p.label, None) for p in ctx.periods}
    return sorted(keys, key=lambda k: (k[0], str(k[1])))


def _stage_is(ctx: Ctx, stage: str) -> Callable[[Any], Any]:
    later = ctx.later(stage)
    return lambda e: and_(e.c.type == STAGE_CHANGED, e.c.stage.in_(later))


def _event_is(*types: str) -> Callable[[Any], Any]:
    return lambda e: e.c.type.in_(types)


def _events_grouped(
    ctx: Ctx, types: tuple[str, ...], value: Any = None, extra: Any = None
) -> dict[tuple[str, Any], Any]:
    """Events of ``types`` in each period (anonymous ones count under no group)."""
    frm = lead_events.outerjoin(leads, leads.c.id == lead_events.c.lead_id)
    where = [lead_events.c.type.in_(types)]
    if extra is not None:
        where.append(extra)
    return counts(ctx, frm, lead_events.c.occurred_at, _lead_grp(ctx), *where, value=value)


# -- volume ------------------------------------------------------------------------------------

legacy_metric(
    "net_lead_flow",
    "Net Lead Flow",
    "change in the count of qualified, useful leads",
    "count",
    "new leads in period − leads that became lost, disqualified or inactive in period "
    "(inactive = no activity for inactive_after_days)",
    legacy.net_lead_flow,
)
legacy_metric(
    "lead_volume",
    "Lead volume",
    "how many leads were captured",
    "count",
    "count of leads created in period (a merged duplicate counts once)",
    legacy.lead_volume,
)


@metric(
    "inbound_lead_volume",
    "Inbound Lead Volume",
    "leads from inbound channels",
    "count",
    "leads created in period whose source's kind is inbound",
)
def inbound_lead_volume(ctx: Ctx) -> Rows:
    frm = leads.join(sources, sources.c.id == leads.c.source)
    return count_rows(ctx, counts(ctx, frm, leads.c.created_at, _lead_grp(ctx), live(), sources.c.kind == "inbound"))


@metric(
    "monthly_signups",
    "Number of Monthly Sign-ups",
    "new sign-ups per month",
    "count",
    "count of signup events per calendar month (per the asked grain when one is given)",
)
def monthly_signups(ctx: Ctx) -> Rows:
    if ctx.q.grain is None:
        ctx.__dict__["periods"] = split(ctx.q.start, ctx.q.end, "month", ctx.tz)
    return count_rows(ctx, _events_grouped(ctx, ("signup",)))


@metric(
    "lead_quality_score",
    "Lead Quality Score",
    "average likelihood-to-convert of leads",
    "score",
    "mean (and distribution by quartile band) of the current score of leads created in period",
)
def lead_quality_score(ctx: Ctx) -> Rows:
    p = ctx.table()
    grp = _lead_grp(ctx)
    s = leads.c.score
    bands = {"0-24": s < 25, "25-49": and_(s >= 25, s < 50), "50-74": and_(s >= 50, s < 75), "75+": s >= 75}
    stmt = (
        select(
            p.c.label,
            grp,
            func.count().label("n"),
            func.avg(s).label("mean"),
            *[func.sum(case((cond, 1), else_=0)).label(f"b{i}") for i, cond in enumerate(bands.values())],
        )
        .select_from(leads.join(p, and_(leads.c.created_at >= p.c.p_start, leads.c.created_at < p.c.p_end)))
        .where(live())
        .group_by(p.c.label, grp)
    )
    out = []
    for r in ctx.conn.execute(stmt):
        m = r._mapping
        out.append(
            {
                "period": r.label,
                "group": r.grp,
                "value": round(float(m["mean"]), 4),
                "count": int(m["n"]),
                "distribution": {name: int(m[f"b{i}"]) for i, name in enumerate(bands)},
            }
        )
    return sorted(out, key=lambda r: (r["period"], str(r["group"])))


# -- qualified leads ---------------------------------------------------------------------------


@metric(
    "mqls",
    "Marketing Qualified Leads",
    "leads that met MQL criteria",
    "count",
    "count of leads entering MQL (or a later stage, first time) in period",
)
def mqls(ctx: Ctx) -> Rows:
    return count_rows(ctx, first_in_period(ctx, _stage_is(ctx, "mql"), _lead_grp(ctx)))


@metric(
    "sqls",
    "Sales Qualified Leads",
    "leads accepted as ready for sales",
    "count",
    "count of leads entering SQL (or a later stage, first time) in period",
)
def sqls(ctx: Ctx) -> Rows:
    return count_rows(ctx, first_in_period(ctx, _stage_is(ctx, "sql"), _lead_grp(ctx)))


@metric(
    "sqos",
    "Sales Qualified Opportunities",
    "SQLs that became pipeline opportunities",
    "count",
    "count of opportunities created in period whose lead had reached SQL (a stage from sql up to, "
    "not including, opportunity) by then",
)
def sqos(ctx: Ctx) -> Rows:
    order = ctx.order
    sql_stages = order[order.index("sql") : order.index("opportunity")]
    e = lead_events.alias("sq")
    was_sql = exists().where(
        e.c.lead_id == opportunities.c.lead_id,
        e.c.type == ev.STAGE_CHANGED,
        e.c.stage.in_(sql_stages),
        e.c.occurred_at <= opportunities.c.created_at,
    )
    frm = opportunities.join(leads, leads.c.id == opportunities.c.lead_id)
    return count_rows(ctx, counts(ctx, frm, opportunities.c.created_at, ctx.grp(ctx.opp_dims()), was_sql))


@metric(
    "pqls",
    "Product Qualified Leads",
    "users whose product usage meets the PQL rule",
    "count",
    "count of leads first meeting the PQL rule (pql_reached) in period",
)
def pqls(ctx: Ctx) -> Rows:
    return count_rows(ctx, first_in_period(ctx, _event_is(ev.PQL_REACHED), _lead_grp(ctx)))


@metric(
    "pqas",
    "Product Qualified Accounts",
    "accounts whose combined usage meets the PQA rule",
    "count",
    "count of accounts first meeting the PQA rule (pqa_reached) in period",
)
def pqas(ctx: Ctx) -> Rows:
    e, prior = lead_events.alias("e"), lead_events.alias("prior")
    mine, theirs = leads.alias("mine"), leads.alias("theirs")
    earlier = (
        select(prior.c.id)
        .select_from(prior.join(theirs, theirs.c.id == prior.c.lead_id))
        .where(
            theirs.c.account_id == leads.c.account_id,
            prior.c.type == ev.PQA_REACHED,
            prior.c.occurred_at < e.c.occurred_at,
        )
        .exists()
    )
    del mine
    frm = e.join(leads, leads.c.id == e.c.lead_id)
    found = counts(
        ctx,
        frm,
        e.c.occurred_at,
        _lead_grp(ctx),
        e.c.type == ev.PQA_REACHED,
        leads.c.account_id.is_not(None),
        ~earlier,
        value=func.count(func.distinct(leads.c.account_id)),
    )
    return count_rows(ctx, found)


# -- conversion rates (cohort by default) -------------------------------------------------------


def _cohort(ctx: Ctx, outcome: Any, *where: Any, t0: Any = None) -> Rows:
    return population_rate(ctx, lead_population(ctx, outcome, *where, t0=t0))


@metric(
    "qualification_rate",
    "Qualification rate",
    "share of leads meeting qualification criteria",
    "rate",
    "leads reaching MQL / leads (cohort)",
)
def qualification_rate(ctx: Ctx) -> Rows:
    return _cohort(ctx, first_reach(ctx, "mql"))


@metric(
    "disqualification_rate",
    "Disqualification rate",
    "share of leads rejected, and why",
    "rate",
    "leads disqualified / leads (cohort), with a breakdown by reason",
)
def disqualification_rate(ctx: Ctx) -> Rows:
    rows = _cohort(ctx, first_reach(ctx, "disqualified"))
    e = lead_events.alias("dq")
    reason = func.coalesce(e.c.data["reason"].as_string(), literal("(none)"))
    p = ctx.table()
    stmt = (
        select(p.c.label, _lead_grp(ctx), reason.label("reason"), func.count(func.distinct(leads.c.id)).label("n"))
        .select_from(
            leads.join(p, and_(leads.c.created_at >= p.c.p_start, leads.c.created_at < p.c.p_end)).join(
                e, and_(e.c.lead_id == leads.c.id, e.c.type == ev.STAGE_CHANGED, e.c.stage == "disqualified")
            )
        )
        .where(live())
        .group_by(p.c.label, _lead_grp(ctx), reason)
    )
    reasons: dict[tuple[str, Any], dict[str, int]] = {}
    for r in ctx.conn.execute(stmt):
        reasons.setdefault((r.label, r.grp), {})[r.reason] = int(r.n)
    for row in rows:
        row["reasons"] = reasons.get((row["period"], row["group"]), {})
    return rows


@metric(
    "mql_criteria_rate",
    "Percent of MQLs Meeting Qualification Criteria",
    "MQL quality as judged by sales acceptance",
    "rate",
    "MQLs accepted by sales (handoff accepted) / MQLs handed off (leads first handed off in period)",
)
def mql_criteria_rate(ctx: Ctx) -> Rows:
    t0 = first_event((ev.HANDOFF_SENT,))
    pop = lead_population(ctx, first_event((ev.HANDOFF_ACCEPTED,)), t0.is_not(None), t0=t0)
    return population_rate(ctx, pop, "no MQL was handed off in this period")


@metric(
    "lead_to_sql_rate",
    "Lead-to-SQL Conversion Rate",
    "leads that become SQLs",
    "rate",
    "leads reaching SQL / leads (cohort)",
)
def lead_to_sql_rate(ctx: Ctx) -> Rows:
    return _cohort(ctx, first_reach(ctx, "sql"))


@metric(
    "lead_to_opportunity_rate",
    "Lead-to-Opportunity Conversion Rate",
    "leads that become opportunities",
    "rate",
    "leads with an opportunity / leads (cohort)",
)
def lead_to_opportunity_rate(ctx: Ctx) -> Rows:
    return _cohort(ctx, first_opportunity())


@metric(
    "sql_to_opportunity_rate",
    "SQL-to-Opportunity Conversion Rate",
    "SQLs that become opportunities",
    "rate",
    "SQLs with an opportunity / SQLs (cohort: leads first reaching SQL in period)",
)
def sql_to_opportunity_rate(ctx: Ctx) -> Rows:
    t0 = first_reach(ctx, "sql")
    pop = lead_population(ctx, first_opportunity(), t0.is_not(None), t0=t0)
    return population_rate(ctx, pop, "no lead reached SQL in this period")


@metric(
    "lead_conversion_rate",
    "Lead Conversion Rate",
    "leads that take the target action",
    "rate",
    "leads reaching the workspace's target stage (default customer) / leads (cohort)",
)
def lead_conversion_rate(ctx: Ctx) -> Rows:
    return _cohort(ctx, first_reach(ctx, ctx.ws.rules.stages.target))


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
    "(won deals closed in period)",
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
        value, reason = None, None
        if c is None or not c.won:
            reason = "no deal won in this period"
        elif not c.cycle:
            reason = "sales cycle of zero days"
        else:
            velocity = n_open * float(c.deal) * (c.won / c.closed) / float(c.cycle)
            value = money(Decimal(str(round(velocity, 2))))
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": value,
                "open": n_open,
                "average_deal": money(c.deal) if c and c.deal is not None else None,
                "win_rate": (c.won / c.closed) if c else None,
                "cycle_days": float(c.cycle) if c and c.cycle is not None else None,
                "currency": ctx.ws.config.workspace.currency,
                "reason": reason,
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


# -- responsiveness ---------------------------------------------------------------------------


@metric(
    "time_to_first_contact",
    "Time to First Contact",
    "responsiveness to a new lead",
    "duration",
    "duration from lead creation to the first outbound contact (call, email sent by a person, meeting), "
    "leads created in period; not contacted yet = pending",
)
def time_to_first_contact(ctx: Ctx) -> Rows:
    return durations(ctx, lead_population(ctx, leads.c.first_contact_at))


@metric(
    "response_time",
    "Response time",
    "same as above, per owner/team, with SLA attainment",
    "duration",
    "time_to_first_contact plus the share of leads contacted within their SLA (leads with a deadline "
    "that has passed or that were contacted)",
)
def response_time(ctx: Ctx) -> Rows:
    rows = {(r["period"], r["group"]): r for r in time_to_first_contact(ctx)}
    met = and_(leads.c.first_contact_at.is_not(None), leads.c.first_contact_at <= leads.c.sla_due_at)
    due = and_(
        leads.c.sla_due_at.is_not(None), or_(leads.c.first_contact_at.is_not(None), leads.c.sla_due_at < ctx.now)
    )
    p = ctx.table()
    grp = _lead_grp(ctx)
    columns, group_by = keyed(ctx, p.c.label, grp)
    stmt = (
        select(*columns, func.count().label("den"), func.sum(case((met, 1), else_=0)).label("num"))
        .select_from(leads.join(p, and_(leads.c.created_at >= p.c.p_start, leads.c.created_at < p.c.p_end)))
        .where(live(), due)
        .group_by(*group_by)
    )
    sla = {
        (r.label, r.grp): rate_row(r.label, r.grp, int(r.num), int(r.den))
        for r in ctx.conn.execute(stmt)
        if r.label is not None
    }
    for k in sla:
        rows.setdefault(k, {"period": k[0], "group": k[1], "value": None, "count": 0, "pending": 0, "unit": "hours"})
    for k, r in rows.items():
        s = sla.get(k) or rate_row(k[0], k[1], 0, 0, "no lead with an SLA deadline due")
        r["sla_attainment"] = {x: s[x] for x in ("value", "numerator", "denominator", "ci_low", "ci_high", "reason")}
    return sorted(rows.values(), key=lambda r: (r["period"], str(r["group"])))


@metric(
    "time_to_first_meeting",
    "Time to First Meeting",
    "speed to the first meeting",
    "duration",
    "duration from lead creation to the first meeting_held, leads created in period",
)
def time_to_first_meeting(ctx: Ctx) -> Rows:
    return durations(ctx, lead_population(ctx, first_event(("meeting_held",))))


ENGAGED = (
    "email_replied",
    "email_clicked",
    "email_opened",
    "meeting_scheduled",
    "meeting_held",
    "product_usage",
    "chat",
    "form_submit",
    "signup",
    "trial_started",
    "subscription_started",
)


@metric(
    "first_contact_engagement_rate",
    "First Contact Engagement Rate",
    "engagement after the very first touch",
    "rate",
    "leads with an engagement (reply, click, open, meeting, product action) within "
    "engagement_window_days after the first contact / leads first contacted in period",
)
def first_contact_engagement_rate(ctx: Ctx) -> Rows:
    window = ctx.ws.config.metrics.engagement_window_days * 86400.0
    e = lead_events.alias("eng")
    engaged = exists().where(
        e.c.lead_id == leads.c.id,
        e.c.type.in_(ENGAGED),
        e.c.occurred_at > leads.c.first_contact_at,
        seconds_between(leads.c.first_contact_at, e.c.occurred_at) <= window,
    )
    frm = leads
    grp = _lead_grp(ctx)
    den = counts(ctx, frm, leads.c.first_contact_at, grp, live())
    num = counts(ctx, frm, leads.c.first_contact_at, grp, live(), engaged)
    return merge_rates(ctx, num, den, "no lead was first contacted in this period")


# -- money ------------------------------------------------------------------------------------


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


# -- web ----------------------------------------------------------------------------------------

SESSION_DIMENSIONS = {
    "source": web_sessions.c.source,
    "medium": web_sessions.c.medium,
    "campaign": web_sessions.c.campaign,
    "landing_page": web_sessions.c.landing_page,
}


@metric(
    "traffic_source_distribution",
    "Traffic Source Distribution",
    "where visitors come from",
    "distribution",
    "share of sessions by source/medium",
)
def traffic_source_distribution(ctx: Ctx) -> Rows:
    key = (
        func.coalesce(web_sessions.c.source, literal("(direct)"))
        + literal(" / ")
        + func.coalesce(web_sessions.c.medium, literal("(none)"))
    )
    found = counts(ctx, web_sessions, web_sessions.c.started_at, key.label("grp"))
    totals: dict[str, int] = {}
    for (label, _), n in found.items():
        totals[label] = totals.get(label, 0) + int(n)
    return sorted(
        ({**rate_row(k[0], k[1], int(n), totals[k[0]]), "sessions": int(n)} for k, n in found.items()),
        key=lambda r: (r["period"], -r["sessions"]),
    )


@metric(
    "website_traffic",
    "Website Traffic",
    "visits to the site",
    "count",
    "count of sessions (a session ends after 30 minutes without a page view)",
)
def website_traffic(ctx: Ctx) -> Rows:
    return count_rows(ctx, counts(ctx, web_sessions, web_sessions.c.started_at, ctx.grp(SESSION_DIMENSIONS)))


@metric("page_views", "Page Views", "page loads", "count", "count of page_view events")
def page_views(ctx: Ctx) -> Rows:
    return count_rows(ctx, _events_grouped(ctx, ("page_view",)))


@metric(
    "unique_page_views",
    "Unique Page Views",
    "distinct pages viewed per session",
    "count",
    "count of distinct (session, page) pairs",
)
def unique_page_views(ctx: Ctx) -> Rows:
    e = lead_events
    p = ctx.table()
    page = func.coalesce(e.c.data["page"].as_string(), e.c.data["url"].as_string())
    pairs = (
        select(p.c.label, ctx.grp(SESSION_DIMENSIONS), web_sessions.c.id.label("sid"), page.label("page"))
        .select_from(
            e.join(
                web_sessions,
                and_(
                    web_sessions.c.visitor_id == e.c.visitor_id,
                    e.c.occurred_at >= web_sessions.c.started_at,
                    e.c.occurred_at <= web_sessions.c.last_seen_at,
                ),
            ).join(p, and_(e.c.occurred_at >= p.c.p_start, e.c.occurred_at < p.c.p_end))
        )
        .where(e.c.type == "page_view")
        .distinct()
        .subquery("pairs")
    )
    stmt = select(pairs.c.label, pairs.c.grp, func.count().label("n")).group_by(pairs.c.label, pairs.c.grp)
    return count_rows(ctx, {(r.label, r.grp): r.n for r in ctx.conn.execute(stmt)})


@metric(
    "unique_visitors",
    "Unique Visitors",
    "distinct people visiting",
    "count",
    "distinct visitor ids with a page view in period",
)
def unique_visitors(ctx: Ctx) -> Rows:
    return count_rows(
        ctx, _events_grouped(ctx, ("page_view",), value=func.count(func.distinct(lead_events.c.visitor_id)))
    )


@metric(
    "new_visitors", "New Visitors", "first-time visitors", "count", "visitors whose first ever page view is in period"
)
def new_visitors(ctx: Ctx) -> Rows:
    frm = visitors.outerjoin(leads, leads.c.id == visitors.c.lead_id)
    return count_rows(ctx, counts(ctx, frm, visitors.c.first_seen_at, _lead_grp(ctx)))


CAPTURES = (ev.LEAD_CREATED, ev.LEAD_CAPTURED, "form_submit")


def _session_captured() -> Any:
    e = lead_events.alias("cap")
    return exists().where(
        or_(
            e.c.visitor_id == web_sessions.c.visitor_id,
            and_(web_sessions.c.lead_id.is_not(None), e.c.lead_id == web_sessions.c.lead_id),
        ),
        e.c.type.in_(CAPTURES),
        e.c.occurred_at >= web_sessions.c.started_at,
        seconds_between(web_sessions.c.last_seen_at, e.c.occurred_at) <= 1800,
    )


@metric(
    "landing_page_conversion_rate",
    "Landing Page Conversion Rate",
    "landing page effectiveness",
    "rate",
    "sessions that landed on the page and produced a capture / sessions that landed on the page "
    "(default breakdown: landing page)",
)
def landing_page_conversion_rate(ctx: Ctx) -> Rows:
    if ctx.q.by and ctx.q.by not in SESSION_DIMENSIONS:
        ctx.grp(SESSION_DIMENSIONS)  # refuses the breakdown, naming the ones sessions have
    grp = (SESSION_DIMENSIONS[ctx.q.by] if ctx.q.by else web_sessions.c.landing_page).label("grp")
    den = counts(ctx, web_sessions, web_sessions.c.started_at, grp)
    num = counts(ctx, web_sessions, web_sessions.c.started_at, grp, _session_captured())
    return merge_rates(ctx, num, den, "no session landed on this page", fill=False)


@metric(
    "conversion_rate",
    "Conversion Rate",
    "visitors or contacts taking the desired action",
    "rate",
    "visitors with a capture / unique visitors reached (with a session), per campaign",
)
def conversion_rate(ctx: Ctx) -> Rows:
    grp = ctx.grp(SESSION_DIMENSIONS)
    den = counts(
        ctx, web_sessions, web_sessions.c.started_at, grp, value=func.count(func.distinct(web_sessions.c.visitor_id))
    )
    num = counts(
        ctx,
        web_sessions,
        web_sessions.c.started_at,
        grp,
        _session_captured(),
        value=func.count(func.distinct(web_sessions.c.visitor_id)),
    )
    return merge_rates(ctx, num, den, "no visitor in this period")


def _after(first: Any, types: tuple[str, ...]) -> Any:
    e = lead_events.alias("later")
    return (
        select(func.min(e.c.occurred_at))
        .where(e.c.lead_id == leads.c.id, e.c.type.in_(types), e.c.occurred_at >= first)
        .scalar_subquery()
    )


@metric(
    "signup_to_subscriber_rate",
    "Sign-Up to Subscriber Conversion Rate",
    "sign-ups that become paying",
    "rate",
    "sign-ups with a later subscription_started / sign-ups (cohort: first sign-up in period)",
)
def signup_to_subscriber_rate(ctx: Ctx) -> Rows:
    t0 = first_event(("signup",))
    pop = lead_population(ctx, _after(t0, ("subscription_started",)), t0.is_not(None), t0=t0)
    return population_rate(ctx, pop, "no sign-up in this period")


@metric(
    "trial_to_paid_rate",
    "Trial-to-Paid Conversion Rate",
    "trials that become paying",
    "rate",
    "trials with a later subscription_started / trials started (cohort)",
)
def trial_to_paid_rate(ctx: Ctx) -> Rows:
    t0 = first_event(("trial_started",))
    pop = lead_population(ctx, _after(t0, ("subscription_started",)), t0.is_not(None), t0=t0)
    return population_rate(ctx, pop, "no trial started in this period")


@metric(
    "signup_source_quality_rate",
    "Signup Source Quality Rate",
    "share of a source's sign-ups meeting quality criteria",
    "rate",
    "sign-ups meeting the quality rule (fit grade A or B, product-qualified, or converted to the target "
    "stage) / sign-ups, per source (default breakdown: source)",
)
def signup_source_quality_rate(ctx: Ctx) -> Rows:
    if ctx.q.by is None:
        ctx.q = type(ctx.q)(**{**ctx.q.__dict__, "by": "source"})
    t0 = first_event(("signup",))
    target = ctx.ws.rules.stages.target
    good = or_(leads.c.grade.in_(("A", "B")), leads.c.pql.is_(True), leads.c.stage == target)
    pop = (
        select(ctx.grp(), t0.label("t0"), case((good, t0), else_=None).label("t1"))
        .where(live(), t0.is_not(None), in_span(ctx, t0))
        .subquery("pop")
    )
    p = ctx.table()
    stmt = (
        select(p.c.label, pop.c.grp, func.count().label("den"), func.count(pop.c.t1).label("num"))
        .select_from(pop.join(p, and_(pop.c.t0 >= p.c.p_start, pop.c.t0 < p.c.p_end)))
        .group_by(p.c.label, pop.c.grp)
    )
    found = list(ctx.conn.execute(stmt))
    return merge_rates(
        ctx,
        {(r.label, r.grp): r.num for r in found},
        {(r.label, r.grp): r.den for r in found},
        "no sign-up in this period",
    )


def _referred() -> Any:
    e = lead_events.alias("ref")
    named = select(e.c.data["referred_lead_id"].as_integer()).where(e.c.type == "referral")
    referral_sources = select(sources.c.id).where(sources.c.kind == "referral")
    return or_(leads.c.id.in_(named), leads.c.source.in_(referral_sources))


@metric(
    "referral_conversion_rate",
    "Referral Conversion Rate",
    "referred leads that convert",
    "rate",
    "referred leads (named in a referral event, or from a source of kind referral) reaching the target "
    "stage / referred leads (cohort)",
)
def referral_conversion_rate(ctx: Ctx) -> Rows:
    return _cohort(ctx, first_reach(ctx, ctx.ws.rules.stages.target), _referred())


@metric(
    "referral_mql_rate",
    "Referral-Generated MQL Rate",
    "referred leads that become MQLs",
    "rate",
    "referred leads reaching MQL / referred leads (cohort)",
)
def referral_mql_rate(ctx: Ctx) -> Rows:
    return _cohort(ctx, first_reach(ctx, "mql"), _referred())


@metric(
    "virality_coefficient",
    "Virality Coefficient",
    "users bringing in new users",
    "ratio",
    "new users referred in period (distinct leads named in referral events) / users (leads with a sign-up) "
    "active at the period start",
)
def virality_coefficient(ctx: Ctx) -> Rows:
    if ctx.q.by is not None:
        raise InvalidInput("not broken down", [Problem("by", "the virality coefficient is for the whole user base")])
    p = ctx.table()
    referred = {
        r.label: int(r.n)
        for r in ctx.conn.execute(
            select(p.c.label, func.count(func.distinct(lead_events.c.data["referred_lead_id"].as_integer())).label("n"))
            .select_from(
                lead_events.join(
                    p, and_(lead_events.c.occurred_at >= p.c.p_start, lead_events.c.occurred_at < p.c.p_end)
                )
            )
            .where(lead_events.c.type == "referral")
            .group_by(p.c.label)
        )
    }
    users = {
        r.label: int(r.n)
        for r in ctx.conn.execute(
            select(p.c.label, func.count(func.distinct(lead_events.c.lead_id)).label("n"))
            .select_from(lead_events.join(p, lead_events.c.occurred_at < p.c.p_start))
            .where(lead_events.c.type == "signup")
            .group_by(p.c.label)
        )
    }
    out = []
    for period in ctx.periods:
        n, u = referred.get(period.label, 0), users.get(period.label, 0)
        out.append(
            {
                "period": period.label,
                "group": None,
                "value": n / u if u else None,
                "referred": n,
                "users": u,
                "reason": None if u else "no user had signed up before the period",
            }
        )
    return out


@metric(
    "viral_cycle_time",
    "Viral Cycle Time",
    "time for a user to bring in a new user",
    "duration",
    "duration from a user's sign-up to the sign-up of the first user they referred (users signing up in "
    "period; pending = none of their referrals has signed up yet)",
)
def viral_cycle_time(ctx: Ctx) -> Rows:
    referrer_signup = first_event(("signup",))
    ref, su = lead_events.alias("r"), lead_events.alias("su")
    first_referred_signup = (
        select(func.min(su.c.occurred_at))
        .select_from(
            ref.join(su, and_(su.c.lead_id == ref.c.data["referred_lead_id"].as_integer(), su.c.type == "signup"))
        )
        .where(ref.c.lead_id == leads.c.id, ref.c.type == "referral")
        .scalar_subquery()
    )
    e = lead_events.alias("any_ref")
    referrer = exists().where(e.c.lead_id == leads.c.id, e.c.type == "referral")
    pop = lead_population(ctx, first_referred_signup, referrer_signup.is_not(None), referrer, t0=referrer_signup)
    return durations(ctx, pop)


# -- email and social ---------------------------------------------------------------------------


def _message_rate(ctx: Ctx, num_type: str, den_type: str = "email_delivered") -> Rows:
    """Unique (lead, message) pairs of ``num_type`` / delivered messages, events in period."""
    msg = func.coalesce(
        lead_events.c.data["message_id"].as_string(), lead_events.c.data["email_id"].as_string(), literal("-")
    )
    p = ctx.table()

    def pairs(t: str) -> dict[tuple[str, Any], int]:
        sub = (
            select(p.c.label, _lead_grp(ctx), lead_events.c.lead_id, msg.label("msg"))
            .select_from(
                lead_events.join(leads, leads.c.id == lead_events.c.lead_id).join(
                    p, and_(lead_events.c.occurred_at >= p.c.p_start, lead_events.c.occurred_at < p.c.p_end)
                )
            )
            .where(lead_events.c.type == t)
            .distinct()
            .subquery("pairs")
        )
        stmt = select(sub.c.label, sub.c.grp, func.count().label("n")).group_by(sub.c.label, sub.c.grp)
        return {(r.label, r.grp): int(r.n) for r in ctx.conn.execute(stmt)}

    return merge_rates(ctx, pairs(num_type), pairs(den_type), "no email delivered in this period")


@metric("open_rate", "Open Rate", "emails opened", "rate", "unique opens / emails delivered")
def open_rate(ctx: Ctx) -> Rows:
    return _message_rate(ctx, "email_opened")


@metric("click_through_rate", "Click-through rate", "emails clicked", "rate", "unique clicks / emails delivered")
def click_through_rate(ctx: Ctx) -> Rows:
    return _message_rate(ctx, "email_clicked")


@metric(
    "response_rate",
    "Response rate",
    "replies to outreach",
    "rate",
    "replies / outreach messages delivered, per channel (email: email_replied / email_delivered)",
)
def response_rate(ctx: Ctx) -> Rows:
    rows = _message_rate(ctx, "email_replied")
    for r in rows:
        r["channel"] = "email"
    return rows


@metric("unsubscribe_rate", "Unsubscribe Rate", "recipients opting out", "rate", "unsubscribes / emails delivered")
def unsubscribe_rate(ctx: Ctx) -> Rows:
    return _message_rate(ctx, "email_unsubscribed")


@metric(
    "newsletter_subscription_growth",
    "Newsletter Subscription Growth",
    "net growth of newsletter audience",
    "ratio",
    "(subscribes − unsubscribes in period) / subscribers at period start",
)
def newsletter_subscription_growth(ctx: Ctx) -> Rows:
    grp = _lead_grp(ctx)
    subs = _events_grouped(ctx, ("newsletter_subscribed",))
    unsubs = _events_grouped(ctx, ("email_unsubscribed",))
    p = ctx.table()
    sign = case((lead_events.c.type == "newsletter_subscribed", 1), else_=-1)
    base = {
        (r.label, r.grp): int(r.n or 0)
        for r in ctx.conn.execute(
            select(p.c.label, grp, func.sum(sign).label("n"))
            .select_from(
                lead_events.join(leads, leads.c.id == lead_events.c.lead_id).join(
                    p, lead_events.c.occurred_at < p.c.p_start
                )
            )
            .where(lead_events.c.type.in_(("newsletter_subscribed", "email_unsubscribed")))
            .group_by(p.c.label, grp)
        )
    }
    out = []
    for k in _keys(ctx, subs, unsubs, base):
        s, u, b = int(subs.get(k) or 0), int(unsubs.get(k) or 0), base.get(k, 0)
        out.append(
            {
                "period": k[0],
                "group": k[1],
                "value": (s - u) / b if b > 0 else None,
                "subscribed": s,
                "unsubscribed": u,
                "subscribers_at_start": b,
                "reason": None if b > 0 else "no subscribers at the period start",
            }
        )
    return out


@metric(
    "likes_shares_comments",
    "Likes, Shares, Comments",
    "social engagement with content",
    "count",
    "counts of social_like, social_share, social_comment events (total in value), per content item and channel "
    "in the breakdown lists",
)
def likes_shares_comments(ctx: Ctx) -> Rows:
    p = ctx.table()
    grp = _lead_grp(ctx)
    content = func.coalesce(lead_events.c.data["content"].as_string(), literal("-"))
    channel = func.coalesce(lead_events.c.data["channel"].as_string(), literal("-"))
    stmt = (
        select(
            p.c.label,
            grp,
            lead_events.c.type,
            content.label("content"),
            channel.label("channel"),
            func.count().label("n"),
        )
        .select_from(
            lead_events.outerjoin(leads, leads.c.id == lead_events.c.lead_id).join(
                p, and_(lead_events.c.occurred_at >= p.c.p_start, lead_events.c.occurred_at < p.c.p_end)
            )
        )
        .where(lead_events.c.type.in_(("social_like", "social_share", "social_comment")))
        .group_by(p.c.label, grp, lead_events.c.type, content, channel)
    )
    out: dict[tuple[str, Any], dict[str, Any]] = {}
    names = {"social_like": "likes", "social_share": "shares", "social_comment": "comments"}
    for r in ctx.conn.execute(stmt):
        row = out.setdefault(
            (r.label, r.grp),
            {"period": r.label, "group": r.grp, "value": 0, "likes": 0, "shares": 0, "comments": 0, "items": []},
        )
        row[names[r.type]] += int(r.n)
        row["value"] += int(r.n)
        row["items"].append({"content": r.content, "channel": r.channel, "type": names[r.type], "count": int(r.n)})
    for k in _keys(ctx):
        out.setdefault(
            k, {"period": k[0], "group": k[1], "value": 0, "likes": 0, "shares": 0, "comments": 0, "items": []}
        )
    return sorted(out.values(), key=lambda r: (r["period"], str(r["group"])))


# -- cohorts beyond the catalogue -------------------------------------------------------------

CURVE_DAYS = (7, 14, 30, 60, 90, 180)


@metric(
    "conversion_curve",
    "Conversion curve by creation month",
    "how fast each monthly cohort converts",
    "distribution",
    "for leads created in each month: share reaching the stage (stage=, default the target) "
    "within 7, 14, 30, 60, 90 and 180 days of creation",
)
def conversion_curve(ctx: Ctx) -> Rows:
    if ctx.q.grain is None:
        ctx.__dict__["periods"] = split(ctx.q.start, ctx.q.end, "month", ctx.tz)
    stage = ctx.q.extra.get("stage") or ctx.ws.rules.stages.target
    if stage not in ctx.order and stage not in ctx.ws.rules.stages.side:
        raise InvalidInput("unknown stage", [Problem("stage", f"{stage!r} is not a stage of this workspace")])
    pop = lead_population(ctx, first_reach(ctx, stage))
    p = ctx.table()
    days = seconds_between(pop.c.t0, pop.c.t1) / 86400.0
    stmt = (
        select(
            p.c.label,
            pop.c.grp,
            func.count().label("n"),
            *[func.sum(case((and_(pop.c.t1.is_not(None), days <= d), 1), else_=0)).label(f"d{d}") for d in CURVE_DAYS],
        )
        .select_from(pop.join(p, and_(pop.c.t0 >= p.c.p_start, pop.c.t0 < p.c.p_end)))
        .group_by(p.c.label, pop.c.grp)
    )
    out = []
    for r in ctx.conn.execute(stmt):
        m = r._mapping
        n = int(m["n"])
        curve = {str(d): int(m[f"d{d}"]) / n for d in CURVE_DAYS}
        out.append(
            {
                "period": r.label,
                "group": r.grp,
                "value": curve[str(ctx.ws.config.metrics.maturity_days)]
                if str(ctx.ws.config.metrics.maturity_days) in curve
                else curve["90"],
                "cohort": n,
                "stage": stage,
                "curve": curve,
            }
        )
    return sorted(out, key=lambda r: (r["period"], str(r["group"])))
