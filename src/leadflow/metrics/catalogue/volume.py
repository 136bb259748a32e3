"""Volume metrics: leads captured, inbound leads, sign-ups, lead quality, and the qualified
leads counted per period (MQLs, SQLs, SQOs, PQLs, PQAs)."""

from __future__ import annotations

from sqlalchemy import and_, case, exists, func, select

from leadflow import events as ev
from leadflow.db.tables import lead_events, leads, opportunities, sources
from leadflow.metrics import queries as legacy
from leadflow.metrics.catalogue import declared
from leadflow.metrics.catalogue.define import (
    Rows,
    _event_is,
    _events_grouped,
    _lead_grp,
    _stage_is,
    legacy_metric,
    metric,
)
from leadflow.metrics.measures import Ctx, count_rows, counts, first_in_period, live
from leadflow.metrics.periods import split

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
    note=declared.note("leads", "with kind inbound"),
    left_out=declared.leads_left_out,
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
