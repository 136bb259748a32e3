"""Compute a metric by id: the one entry point for the API, the CLI, the dashboard and the demo."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from leadflow.db.tables import lead_events, leads, opportunities
from leadflow.errors import InvalidInput, NotFound, Problem
from leadflow.metrics import attribution, milestones
from leadflow.metrics import catalogue as _catalogue  # noqa: F401 - registers every metric
from leadflow.metrics.periods import GRAINS
from leadflow.metrics.queries import MetricQuery
from leadflow.metrics.registry import METRICS, Metric
from leadflow.metrics.scope import scoped
from leadflow.metrics.stats import compare_rates
from leadflow.workspace import Workspace


def catalogue() -> list[dict[str, str]]:
    return [m.describe() for m in METRICS.values()]


MAX_PERIODS = 1000
EARLIEST, LATEST = date(1900, 1, 1), date(2200, 1, 1)
DASHBOARD = (
    "net_lead_flow",
    "stage_reached",
    "lead_conversion_rate",
    "deal_velocity",
    "response_time",
    "cost_per_lead",
    "cac",
    "roas",
)


def data_span(conn: Connection, *, readable: Any = None) -> tuple[datetime, datetime] | None:
    """The first and the last time anything happened: a lead created, an event, an opportunity
    created or closed (each an index lookup), over what ``readable`` lets the viewer read."""
    conn = scoped(conn, readable)
    cols = (leads.c.created_at, lead_events.c.occurred_at, opportunities.c.created_at, opportunities.c.closed_at)
    row = conn.execute(
        select(
            *[select(func.min(c)).scalar_subquery() for c in cols],
            *[select(func.max(c)).scalar_subquery() for c in cols],
        )
    ).one()
    firsts = [t for t in row[: len(cols)] if t is not None]
    lasts = [t for t in row[len(cols) :] if t is not None]
    if not firsts:
        return None
    return min(firsts), max(lasts)


def default_period(
    ws: Workspace,
    conn: Connection,
    start: date | None = None,
    end: date | None = None,
    *,
    readable: Any = None,
) -> tuple[date, date, str | None]:
    """The period a report covers when ``from`` or ``to`` is not given, and why, when it is not
    the usual one: it ends tomorrow (today included), or the day after the data's last day when the
    data ended before today (imported history), and begins on the first of the month twelve months
    before its end, or on the first of the month of the first data when that is later — the user
    sees their data, not empty months."""
    zone = ZoneInfo(ws.config.workspace.timezone)
    tomorrow = ws.clock.now().astimezone(zone).date() + timedelta(days=1)
    if start is not None and end is not None:
        return start, end, None
    span = data_span(conn, readable=readable)
    first, last = (None, None) if span is None else (t.astimezone(zone).date() for t in span)
    ends = begins = False
    if end is None:
        end = tomorrow
        if last is not None and last + timedelta(days=1) < tomorrow and (start is None or start <= last):
            end, ends = last + timedelta(days=1), True
    if start is None:
        start = date(max(end.year - 1, EARLIEST.year), end.month, 1)
        if first is not None and start < first.replace(day=1) < end:
            start, begins = first.replace(day=1), True
    if begins and ends:
        note = f"the data runs from {first} to {last}"
    elif ends:
        note = f"the data ends on {last}"
    elif begins:
        note = f"the data begins on {first}"
    else:
        note = None
    return start, end, note


def make_query(
    start: date,
    end: date,
    *,
    grain: str | None = None,
    by: str | None = None,
    basis: str = "cohort",
    model: str | None = None,
    stage: str | None = None,
    maturity: int | None = None,
) -> MetricQuery:
    """A validated query: every problem names the parameter it comes from."""
    problems = [
        Problem(name, f"must be between {EARLIEST} and {LATEST}")
        for name, day in (("from", start), ("to", end))
        if not EARLIEST <= day <= LATEST
    ]
    if problems:
        raise InvalidInput("date out of range", problems)
    if model is not None and model not in attribution.MODELS:
        raise InvalidInput("unknown attribution model", [Problem("model", f"one of {', '.join(attribution.MODELS)}")])
    if maturity is not None and maturity < 1:
        raise InvalidInput("bad maturity", [Problem("maturity", "a number of days, 1 or more")])
    extra = {k: v for k, v in (("model", model), ("stage", stage), ("maturity", maturity)) if v is not None}
    query = MetricQuery(start=start, end=end, grain=grain, by=by, basis=basis, extra=extra)
    if grain is not None:
        if grain not in GRAINS:
            raise InvalidInput("unknown period", [Problem("grain", f"{grain!r} is not one of {', '.join(GRAINS)}")])
        days = (end - start).days
        per = {"day": 1, "week": 7, "month": 28, "quarter": 90, "year": 365}[grain]
        if days / per > MAX_PERIODS:
            raise InvalidInput(
                "too many periods", [Problem("grain", f"at most {MAX_PERIODS} periods; use a coarser grain")]
            )
    return query


def tune(conn: Connection) -> None:
    """Settings for the reading transaction of a metric, on PostgreSQL: enough working memory for
    the hash aggregates and sorts over a year of leads to stay in memory (the 4 MB default spills
    them to disk), no JIT compilation (it costs more than it saves on these queries), and the page
    cost of data in memory, so that looking up a few thousand customers' touches by lead uses the
    index instead of hashing the whole event log (ROAS over 1M leads: 2 s → 0.5 s). ``SET LOCAL``
    ends with the transaction."""
    if conn.dialect.name == "postgresql" and conn.in_transaction():
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")


def get_metric(metric_id: str) -> Metric:
    metric = METRICS.get(metric_id)
    if metric is None:
        raise NotFound(f"no metric {metric_id!r}; see the catalogue for the ids", [Problem("id", "unknown metric")])
    return metric


def compute(
    ws: Workspace,
    conn: Connection,
    metric_id: str,
    query: MetricQuery,
    *,
    compare: bool = False,
    readable: Any = None,
) -> dict[str, Any]:
    """The metric for the query; with ``compare``, each row also carries the previous period's
    value (the same length of time just before ``from``) and the change.

    ``readable`` is the viewer's WHERE clause over ``leads`` (``dashboard.access.readable_leads``):
    every statement of the computation then reads only those leads and their events,
    opportunities and revenue. None reads the whole workspace."""
    metric = get_metric(metric_id)
    tune(conn)
    conn = scoped(conn, readable)
    rows = metric.compute(conn, ws, query)
    out = {
        **metric.describe(),
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "grain": query.grain,
        "by": query.by,
        "basis": query.basis,
        "model": query.extra.get("model"),
        "currency": ws.config.workspace.currency,
        "rows": rows,
    }
    if metric.left_out is not None:
        out["left_out"] = metric.left_out(conn, ws, query)
    if compare:
        length = query.end - query.start
        before = MetricQuery(
            start=query.start - length, end=query.start, grain=None, by=query.by, basis=query.basis, extra=query.extra
        )
        previous = {r["group"]: r for r in metric.compute(conn, ws, before)}
        out["previous"] = {"from": before.start.isoformat(), "to": before.end.isoformat()}
        if query.grain is None:
            for r in rows:
                p = previous.get(r["group"])
                pv = None if p is None else p.get("value")
                r["previous"] = pv
                r["change"] = _change(r.get("value"), pv)
        else:
            out["previous"]["rows"] = list(previous.values())
    return out


def _change(now: Any, before: Any) -> float | None:
    try:
        a, b = float(now), float(before)
    except (TypeError, ValueError):
        return None
    return None if b == 0 else (a - b) / abs(b)


def compare_sources(
    ws: Workspace,
    conn: Connection,
    metric_id: str,
    query: MetricQuery,
    a: str | None = None,
    b: str | None = None,
    *,
    readable: Any = None,
) -> dict[str, Any]:
    """Is one source's rate really different from another's? Every pair asked for (or every source
    against all the others together) with a z-test / Fisher's exact test and a verdict (over the
    leads ``readable`` lets the viewer read, as in :func:`compute`)."""
    metric = get_metric(metric_id)
    tune(conn)
    conn = scoped(conn, readable)
    if metric.unit != "rate":
        raise InvalidInput("not a rate", [Problem("id", "sources can be compared on rate metrics only")])
    if query.grain is not None:
        query = MetricQuery(start=query.start, end=query.end, by=query.by, basis=query.basis, extra=query.extra)
    by = query.by or "source"
    query = MetricQuery(start=query.start, end=query.end, by=by, basis=query.basis, extra=query.extra)
    groups = {str(r["group"]): r for r in metric.compute(conn, ws, query)}
    for name, value in (("a", a), ("b", b)):
        if value is not None and value not in groups:
            raise InvalidInput(
                f"no {by} {value!r} in this period", [Problem(name, f"one of {', '.join(sorted(groups))}")]
            )
    if a is not None and b is not None:
        pairs = [
            (a, groups[a]["numerator"], groups[a]["denominator"], b, groups[b]["numerator"], groups[b]["denominator"])
        ]
    else:
        total_x = sum(r["numerator"] for r in groups.values())
        total_n = sum(r["denominator"] for r in groups.values())
        names = [a] if a is not None else sorted(groups)
        pairs = [
            (
                g,
                groups[g]["numerator"],
                groups[g]["denominator"],
                f"all but {g}",
                total_x - groups[g]["numerator"],
                total_n - groups[g]["denominator"],
            )
            for g in names
        ]
    return {
        "metric": metric_id,
        "by": by,
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "basis": query.basis,
        "comparisons": [compare_rates(*pair).as_dict() for pair in pairs],
    }


def dashboard(ws: Workspace, conn: Connection, start: date, end: date, *, readable: Any = None) -> dict[str, Any]:
    """The dashboard set: net lead flow, funnel, conversion by source, velocity, SLA attainment,
    CPL, CAC and ROAS. The milestone table is brought up to date first, in a transaction of its
    own (the figures do not depend on it: stage events past the watermark are read too)."""
    milestones.refresh(ws)
    month = MetricQuery(start=start, end=end, grain="month")
    whole = MetricQuery(start=start, end=end)
    by_source = MetricQuery(start=start, end=end, by="source")
    sets = {
        "net_lead_flow": ("net_lead_flow", month),
        "funnel": ("stage_reached", whole),
        "conversion_by_source": ("lead_conversion_rate", by_source),
        "deal_velocity": ("deal_velocity", whole),
        "response_time": ("response_time", whole),
        "cost_per_lead": ("cost_per_lead", by_source),
        "cac": ("cac", month),
        "roas": ("roas", by_source),
    }
    return {name: compute(ws, conn, m, q, readable=readable) for name, (m, q) in sets.items()}


def overview(ws: Workspace, conn: Connection, start: Any, end: Any) -> dict[str, Any]:
    """The short report the demo prints: leads and net lead flow per month, funnel by source."""
    monthly = MetricQuery(start=start, end=end, grain="month")
    volume = {r["period"]: r["value"] for r in compute(ws, conn, "lead_volume", monthly)["rows"]}
    flow = {r["period"]: r for r in compute(ws, conn, "net_lead_flow", monthly)["rows"]}
    months = sorted(set(volume) | set(flow))
    funnel = compute(ws, conn, "stage_reached", MetricQuery(start=start, end=end, by="source"))["rows"]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "months": [
            {
                "month": m,
                "leads": volume.get(m, 0),
                "closed": flow.get(m, {}).get("closed", 0),
                "inactive": flow.get(m, {}).get("inactive", 0),
                "net_lead_flow": flow.get(m, {}).get("value", volume.get(m, 0)),
            }
            for m in months
        ],
        "stages": list(ws.rules.stages.order),
        "funnel_by_source": [{"source": r["group"], "leads": r["cohort"], "reached": r["reached"]} for r in funnel],
    }
