"""Metric computations: SQL over leads and events, the same on SQLite and PostgreSQL.

Each function takes a connection, the workspace and a :class:`MetricQuery`, and returns rows
keyed by period label (when a grain is asked for) and group (when ``by`` is asked for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal_column, select

from leadflow.db.tables import lead_events, leads
from leadflow.errors import InvalidInput, Problem
from leadflow.metrics import milestones
from leadflow.metrics.periods import Period, bounds, periods_table, split
from leadflow.workspace import Workspace

DIMENSIONS = {
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
CLOSED_STAGES = ("lost", "disqualified")


@dataclass(frozen=True)
class MetricQuery:
    start: date
    end: date  # exclusive
    grain: str | None = None
    by: str | None = None
    basis: str = "cohort"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.by is not None and self.by not in DIMENSIONS:
            raise InvalidInput(
                "unknown dimension", [Problem("by", f"{self.by!r} is not one of {', '.join(DIMENSIONS)}")]
            )
        if self.basis not in ("cohort", "period"):
            raise InvalidInput("unknown basis", [Problem("basis", "must be 'cohort' or 'period'")])
        if self.end <= self.start:
            raise InvalidInput("empty period", [Problem("to", "must be after from")])

    def periods(self, tz: str) -> list[Period]:
        return split(self.start, self.end, self.grain, tz) if self.grain else [bounds(self.start, self.end, tz)]


def _group(q: MetricQuery) -> tuple[Any, list[Any]]:
    """The ``by`` column to select (a NULL when not broken down) and what to group by for it."""
    if q.by:
        return DIMENSIONS[q.by].label("grp"), [DIMENSIONS[q.by]]
    return literal_column("NULL").label("grp"), []


def _live() -> Any:
    """Leads that count as leads: merged duplicates are the same person, counted once."""
    return leads.c.merged_into_id.is_(None)


def lead_volume(conn: Connection, ws: Workspace, q: MetricQuery) -> list[dict[str, Any]]:
    p = periods_table(q.periods(ws.config.workspace.timezone))
    group, group_by = _group(q)
    # A key that cannot vary (one period; no breakdown) is not grouped by: SQLite sorts every row
    # for a GROUP BY, even one by a constant (an empty input then gives a row without a label).
    one_period, whole = len(q.periods(ws.config.workspace.timezone)) == 1, not group_by
    label = func.max(p.c.label).label("label") if one_period else p.c.label
    grp = func.max(group).label("grp") if whole else group
    stmt = (
        select(label, grp, func.count().label("value"))
        .select_from(leads.join(p, and_(leads.c.created_at >= p.c.p_start, leads.c.created_at < p.c.p_end)))
        .where(_live())
        .group_by(*([] if one_period else [p.c.label]), *group_by)
    )
    return [
        {"period": r.label, "group": r.grp, "value": int(r.value)} for r in conn.execute(stmt) if r.label is not None
    ]


def net_lead_flow(conn: Connection, ws: Workspace, q: MetricQuery) -> list[dict[str, Any]]:
    tz = ws.config.workspace.timezone
    periods = q.periods(tz)
    days = ws.config.metrics.inactive_after_days
    now = ws.clock.now()
    group, group_by = _group(q)
    out: dict[tuple[str, Any], dict[str, Any]] = {}

    def row(label: str, grp: Any) -> dict[str, Any]:
        return out.setdefault((label, grp), {"period": label, "group": grp, "new": 0, "closed": 0, "inactive": 0})

    for r in lead_volume(conn, ws, q):
        row(r["period"], r["group"])["new"] = r["value"]

    p = periods_table(periods)
    closed = (
        select(p.c.label, group, func.count(func.distinct(lead_events.c.lead_id)).label("n"))
        .select_from(
            lead_events.join(leads, leads.c.id == lead_events.c.lead_id).join(
                p, and_(lead_events.c.occurred_at >= p.c.p_start, lead_events.c.occurred_at < p.c.p_end)
            )
        )
        .where(lead_events.c.type == literal_column("'stage_changed'"), lead_events.c.stage.in_(CLOSED_STAGES), _live())
        .group_by(p.c.label, *group_by)
    )
    for r in conn.execute(closed):
        row(r.label, r.grp)["closed"] = int(r.n)

    # A lead becomes inactive `days` after its last activity, if that moment has come: shift
    # the periods back by `days` and count last activities inside them.
    gap = timedelta(days=days)
    shifted = [Period(x.label, x.start - gap, min(x.end, now) - gap) for x in periods if x.start < now]
    shifted = [x for x in shifted if x.end > x.start]
    if shifted:
        # One pass over the leads, each bucketed by a CASE on its last activity (periods are few).
        at = leads.c.last_activity_at
        label = case(*[(and_(at >= x.start, at < x.end), x.label) for x in shifted], else_=None).label("label")
        inactive = (
            select(label, group, func.count().label("n"))
            .where(
                _live(),
                at >= min(x.start for x in shifted),
                at < max(x.end for x in shifted),
                leads.c.stage.not_in((*CLOSED_STAGES, ws.rules.stages.target)),
                leads.c.erased_at.is_(None),
            )
            .group_by(label, *group_by)
        )
        for r in conn.execute(inactive):
            if r.label is not None:
                row(r.label, r.grp)["inactive"] = int(r.n)

    for values in out.values():
        values["value"] = values["new"] - values["closed"] - values["inactive"]
    return sorted(out.values(), key=lambda v: (v["period"], str(v["group"])))


def stage_reached(conn: Connection, ws: Workspace, q: MetricQuery) -> list[dict[str, Any]]:
    """For the cohort created in each period: how many reached each funnel stage, and the
    distribution of the furthest stage reached."""
    order = ws.rules.stages.order
    p = periods_table(q.periods(ws.config.workspace.timezone))
    rank = case({stage: i for i, stage in enumerate(order)}, value=lead_events.c.stage, else_=-1)
    group, _ = _group(q)
    # The furthest rank of every lead: from the milestone table (kept by a watermark), else read
    # from the stage-history index alone and joined to the cohort (not a lookup of each cohort
    # lead's whole event history).
    per_lead = milestones.per_lead(conn, ws, p, group, q.by is not None)
    if per_lead is None:
        furthest = (
            select(lead_events.c.lead_id.label("lead_id"), func.max(rank).label("furthest"))
            .where(lead_events.c.type == literal_column("'stage_changed'"))
            .group_by(lead_events.c.lead_id)
            .subquery("furthest")
        )
        created = leads.join(p, and_(leads.c.created_at >= p.c.p_start, leads.c.created_at < p.c.p_end))
        per_lead = (
            select(p.c.label.label("period"), group, furthest.c.furthest)
            .select_from(created.join(furthest, furthest.c.lead_id == leads.c.id))
            .where(_live())
            .subquery()
        )
    columns = [func.count().label("cohort")]
    columns += [func.sum(case((per_lead.c.furthest >= i, 1), else_=0)).label(f"reached_{i}") for i in range(len(order))]
    columns += [
        func.sum(case((per_lead.c.furthest == i, 1), else_=0)).label(f"furthest_{i}") for i in range(len(order))
    ]
    # Group only by what varies: grouping a year's cohort by constant columns costs a sort.
    one_period, whole = len(q.periods(ws.config.workspace.timezone)) == 1, q.by is None
    keys = [per_lead.c.period] * (not one_period) + [per_lead.c.grp] * (not whole)
    period = func.max(per_lead.c.period).label("period") if one_period else per_lead.c.period
    grp = func.max(per_lead.c.grp).label("grp") if whole else per_lead.c.grp
    stmt = select(period, grp, *columns).group_by(*keys)
    rows = []
    for r in conn.execute(stmt):
        if r.period is None:  # no cohort at all (an aggregate without GROUP BY still gives a row)
            continue
        m = r._mapping
        cohort = int(m["cohort"])
        rows.append(
            {
                "period": r.period,
                "group": r.grp,
                "cohort": cohort,
                "reached": {s: int(m[f"reached_{i}"] or 0) for i, s in enumerate(order)},
                "furthest": {s: int(m[f"furthest_{i}"] or 0) for i, s in enumerate(order)},
                "share": {s: (int(m[f"furthest_{i}"] or 0) / cohort if cohort else None) for i, s in enumerate(order)},
            }
        )
    return sorted(rows, key=lambda v: (v["period"], str(v["group"])))
