"""How a metric is aggregated in the database: counts, rates and durations per period and group.

A metric builds a *population* — a subquery with one row per lead, opportunity, session or event,
and the columns ``grp`` (the breakdown value), ``t0`` (when it entered the population) and ``t1``
(when it reached the outcome, or NULL) — and hands it to :func:`rate` or :func:`durations`. Those
join it to the periods and aggregate in SQL; only one row per (period, group) comes back.
Durations use nearest-rank percentiles computed with window functions, so SQLite and PostgreSQL
give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import Cast, ColumnClause, Label, Null
from sqlalchemy.sql.expression import FunctionElement

from leadflow.db.tables import lead_events, leads, opportunities, owners
from leadflow.errors import InvalidInput, Problem
from leadflow.metrics.periods import Period, periods_table
from leadflow.metrics.stats import wilson
from leadflow.workspace import Workspace


class epoch(FunctionElement[float]):
    """Seconds since 1970 of a timestamp column, on either database."""

    type = Float()
    inherit_cache = True


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch, "postgresql")
def _epoch_pg(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch)
def _epoch_default(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


class day_number(FunctionElement[float]):
    """A date as a count of days (differences of two are whole days), on either database."""

    type = Float()
    inherit_cache = True


@compiles(day_number, "sqlite")
def _day_number_sqlite(element: day_number, compiler: Any, **kw: Any) -> str:
    return f"julianday({compiler.process(element.clauses, **kw)})"


@compiles(day_number)
def _day_number_default(element: day_number, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} - DATE '1970-01-01')"


def seconds_between(start: Any, end: Any) -> Any:
    return epoch(end) - epoch(start)


LEAD_DIMENSIONS = {
    "source": leads.c.source,
    "medium": leads.c.medium,
    "campaign": leads.c.campaign,
    "landing_page": leads.c.landing_page,
    "capture_context": leads.c.capture_context,
    "country": leads.c.country,
    "segment": leads.c.segment,
    "owner": leads.c.owner_id,
    "team": leads.c.team_id,
}


@dataclass
class Ctx:
    """Everything one metric computation needs: the connection, the workspace and the query."""

    conn: Connection
    ws: Workspace
    q: Any  # MetricQuery

    @cached_property
    def tz(self) -> str:
        return self.ws.config.workspace.timezone

    @cached_property
    def periods(self) -> list[Period]:
        return self.q.periods(self.tz)  # type: ignore[no-any-return]

    @cached_property
    def span(self) -> tuple[datetime, datetime]:
        return self.periods[0].start, self.periods[-1].end

    @cached_property
    def now(self) -> datetime:
        return self.ws.clock.now().astimezone(UTC)

    @cached_property
    def maturity(self) -> float:
        return float(self.ws.config.metrics.maturity_days * 86400)

    @property
    def order(self) -> list[str]:
        return list(self.ws.rules.stages.order)

    def later(self, stage: str) -> list[str]:
        """The stage and every stage after it in the funnel ("reached X" counts skipping X)."""
        order = self.order
        if stage in order:
            return order[order.index(stage) :]
        return [stage]

    def table(self, name: str = "periods") -> Any:
        return periods_table(self.periods, name)

    def grp(self, dims: dict[str, Any] | None = None) -> Any:
        """The breakdown column (labelled ``grp``), NULL when not broken down."""
        by = self.q.by
        if by is None:
            return cast(null(), String()).label("grp")
        dims = LEAD_DIMENSIONS if dims is None else dims
        if by not in dims:
            raise InvalidInput(
                "this metric cannot be broken down that way",
                [Problem("by", f"{by!r} is not available here; use one of {', '.join(dims)}")],
            )
        return dims[by].label("grp")

    def opp_dims(self) -> dict[str, Any]:
        """Breakdowns of opportunity metrics: owner and team from the opportunity (imported
        history often has no lead), the rest from its lead."""
        team = select(owners.c.team_id).where(owners.c.id == opportunities.c.owner_id).scalar_subquery()
        return {
            **LEAD_DIMENSIONS,
            "owner": func.coalesce(opportunities.c.owner_id, leads.c.owner_id),
            "team": func.coalesce(team, leads.c.team_id),
            "source": func.coalesce(leads.c.source, opportunities.c.source),
        }


def live() -> Any:
    return leads.c.merged_into_id.is_(None)


def in_span(ctx: Ctx, col: Any) -> Any:
    lo, hi = ctx.span
    return and_(col >= lo, col < hi)


def first_event(types: Sequence[str], extra: Any = None, lead_id: Any = None) -> Any:
    """When the lead first had an event of these types (a correlated scalar subquery);
    ``extra(e)`` adds conditions on the event."""
    e = lead_events.alias("fe")
    conds = [e.c.lead_id == (leads.c.id if lead_id is None else lead_id), e.c.type.in_(list(types))]
    if extra is not None:
        conds.append(extra(e))
    return select(func.min(e.c.occurred_at)).where(*conds).scalar_subquery()


STAGE_CHANGED = literal_column("'stage_changed'")  # a literal, so the partial stage index applies


@dataclass
class Reach:
    """When each lead first reached a stage: a grouped subquery over the stage history that a
    population outer-joins (set-based: one pass over the stage index, not a lookup per lead)."""

    sub: Any

    @property
    def t(self) -> Any:
        return self.sub.c.t

    def is_not(self, other: Any) -> Any:
        return self.sub.c.t.is_not(other)


def first_reach(ctx: Ctx, stage: str) -> Reach:
    """When the lead first entered ``stage`` or any later one."""
    e = lead_events.alias(f"fr_{stage}")
    sub = (
        select(e.c.lead_id.label("lead_id"), func.min(e.c.occurred_at).label("t"))
        .where(e.c.type == STAGE_CHANGED, e.c.stage.in_(ctx.later(stage)))
        .group_by(e.c.lead_id)
        .subquery(f"reach_{stage}")
    )
    return Reach(sub)


def first_opportunity(lead_id: Any = None) -> Any:
    o = opportunities.alias("fo")
    return (
        select(func.min(o.c.created_at))
        .where(o.c.lead_id == (leads.c.id if lead_id is None else lead_id))
        .scalar_subquery()
    )


def first_in_period(ctx: Ctx, where: Any, grp: Any, distinct: Any = None) -> dict[tuple[str, Any], int]:
    """Count leads whose *first* event matching ``where(e)`` falls in each period."""
    p = ctx.table()
    e, prior = lead_events.alias("e"), lead_events.alias("prior")
    earlier = (
        select(prior.c.id)
        .where(
            prior.c.lead_id == e.c.lead_id,
            where(prior),
            or_(
                prior.c.occurred_at < e.c.occurred_at, and_(prior.c.occurred_at == e.c.occurred_at, prior.c.id < e.c.id)
            ),
        )
        .exists()
    )
    counted = func.count(func.distinct(distinct)) if distinct is not None else func.count(func.distinct(e.c.lead_id))
    stmt = (
        select(p.c.label, grp, counted.label("n"))
        .select_from(
            e.join(p, and_(e.c.occurred_at >= p.c.p_start, e.c.occurred_at < p.c.p_end)).join(
                leads, leads.c.id == e.c.lead_id
            )
        )
        .where(where(e), ~earlier, live())
        .group_by(p.c.label, grp)
    )
    return {(r.label, r.grp): int(r.n) for r in ctx.conn.execute(stmt)}


def is_null(expr: Any) -> bool:
    """Is ``expr`` (a breakdown column) the constant NULL of "not broken down"?"""
    expr = getattr(expr, "element", expr) if isinstance(expr, Label) else expr
    if isinstance(expr, Cast):
        expr = expr.clause
    return isinstance(expr, Null) or (isinstance(expr, ColumnClause) and expr.is_literal and expr.name == "NULL")


def keyed(ctx: Ctx, label: Any, grp: Any, whole: bool | None = None) -> tuple[list[Any], list[Any]]:
    """The (label, grp) columns to select and the GROUP BY for them: a key that cannot vary (one
    period; no breakdown) is carried by max() and left out of the GROUP BY — SQLite sorts every
    row for a GROUP BY, even one by a constant. Without a GROUP BY an empty input still gives a
    row, with a NULL label: callers skip it."""
    one = len(ctx.periods) == 1
    whole = is_null(grp) if whole is None else whole
    plain = getattr(grp, "element", grp) if isinstance(grp, Label) else grp
    columns = [
        func.max(label).label("label") if one else label,
        func.max(plain).label("grp") if whole else grp,
    ]
    return columns, [c for c, fixed in ((label, one), (grp, whole)) if not fixed]


def counts(ctx: Ctx, frm: Any, at: Any, grp: Any, *where: Any, value: Any = None) -> dict[tuple[str, Any], Any]:
    """``value`` (default: count of rows) of ``frm`` whose time ``at`` falls in each period."""
    p = ctx.table()
    columns, group_by = keyed(ctx, p.c.label, grp)
    stmt = (
        select(*columns, (func.count() if value is None else value).label("n"))
        .select_from(frm.join(p, and_(at >= p.c.p_start, at < p.c.p_end)))
        .where(*where)
        .group_by(*group_by)
    )
    return {(r.label, r.grp): r.n for r in ctx.conn.execute(stmt) if r.label is not None}


def count_rows(ctx: Ctx, found: dict[tuple[str, Any], Any], **extra: Any) -> list[dict[str, Any]]:
    return sorted(
        ({"period": k[0], "group": k[1], "value": int(v or 0), **extra} for k, v in found.items()),
        key=lambda r: (r["period"], str(r["group"])),
    )


def rate_row(
    period: str, group: Any, num: int, den: int, reason: str = "no population in this period"
) -> dict[str, Any]:
    if den == 0:
        return {
            "period": period,
            "group": group,
            "value": None,
            "numerator": num,
            "denominator": 0,
            "ci_low": None,
            "ci_high": None,
            "reason": reason,
        }
    if num > den:  # period basis: more conversions in the period than leads entering it
        return {
            "period": period,
            "group": group,
            "value": num / den,
            "numerator": num,
            "denominator": den,
            "ci_low": None,
            "ci_high": None,
            "reason": "more in the numerator than in the denominator (period basis counts "
            "conversions of earlier leads): not a proportion, so no interval",
        }
    lo, hi = wilson(num, den)
    return {
        "period": period,
        "group": group,
        "value": num / den,
        "numerator": num,
        "denominator": den,
        "ci_low": lo,
        "ci_high": hi,
        "reason": None,
    }


def merge_rates(
    ctx: Ctx,
    num: dict[tuple[str, Any], Any],
    den: dict[tuple[str, Any], Any],
    reason: str = "no population",
    fill: bool = True,
) -> list[dict[str, Any]]:
    keys = set(num) | set(den)
    if ctx.q.by is None and fill:
        keys |= {(p.label, None) for p in ctx.periods}
    return sorted(
        (rate_row(k[0], k[1], int(num.get(k) or 0), int(den.get(k) or 0), reason) for k in keys),
        key=lambda r: (r["period"], str(r["group"])),
    )


def population_rate(ctx: Ctx, pop: Any, reason: str = "no population in this period") -> list[dict[str, Any]]:
    """Share of a population (columns grp, t0, t1) reaching the outcome.

    Cohort basis: those entering (t0) in the period, reaching the outcome within the maturity
    window. Period basis: outcomes in the period / entries in the period."""
    p = ctx.table()
    if ctx.q.basis == "period":
        den = counts(ctx, pop, pop.c.t0, pop.c.grp)
        num = counts(ctx, pop, pop.c.t1, pop.c.grp)
        return merge_rates(ctx, num, den, reason)
    reached = and_(pop.c.t1.is_not(None), seconds_between(pop.c.t0, pop.c.t1) <= ctx.maturity)
    columns, group_by = keyed(ctx, p.c.label, pop.c.grp, whole=ctx.q.by is None)
    stmt = (
        select(*columns, func.count().label("den"), func.sum(case((reached, 1), else_=0)).label("num"))
        .select_from(pop.join(p, and_(pop.c.t0 >= p.c.p_start, pop.c.t0 < p.c.p_end)))
        .group_by(*group_by)
    )
    found = [r for r in ctx.conn.execute(stmt) if r.label is not None]
    return merge_rates(ctx, {(r.label, r.grp): r.num for r in found}, {(r.label, r.grp): r.den for r in found}, reason)


def durations(
    ctx: Ctx, pop: Any, anchor: str = "t0", extra_key: str | None = None, pending: bool = True
) -> list[dict[str, Any]]:
    """Median, mean and p90 (hours) of t1 − t0 over a population (columns grp, t0, t1), by the
    period its ``anchor`` falls in; rows not there yet (t1 NULL) are counted as pending."""
    p = ctx.table()
    at = pop.c[anchor]
    keys = [p.c.label, pop.c.grp] + ([pop.c[extra_key]] if extra_key else [])
    secs = case((pop.c.t1.is_not(None), seconds_between(pop.c.t0, pop.c.t1)), else_=None).label("secs")
    d = select(*keys, secs).select_from(pop.join(p, and_(at >= p.c.p_start, at < p.c.p_end))).offset(0).subquery("d")
    part = [d.c.label, d.c.grp] + ([d.c[extra_key]] if extra_key else [])
    # Keys that cannot vary (one period; no breakdown) are carried as literals, neither sorted
    # along nor grouped by: a year of leads then sorts little more than the durations themselves.
    fixed = {"label": ctx.periods[0].label} if len(ctx.periods) == 1 else {}
    if ctx.q.by is None:
        fixed["grp"] = None
    if ctx.conn.dialect.name == "postgresql":
        # percentile_disc(f) is the nearest rank ceil(f * n): one in-memory sort per group for
        # both ranks, no window.
        stmt = select(
            *[literal(fixed[c.key], c.type).label(c.key) if c.key in fixed else c for c in part],
            func.count(d.c.secs).label("done"),
            (func.count() - func.count(d.c.secs)).label("pending"),
            func.avg(d.c.secs).label("mean"),
            type_coerce(func.percentile_disc(array([0.5, 0.9])).within_group(d.c.secs), ARRAY(Float())).label("ranks"),
        ).group_by(*[c for c in part if c.key not in fixed])
    else:
        stmt = _nearest_ranks(d, part, fixed)
    out = []
    for r in ctx.conn.execute(stmt):
        m = dict(r._mapping)
        if "ranks" in m:
            m["median"], m["p90"] = m.pop("ranks") or (None, None)
        done = int(m["done"])

        def hours(v: Any) -> float | None:
            return None if v is None else round(float(v) / 3600.0, 4)

        row = {
            "period": m["label"],
            "group": m["grp"],
            "value": hours(m["median"]),
            "median": hours(m["median"]),
            "mean": hours(m["mean"]),
            "p90": hours(m["p90"]),
            "count": done,
            "pending": int(m["pending"]) if pending else 0,
            "unit": "hours",
            "reason": None if done else "nothing reached the end event yet",
        }
        if extra_key:
            row[extra_key] = m[extra_key]
        out.append(row)
    return sorted(out, key=lambda r: (r["period"], str(r["group"]), str(r.get(extra_key or "", ""))))


def _nearest_ranks(d: Any, part: list[Any], fixed: dict[str, Any]) -> Any:
    """Median and p90 by nearest rank (the value at rank ceil(n * pct / 100)) with a window function
    partitioned by the columns of ``part`` that vary; those in ``fixed`` take one known value
    (one period, no breakdown), so they are neither sorted along nor partitioned by — a year of
    leads under one window sorts little more than the durations themselves."""
    window = [c for c in part if c.key not in fixed]
    over = {"partition_by": window} if window else {}
    ranked = select(
        *window,
        d.c.secs,
        func.row_number().over(**over, order_by=d.c.secs.asc().nulls_last()).label("rn"),
        func.count(d.c.secs).over(**over).label("n"),
    ).subquery("r")
    rwindow = [ranked.c[c.key] for c in window]
    rpart = [literal(fixed[c.key], c.type).label(c.key) if c.key in fixed else ranked.c[c.key] for c in part]

    def nearest(pct: int) -> Any:
        return func.max(case((ranked.c.rn == (ranked.c.n * pct + 99) // 100, ranked.c.secs), else_=None))

    return select(
        *rpart,
        func.count(ranked.c.secs).label("done"),
        (func.count() - func.count(ranked.c.secs)).label("pending"),
        func.avg(ranked.c.secs).label("mean"),
        nearest(50).label("median"),
        nearest(90).label("p90"),
    ).group_by(*rwindow)


def lead_population(ctx: Ctx, t1: Any, *where: Any, t0: Any = None, grp: Any = None, restrict: bool = True) -> Any:
    """One row per live lead: grp, t0 (default: created), t1 (the outcome time)."""
    frm: Any = leads
    for x in (t0, t1):
        if isinstance(x, Reach):
            frm = frm.outerjoin(x.sub, x.sub.c.lead_id == leads.c.id)
    start = leads.c.created_at if t0 is None else (t0.t if isinstance(t0, Reach) else t0)
    end = t1.t if isinstance(t1, Reach) else t1
    stmt = (
        select((ctx.grp() if grp is None else grp), start.label("t0"), end.label("t1"), leads.c.id.label("lead_id"))
        .select_from(frm)
        .where(live(), *where)
    )
    if restrict and ctx.q.basis != "period":
        stmt = stmt.where(in_span(ctx, start))
    elif restrict:
        stmt = stmt.where(or_(in_span(ctx, start), in_span(ctx, end)))
    return stmt.subquery("pop")


def money(value: Any) -> str | None:
    if value is None:
        return None
    return f"{value:.2f}" if not isinstance(value, str) else value


def shift(periods: list[Period], back: timedelta) -> list[Period]:
    return [Period(p.label, p.start - back, p.end - back) for p in periods]


def safe_div(a: float | None, b: float | None) -> float | None:
    if a is None or b in (None, 0) or (isinstance(b, float) and math.isnan(b)):
        return None
    return a / b  # type: ignore[operator]
