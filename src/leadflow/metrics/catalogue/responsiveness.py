"""Responsiveness: time to first contact and meeting, SLA attainment, engagement after the
first touch."""

from __future__ import annotations

from sqlalchemy import and_, case, exists, func, or_, select

from leadflow.db.tables import lead_events, leads
from leadflow.metrics.catalogue.define import Rows, _lead_grp, metric
from leadflow.metrics.measures import (
    Ctx,
    counts,
    durations,
    first_event,
    keyed,
    lead_population,
    live,
    merge_rates,
    rate_row,
    seconds_between,
)


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
