"""Email and social: open, click-through, reply and unsubscribe rates per delivered message,
newsletter growth, likes, shares and comments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, literal, select

from leadflow.db.tables import lead_events, leads
from leadflow.metrics.catalogue.define import Rows, _events_grouped, _keys, _lead_grp, metric
from leadflow.metrics.measures import Ctx, merge_rates


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
