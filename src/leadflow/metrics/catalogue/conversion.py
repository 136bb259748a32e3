"""Lead conversion rates (cohort by default): qualification, disqualification and its reasons,
lead to SQL, opportunity and customer, and the conversion curve of monthly cohorts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, literal, select

from leadflow import events as ev
from leadflow.db.tables import lead_events, leads
from leadflow.errors import InvalidInput, Problem
from leadflow.metrics.catalogue.define import Rows, _lead_grp, metric
from leadflow.metrics.measures import (
    Ctx,
    first_event,
    first_opportunity,
    first_reach,
    lead_population,
    live,
    population_rate,
    seconds_between,
)
from leadflow.metrics.periods import split

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


# -- cohorts beyond the catalogue -------------------------------------------------------------

CURVE_DAYS = (7, 14, 30, 60, 90, 180)


def _curve_maturity(ctx: Ctx) -> int:
    """The day of the curve the value is read at: the query's ``maturity``, else the workspace's
    ``metrics.maturity_days``; one the curve does not have is refused, naming where it came from."""
    asked = ctx.q.extra.get("maturity")
    maturity = int(asked if asked is not None else ctx.ws.config.metrics.maturity_days)
    if maturity in CURVE_DAYS:
        return maturity
    days = ", ".join(map(str, CURVE_DAYS))
    if asked is not None:
        problem = Problem("maturity", f"{maturity} days is not a point of the curve; use one of {days}")
    else:
        problem = Problem(
            "metrics.maturity_days",
            f"leadflow.yaml sets {maturity} days, not a point of the curve; pass maturity= one of {days}",
        )
    raise InvalidInput("conversion_curve has no value at that maturity", [problem])


@metric(
    "conversion_curve",
    "Conversion curve by creation month",
    "how fast each monthly cohort converts",
    "distribution",
    "for leads created in each month: share reaching the stage (stage=, default the target) "
    "within 7, 14, 30, 60, 90 and 180 days of creation; value: the share at the maturity (maturity=, "
    "default metrics.maturity_days, one of those days)",
)
def conversion_curve(ctx: Ctx) -> Rows:
    maturity = _curve_maturity(ctx)
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
                "value": curve[str(maturity)],
                "maturity_days": maturity,
                "cohort": n,
                "stage": stage,
                "curve": curve,
            }
        )
    return sorted(out, key=lambda r: (r["period"], str(r["group"])))
