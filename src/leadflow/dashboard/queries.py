"""The dashboard's reads. Every query over leads goes through :func:`readable_leads` for the user."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select

from leadflow import events as ev
from leadflow.dashboard.access import readable_leads, readable_owners
from leadflow.dashboard.users import User
from leadflow.db.tables import (
    lead_events,
    lead_merges,
    leads,
    match_pairs,
    model_activations,
    model_versions,
    owners,
    review_items,
)
from leadflow.errors import NotFound
from leadflow.handoff.service import HANDOFF_TYPES
from leadflow.metrics.periods import split
from leadflow.routing.service import CLOSED, open_loads
from leadflow.workspace import Workspace

INBOX_LIMIT = 50
INBOX_COLUMNS = (
    leads.c.id,
    leads.c.first_name,
    leads.c.last_name,
    leads.c.email,
    leads.c.company,
    leads.c.title,
    leads.c.stage,
    leads.c.score,
    leads.c.grade,
    leads.c.owner_id,
    leads.c.team_id,
    leads.c.source,
    leads.c.created_at,
    leads.c.sla_due_at,
    leads.c.first_contact_at,
)


def _live() -> Any:
    return and_(leads.c.merged_into_id.is_(None), leads.c.erased_at.is_(None))


def inbox(conn: Connection, user: User, *, limit: int = INBOX_LIMIT) -> list[dict[str, Any]]:
    """Open leads the user may read: waiting for first contact first, by SLA deadline (soonest
    first), then by score; contacted leads after them."""
    waiting = case((leads.c.first_contact_at.is_(None), 0), else_=1)
    no_deadline = case((leads.c.sla_due_at.is_(None), 1), else_=0)
    stmt = (
        select(*INBOX_COLUMNS)
        .where(readable_leads(user), _live(), leads.c.stage.not_in(CLOSED))
        .order_by(waiting, no_deadline, leads.c.sla_due_at, leads.c.score.desc(), leads.c.id)
        .limit(limit)
    )
    rows = [dict(r._mapping) for r in conn.execute(stmt)]
    pending = pending_handoffs(conn, [r["id"] for r in rows])
    for r in rows:
        r["handoff_pending"] = r["id"] in pending
    return rows


def pending_handoffs(conn: Connection, lead_ids: list[int]) -> set[int]:
    """Which of these leads have a handoff waiting for sales to accept or reject it."""
    if not lead_ids:
        return set()
    latest = (
        select(lead_events.c.lead_id, func.max(lead_events.c.id).label("last"))
        .where(lead_events.c.lead_id.in_(lead_ids), lead_events.c.type.in_(HANDOFF_TYPES))
        .group_by(lead_events.c.lead_id)
        .subquery()
    )
    stmt = select(lead_events.c.lead_id).join(latest, lead_events.c.id == latest.c.last)
    stmt = stmt.where(lead_events.c.type == ev.HANDOFF_SENT)
    return set(conn.execute(stmt).scalars())


def can_read(conn: Connection, user: User, lead_id: int) -> bool:
    """Whether the lead exists (404 otherwise) and this user may read it."""
    exists = conn.execute(select(leads.c.id).where(leads.c.id == lead_id)).first()
    if exists is None:
        raise NotFound(f"no lead {lead_id}")
    return conn.execute(select(leads.c.id).where(leads.c.id == lead_id, readable_leads(user))).first() is not None


def review_queue(conn: Connection, user: User, *, limit: int = 50) -> list[dict[str, Any]]:
    """Open quality review items on leads the user may read, oldest first."""
    stmt = (
        select(review_items)
        .join(leads, leads.c.id == review_items.c.lead_id)
        .where(review_items.c.kind == "quality", review_items.c.status == "open", readable_leads(user))
        .order_by(review_items.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def duplicate_pairs(conn: Connection, user: User, *, limit: int = 25) -> list[dict[str, Any]]:
    """Open duplicate pairs (with their evidence) where the user may read both leads."""
    from leadflow.identity.review import list_pairs

    pairs = list_pairs(conn, status="open", limit=limit * 4)
    ids = {p["lead_id"] for p in pairs} | {p["other_lead_id"] for p in pairs}
    readable = set(conn.execute(select(leads.c.id).where(leads.c.id.in_(list(ids)), readable_leads(user))).scalars())
    return [p for p in pairs if p["lead_id"] in readable and p["other_lead_id"] in readable][:limit]


def pair_leads(conn: Connection, pair_id: int) -> tuple[int, int] | None:
    row = conn.execute(
        select(match_pairs.c.lead_id, match_pairs.c.other_lead_id).where(match_pairs.c.id == pair_id)
    ).first()
    return (row.lead_id, row.other_lead_id) if row else None


def merge_history(conn: Connection, lead_id: int) -> list[dict[str, Any]]:
    """Merges this lead took part in, newest first (without the personal snapshots)."""
    stmt = (
        select(
            lead_merges.c.id,
            lead_merges.c.survivor_id,
            lead_merges.c.merged_id,
            lead_merges.c.probability,
            lead_merges.c.actor,
            lead_merges.c.reason,
            lead_merges.c.created_at,
            lead_merges.c.unmerged_at,
            lead_merges.c.unmerged_by,
        )
        .where(or_(lead_merges.c.survivor_id == lead_id, lead_merges.c.merged_id == lead_id))
        .order_by(lead_merges.c.id.desc())
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def review_lead(conn: Connection, item_id: int) -> int | None:
    return conn.execute(select(review_items.c.lead_id).where(review_items.c.id == item_id)).scalar()


# -- teams and routing -------------------------------------------------------------------------


def team_board(ws: Workspace, conn: Connection, user: User, *, days: int = 90) -> list[dict[str, Any]]:
    """Per owner: open load, leads assigned today against daily capacity, out of office today,
    and SLA attainment (first contact by the deadline) over the last ``days``."""
    now = ws.clock.now()
    today = now.date()
    rows = [
        dict(r._mapping)
        for r in conn.execute(
            select(owners).where(readable_owners(user)).order_by(owners.c.team_id, owners.c.position, owners.c.id)
        )
    ]
    ids = [r["id"] for r in rows]
    loads = open_loads(conn, ids)
    since = now - timedelta(days=days)
    met = case(
        (and_(leads.c.first_contact_at.is_not(None), leads.c.first_contact_at <= leads.c.sla_due_at), 1), else_=0
    )
    overdue = case((and_(leads.c.first_contact_at.is_(None), leads.c.sla_due_at < now), 1), else_=0)
    sla = {
        r.owner_id: r
        for r in conn.execute(
            select(
                leads.c.owner_id,
                func.count().label("with_sla"),
                func.sum(met).label("met"),
                func.sum(overdue).label("overdue"),
            )
            .where(leads.c.owner_id.in_(ids), leads.c.sla_due_at.is_not(None), leads.c.created_at >= since, _live())
            .group_by(leads.c.owner_id)
        )
    }
    day_start = datetime.combine(today, datetime.min.time(), tzinfo=now.tzinfo)
    assigned_today = dict(
        conn.execute(
            select(leads.c.owner_id, func.count())
            .where(leads.c.owner_id.in_(ids), leads.c.assigned_at >= day_start)
            .group_by(leads.c.owner_id)
        ).all()
    )
    out = []
    for r in rows:
        s = sla.get(r["id"])
        with_sla = int(s.with_sla) if s else 0
        away = [
            a
            for a in (r["out_of_office"] or [])
            if date.fromisoformat(a["from"]) <= today <= date.fromisoformat(a["to"])
        ]
        out.append(
            {
                **r,
                "load": loads.get(r["id"], 0),
                "assigned_today": assigned_today.get(r["id"], 0),
                "away": away[0] if away else None,
                "with_sla": with_sla,
                "sla_met": int(s.met or 0) if s else 0,
                "sla_rate": (int(s.met or 0) / with_sla) if with_sla else None,
                "overdue": int(s.overdue or 0) if s else 0,
            }
        )
    return out


# -- metrics -----------------------------------------------------------------------------------


def last_event_id(conn: Connection) -> int:
    """The newest event's id: any change to leads writes one, so figures keyed by it stay true."""
    return int(conn.execute(select(func.max(lead_events.c.id))).scalar() or 0)


def sources_and_campaigns(conn: Connection, user: User) -> tuple[list[str], list[str]]:
    """The sources and the campaigns of the leads the user may read (one pass)."""
    stmt = (
        select(leads.c.source, leads.c.campaign).where(readable_leads(user)).group_by(leads.c.source, leads.c.campaign)
    )
    pairs = conn.execute(stmt).all()
    return sorted({s for s, _ in pairs if s is not None}), sorted({c for _, c in pairs if c is not None})


@dataclass(frozen=True)
class MetricsFilter:
    """What the metrics page is narrowed to: a period (``end`` exclusive) and, optionally, one
    source, one campaign and one team (the leads owned by that team's members)."""

    start: date
    end: date
    source: str | None = None
    campaign: str | None = None
    team: str | None = None


def teams(ws: Workspace, conn: Connection, user: User) -> list[tuple[str, str]]:
    """(id, name) of the teams whose owners the user may read."""
    stmt = select(owners.c.team_id).where(readable_owners(user), owners.c.team_id.is_not(None)).distinct()
    names = {t.id: t.name for t in ws.config.teams}
    return sorted(((t, names.get(t, t)) for t in conn.execute(stmt).scalars()), key=lambda x: x[1])


def _filtered(user: User, f: MetricsFilter) -> list[Any]:
    where = [readable_leads(user), leads.c.merged_into_id.is_(None)]
    if f.source:
        where.append(leads.c.source == f.source)
    if f.campaign:
        where.append(leads.c.campaign == f.campaign)
    if f.team:
        where.append(leads.c.owner_id.in_(select(owners.c.id).where(owners.c.team_id == f.team)))
    return where


def _month_of(periods: list[Any], at: datetime) -> str | None:
    starts = [p.start for p in periods]
    i = bisect_right(starts, at) - 1
    return periods[i].label if i >= 0 and at < periods[i].end else None


def _nearest_rank(ordered: list[float], pct: int) -> float:
    """The catalogue's percentile: the value at rank ceil(n * pct / 100) (1-based)."""
    return ordered[(len(ordered) * pct + 99) // 100 - 1]


def metrics_board(ws: Workspace, conn: Connection, user: User, f: MetricsFilter) -> dict[str, Any]:
    """The lead figures of the metrics page, for the leads the user may read under the filter,
    from two reads (the leads created in the period, and the stage history since its start):

    - ``flow``: per month, new leads, leads that closed (lost or disqualified), net flow and SLA
      attainment (first contact by the deadline, for the month's leads that had one);
    - ``funnel``: for the period's leads, how many reached each funnel stage, per source;
    - ``cohort``: per creation month, the share of leads reaching the target stage within the
      maturity window, with its 95% Wilson interval (the catalogue's ``lead_conversion_rate``);
    - ``velocity``: per stage, the time from entering it to the next stage change, for stays
      that began in the period: median and p90 in hours, how many left and how many are still
      there (the catalogue's ``stage_velocity``).

    The definitions are the catalogue's; they are computed here because the catalogue's queries
    cannot yet be narrowed to a viewer, a campaign or a team (a test holds the unfiltered figures
    equal to the catalogue's). Rows are bucketed in Python: far cheaper than joining a periods
    table per month on SQLite."""
    from leadflow.metrics.stats import wilson

    periods = split(f.start, f.end, "month", ws.config.workspace.timezone)
    lo, hi = periods[0].start, periods[-1].end
    where = _filtered(user, f)
    order = list(ws.rules.stages.order)
    rank = {stage: i for i, stage in enumerate(order)}
    target = ws.rules.stages.target
    converted = set(order[order.index(target) :]) if target in rank else {target}
    maturity = timedelta(days=ws.config.metrics.maturity_days)

    month = {p.label: {"new": 0, "closed": 0, "with_sla": 0, "met": 0, "won": 0} for p in periods}
    cohort: dict[int, tuple[str, str, datetime]] = {}  # lead -> (source, month, created)
    scope: set[int] = set()  # every lead in scope, whenever created (their stage changes count)
    has_sla = case((leads.c.sla_due_at.is_not(None), 1), else_=0)
    met = case((leads.c.first_contact_at <= leads.c.sla_due_at, 1), else_=0)  # compared in SQL: no datetimes to build
    for lead_id, src, created, sla, in_time in conn.execute(
        select(leads.c.id, leads.c.source, leads.c.created_at, has_sla, met).where(*where)
    ):
        scope.add(lead_id)
        if not lo <= created < hi:
            continue
        label = _month_of(periods, created)
        if label is None:
            continue
        cohort[lead_id] = (src or "(none)", label, created)
        row = month[label]
        row["new"] += 1
        row["with_sla"] += sla
        row["met"] += in_time

    # The period's stage changes (by the time index), kept for the leads in scope and sorted
    # here: joined in SQL, SQLite drives the join from the leads and reads every event of each.
    history = sorted(
        tuple(row)
        for row in conn.execute(
            select(lead_events.c.lead_id, lead_events.c.occurred_at, lead_events.c.id, lead_events.c.stage).where(
                lead_events.c.occurred_at >= lo, lead_events.c.type == ev.STAGE_CHANGED
            )
        )
        if row[0] in scope
    )
    furthest = dict.fromkeys(cohort, 0)
    reached_target: dict[int, datetime] = {}
    closed: dict[int, datetime] = {}
    stays: dict[str, list[float]] = {}
    pending: dict[str, int] = {}
    for i, (lead_id, at, _, stage) in enumerate(history):
        if lead_id in furthest and stage in rank:
            furthest[lead_id] = max(furthest[lead_id], rank[stage])
        if stage in converted and lead_id not in reached_target:
            reached_target[lead_id] = at
        if at < hi and stage in ("lost", "disqualified") and lead_id not in closed:
            closed[lead_id] = at
        if at < hi:
            nxt = history[i + 1] if i + 1 < len(history) else None
            if nxt is not None and nxt[0] == lead_id:
                stays.setdefault(stage, []).append((nxt[1] - at).total_seconds())
            else:
                pending[stage] = pending.get(stage, 0) + 1
    for at in closed.values():
        label = _month_of(periods, at)
        if label is not None:
            month[label]["closed"] += 1

    flow, conversion = [], []
    for lead_id, (_, label, created) in cohort.items():
        won = reached_target.get(lead_id)
        if won is not None and won - created <= maturity:
            month[label]["won"] += 1
    for p in periods:
        r = month[p.label]
        flow.append(
            {
                "month": p.label,
                "new": r["new"],
                "closed": r["closed"],
                "net": r["new"] - r["closed"],
                "sla_rate": r["met"] / r["with_sla"] if r["with_sla"] else None,
            }
        )
        low, high = wilson(r["won"], r["new"]) if r["new"] else (None, None)
        conversion.append(
            {
                "month": p.label,
                "leads": r["new"],
                "converted": r["won"],
                "rate": r["won"] / r["new"] if r["new"] else None,
                "ci_low": low,
                "ci_high": high,
                # Leads younger than the maturity window may still convert: the rate is provisional.
                "mature": p.end + maturity <= ws.clock.now(),
            }
        )

    by_source: dict[str, list[int]] = {}
    for lead_id, (src, _, _) in cohort.items():
        counts = by_source.setdefault(src, [0] * len(order))
        for i in range(furthest[lead_id] + 1):
            counts[i] += 1
    funnel_rows = [{"source": s, "reached": dict(zip(order, c, strict=True))} for s, c in by_source.items()]
    funnel_rows.sort(key=lambda x: -x["reached"][order[0]])

    velocity = []
    for stage in [*order, *sorted((set(stays) | set(pending)) - set(order))]:
        done = sorted(stays.get(stage, []))
        waiting = pending.get(stage, 0)
        if not done and not waiting:
            continue
        velocity.append(
            {
                "stage": stage,
                "median_hours": round(_nearest_rank(done, 50) / 3600, 4) if done else None,
                "p90_hours": round(_nearest_rank(done, 90) / 3600, 4) if done else None,
                "count": len(done),
                "pending": waiting,
            }
        )
    return {
        "flow": flow,
        "funnel": {"stages": order, "rows": funnel_rows},
        "cohort": {"target": target, "maturity_days": ws.config.metrics.maturity_days, "rows": conversion},
        "velocity": velocity,
    }


def unit_economics(
    ws: Workspace, conn: Connection, start: date, end: date, model: str, by: str
) -> list[dict[str, Any]]:
    """Per source or campaign (``by``), from the metrics catalogue (one definition for the API,
    the CLI and here): CPL and CAC (marketing and sales spend per lead and per new customer) and
    ROAS (revenue credited under the attribution ``model``, over marketing spend). Spend has no
    owner or team, so these are the workspace's figures for every role that sees metrics."""
    from leadflow.metrics.service import compute, make_query

    query = make_query(start, end, by=by, model=model)
    found: dict[str, dict[str, Any]] = {}
    for metric_id, key in (("cost_per_lead", "cpl"), ("cac", "cac"), ("roas", "roas")):
        for r in compute(ws, conn, metric_id, query)["rows"]:
            if r["group"] is None:
                continue
            row = found.setdefault(
                r["group"],
                {"group": r["group"], "spend": 0.0, "cpl": None, "cac": None, "roas": None}
                | {"leads": None, "new_customers": None, "revenue": None},
            )
            row[key] = None if r["value"] is None else float(r["value"])
            if metric_id == "cost_per_lead":
                row["spend"] = float(r.get("spend") or 0)  # marketing and sales spend
            for extra in ("leads", "new_customers", "revenue"):
                if extra in r:
                    row[extra] = float(r[extra] or 0) if extra == "revenue" else int(r[extra] or 0)
    return sorted(found.values(), key=lambda x: (-(x.get("spend") or 0), x["group"]))


# -- models ------------------------------------------------------------------------------------


def model_summary(conn: Connection) -> dict[str, Any] | None:
    """The newest stored model version with its training report, and which one is active."""
    row = conn.execute(select(model_versions).order_by(model_versions.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    active = conn.execute(
        select(model_activations.c.version_id).order_by(model_activations.c.id.desc()).limit(1)
    ).scalar()
    count = conn.execute(select(func.count()).select_from(model_versions)).scalar_one()
    version = dict(row._mapping)
    version.pop("model_text", None)
    version.pop("meta", None)
    return {"version": version, "active_id": active, "versions": int(count)}
