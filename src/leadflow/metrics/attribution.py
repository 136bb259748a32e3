"""Revenue attribution: share each outcome (revenue, an opportunity) among the lead's touches.

Touches are the lead's recorded source events before the outcome: ``lead_created`` and every
``lead_captured`` (a known lead submitting again), each with the source, medium and campaign it
came through. Weights are computed in SQL with window functions over each outcome's touches:

- ``first_touch`` / ``last_touch``: all to the first / last touch;
- ``linear``: equal shares;
- ``u_shaped``: 40% first, 40% last, 20% spread over the middle (one touch: 100%, two: 50/50);
- ``w_shaped``: 30% each to the first touch, the middle touch (standing for the touch that made
  the lead known to sales) and the last touch, 10% spread over the rest (three or fewer touches:
  equal shares);
- ``time_decay``: weight 2^(−age / half-life) (``metrics.attribution_half_life_days``), normalised.

An outcome with no touches goes whole to its fallback (the lead's or opportunity's own source).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, select

from leadflow import events as ev
from leadflow.db.tables import lead_events, leads
from leadflow.errors import InvalidInput, Problem
from leadflow.metrics.measures import Ctx, epoch

MODELS = ("first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay")
TOUCH_TYPES = (ev.LEAD_CREATED, ev.LEAD_CAPTURED)
DIMENSIONS = ("source", "medium", "campaign")


def check_model(model: str | None) -> str:
    model = model or "first_touch"
    if model not in MODELS:
        raise InvalidInput(
            "unknown attribution model", [Problem("model", f"{model!r} is not one of {', '.join(MODELS)}")]
        )
    return model


def dimension(ctx: Ctx) -> str:
    by = ctx.q.by or "source"
    if by not in DIMENSIONS:
        raise InvalidInput(
            "attribution is by touch", [Problem("by", f"attributed metrics break down by {', '.join(DIMENSIONS)}")]
        )
    return by


def _weight(model: str, rn: Any, n: Any, raw: Any, raw_sum: Any) -> Any:
    one = literal(1.0, Float())
    if model == "first_touch":
        w = case((rn == 1, one), else_=0.0)
    elif model == "last_touch":
        w = case((rn == n, one), else_=0.0)
    elif model == "linear":
        w = one / n
    elif model == "u_shaped":
        w = case(
            (n == 1, one),
            (n == 2, 0.5),
            ((rn == 1) | (rn == n), 0.4),
            else_=literal(0.2, Float()) / (n - 2),
        )
    elif model == "w_shaped":
        w = case(
            (n <= 3, one / n),
            ((rn == 1) | (rn == n) | (rn == (n + 1) / 2), 0.3),
            else_=literal(0.1, Float()) / (n - 3),
        )
    else:
        w = raw / raw_sum
    return case((n == 0, one), else_=w)


def attribute(ctx: Ctx, outcomes: Any, model: str, dim: str) -> dict[tuple[str, Any], float]:
    """Sum of ``amount`` (or 1 per outcome when amount is NULL) per (period, touch value).

    ``outcomes`` has columns oid, lead_id, t (outcome time), amount and fallback."""
    p = ctx.table()
    half_life = ctx.ws.config.metrics.attribution_half_life_days * 86400.0
    e = lead_events.alias("touch")
    touch_value = e.c.data[dim].as_string()
    value = case(
        (e.c.id.is_(None), outcomes.c.fallback),
        (e.c.type == ev.LEAD_CREATED, func.coalesce(touch_value, leads.c[dim])),
        else_=touch_value,
    )
    part = [outcomes.c.oid]
    age = epoch(outcomes.c.t) - epoch(e.c.occurred_at)
    raw = func.power(literal(0.5, Float()), cast(age, Float()) / half_life)
    touches = (
        select(
            p.c.label,
            outcomes.c.oid,
            cast(func.coalesce(outcomes.c.amount, 1), Float()).label("amount"),
            value.label("grp"),
            func.row_number().over(partition_by=part, order_by=[e.c.occurred_at, e.c.id]).label("rn"),
            func.count(e.c.id).over(partition_by=part).label("n"),
            case((e.c.id.is_(None), 1.0), else_=raw).label("raw"),
        )
        .select_from(
            outcomes.join(p, and_(outcomes.c.t >= p.c.p_start, outcomes.c.t < p.c.p_end))
            .outerjoin(
                e,
                and_(e.c.lead_id == outcomes.c.lead_id, e.c.type.in_(TOUCH_TYPES), e.c.occurred_at <= outcomes.c.t),
            )
            .outerjoin(leads, leads.c.id == outcomes.c.lead_id)
        )
        .subquery("touches")
    )
    raw_sum = func.sum(touches.c.raw).over(partition_by=[touches.c.oid])
    weighted = select(
        touches.c.label,
        touches.c.grp,
        (touches.c.amount * _weight(model, touches.c.rn, touches.c.n, touches.c.raw, raw_sum)).label("credit"),
    ).subquery("weighted")
    stmt = select(weighted.c.label, weighted.c.grp, func.sum(weighted.c.credit).label("v")).group_by(
        weighted.c.label, weighted.c.grp
    )
    return {(r.label, r.grp): float(r.v or 0) for r in ctx.conn.execute(stmt)}
