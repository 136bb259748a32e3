"""Web and product: traffic, page views, visitors, landing page and visitor conversion, sign-up
and trial conversion, referrals and virality."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select

from leadflow import events as ev
from leadflow.db.tables import lead_events, leads, sources, visitors, web_sessions
from leadflow.errors import InvalidInput, Problem
from leadflow.metrics.catalogue import declared
from leadflow.metrics.catalogue.conversion import _cohort
from leadflow.metrics.catalogue.define import Rows, _events_grouped, _lead_grp, metric
from leadflow.metrics.measures import (
    Ctx,
    count_rows,
    counts,
    durations,
    first_event,
    first_reach,
    in_span,
    lead_population,
    live,
    merge_rates,
    population_rate,
    rate_row,
    seconds_between,
)

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


def _named_in_referral() -> Any:
    e = lead_events.alias("ref")
    referred = e.c.data["referred_lead_id"].as_integer()
    return leads.c.id.in_(select(referred).where(e.c.type == "referral", referred.is_not(None)))


def _referred() -> Any:
    referral_sources = select(sources.c.id).where(sources.c.kind == "referral")
    return or_(_named_in_referral(), leads.c.source.in_(referral_sources))


REFERRAL_NOTE = declared.note(
    "leads", "with kind referral, unless a referral event names them (a named lead counts whatever its source)"
)


def _referral_left_out(ctx: Ctx) -> dict[str, Any]:
    return declared.leads_left_out(ctx, ~_named_in_referral())


@metric(
    "referral_conversion_rate",
    "Referral Conversion Rate",
    "referred leads that convert",
    "rate",
    "referred leads (named in a referral event, or from a source of kind referral) reaching the target "
    "stage / referred leads (cohort)",
    note=REFERRAL_NOTE,
    left_out=_referral_left_out,
)
def referral_conversion_rate(ctx: Ctx) -> Rows:
    return _cohort(ctx, first_reach(ctx, ctx.ws.rules.stages.target), _referred())


@metric(
    "referral_mql_rate",
    "Referral-Generated MQL Rate",
    "referred leads that become MQLs",
    "rate",
    "referred leads reaching MQL / referred leads (cohort)",
    note=REFERRAL_NOTE,
    left_out=_referral_left_out,
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
